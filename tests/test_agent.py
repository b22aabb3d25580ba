"""The agent end to end over a small synthetic catalog and a deterministic fake encoder (no model weights):
event order, memory across turns, dislikes, feedback clicks, SQLite logs, coded tool failures, a
tool-calling LLM driving the same tools, and grounding of LLM replies."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from agent_fixtures import assistant  # noqa: F401  (fixture)

from atelier.assistant.turn import FeedbackError
from atelier.assistant.events import DoneEvent, ErrorEvent, MemoryEvent, ProductsEvent, TextDeltaEvent, ToolCallEvent
from atelier.memory import SessionNotFound


def events_of(stream: Iterator) -> list:
    return list(stream)


def products_in(events: list) -> list:
    return [r for e in events if isinstance(e, ProductsEvent) for r in e.results]


def test_turn_streams_events_in_order_and_searches_with_memory(assistant):
    sid = assistant.new_session()
    events = events_of(assistant.turn(sid, "a red dress"))
    kinds = [e.type for e in events]
    assert kinds[0] == "status" and kinds[-2:] == ["memory", "done"]
    assert kinds.index("tool_call") < kinds.index("products") < kinds.index("text_delta") < kinds.index("memory")
    call = next(e for e in events if isinstance(e, ToolCallEvent))
    assert call.name == "search_products"
    assert call.args["must"] == {"colour": ["red"], "category": ["dress"]}
    results = products_in(events)
    assert results and all(r.colour == "red" and r.category == "dress" for r in results)
    reply = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert events[-1].reply == reply and results[0].title in reply

    events = events_of(assistant.turn(sid, "actually blue"))
    results = products_in(events)
    assert results and all(r.colour == "blue" and r.category == "dress" for r in results)
    memory = next(e for e in events if isinstance(e, MemoryEvent)).memory
    assert memory["constraints"]["must"] == {"colour": ["blue"], "category": ["dress"]}


def test_disliked_items_never_come_back(assistant):
    sid = assistant.new_session()
    first = products_in(events_of(assistant.turn(sid, "a dress")))
    disliked = first[0].id
    events_of(assistant.turn(sid, "I don't like the first one"))
    for message in ("show me dresses", "in red", "start over", "a red dress", "more like the second one"):
        shown = products_in(events_of(assistant.turn(sid, message)))
        assert disliked not in {r.id for r in shown}, message
    assert disliked in assistant.memory(sid)["disliked"]


def test_cheaper_caps_the_price_below_what_was_shown(assistant):
    sid = assistant.new_session()
    shown = products_in(events_of(assistant.turn(sid, "sneakers")))
    median = float(np.median([r.price for r in shown]))
    cheaper = products_in(events_of(assistant.turn(sid, "cheaper please")))
    assert cheaper and all(r.price < median for r in cheaper)
    assert all(r.category == "sneakers" for r in cheaper)


def test_start_over_clears_memory(assistant):
    sid = assistant.new_session()
    events_of(assistant.turn(sid, "a black shirt under 30"))
    events = events_of(assistant.turn(sid, "start over"))
    memory = next(e for e in events if isinstance(e, MemoryEvent)).memory
    assert memory["constraints"] == {"must": {}, "avoid": {}, "price_min": None, "price_max": None}
    assert not products_in(events) and "Fresh start" in events[-1].reply


def test_unknown_sessions(assistant):
    with pytest.raises(SessionNotFound):
        assistant.history("missing")
    with pytest.raises(SessionNotFound):
        assistant.memory("missing")
    with pytest.raises(SessionNotFound):
        assistant.feedback("missing", "0001", "like")
    events = events_of(assistant.turn("brand-new", "hi"))
    assert events[-1].session_id == "brand-new" and "shopping" in events[-1].reply
    assert len(assistant.history("brand-new")) == 1


def test_feedback_clicks_update_memory_and_search(assistant):
    sid = assistant.new_session()
    shown = products_in(events_of(assistant.turn(sid, "a green dress")))
    liked, disliked = shown[0].id, shown[1].id
    events = assistant.feedback(sid, liked, "like")
    assert isinstance(events[-1], DoneEvent) and liked in assistant.memory(sid)["liked"]
    assistant.feedback(sid, disliked, "dislike")
    events = assistant.feedback(sid, liked, "more_like_this")
    more = products_in(events)
    assert more and liked not in {r.id for r in more} and disliked not in {r.id for r in more}
    assert any(isinstance(e, ToolCallEvent) and e.name == "search_products" for e in events)
    with pytest.raises(FeedbackError):
        assistant.feedback(sid, liked, "love")
    kinds = [t["kind"] for t in assistant.history(sid)]
    assert kinds == ["message", "feedback", "feedback", "feedback"]


def test_turns_are_logged_for_replay(assistant):
    sid = assistant.new_session()
    events_of(assistant.turn(sid, "a white shirt"))
    events_of(assistant.turn(sid, "compare the first and the second"))
    log = assistant.history(sid)
    assert log[0]["intent"]["intent"] == "search" and log[0]["tool_calls"][0]["name"] == "search_products"
    assert len(log[0]["result_ids"]) == 3 and log[0]["reply"]
    assert log[1]["tool_calls"][0]["name"] == "compare_products"
    assert log[1]["tool_calls"][0]["args"]["first_id"] == log[0]["result_ids"][0]


def test_compare_mentions_both_titles_and_the_cheaper(assistant):
    sid = assistant.new_session()
    shown = products_in(events_of(assistant.turn(sid, "a white shirt")))
    events = events_of(assistant.turn(sid, "which is cheaper, the first or the third?"))
    reply = events[-1].reply
    a, b = shown[0], shown[2]
    cheaper = a if a.price < b.price else b
    assert a.title in reply and b.title in reply
    assert f"{cheaper.title} is cheaper" in reply
    # compare shows the two products but keeps the list "the first" refers to
    assert assistant.memory(sid)["shown"][2]["id"] == b.id


class BrokenCompleter:
    """An outfit engine that fails the way a real dependency or a bug would."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def complete(self, *args, **kwargs):
        raise self.error


def test_tool_failures_end_with_a_coded_shopper_safe_error(assistant):
    from atelier.tools.store import StoreError

    sid = assistant.new_session()
    events_of(assistant.turn(sid, "a blue shirt"))
    for error, code in ((StoreError("chroma at /srv/secret/store is locked"), "store_unavailable"),
                        (KeyError("/srv/secret/x.npz"), "internal")):
        assistant.runtime.provide(completer=BrokenCompleter(error))
        events = events_of(assistant.turn(sid, "what goes with the first one?"))
        assert [e.type for e in events][-2:] == ["error", "done"]
        assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["complete_outfit"]
        failure = events[-2]
        assert failure.code == code and "secret" not in failure.message and failure.message
        assert "secret" in assistant.history(sid)[-1]["error"]  # the detail is logged, not shown


def test_bad_image_is_a_clear_error(assistant):
    events = events_of(assistant.turn(None, "like this but in red", image=b"not an image"))
    assert [e.type for e in events] == ["status", "error", "done"]
    assert isinstance(events[1], ErrorEvent) and events[1].code == "bad_image"


def test_unresolved_reference_is_explained(assistant):
    sid = assistant.new_session()
    events_of(assistant.turn(sid, "a red shirt"))
    reply = events_of(assistant.turn(sid, "I like the 9th one"))[-1].reply
    shown = len(assistant.memory(sid)["shown"])
    assert shown < 9 and f"only showed {shown} results" in reply


class FakeBackend:
    """An LLM backend that invents a price; grounding must cut it."""

    name = "fake"

    def stream_reply(self, system, messages, context) -> Iterator[str]:
        top = context.results[0]
        yield f"Try the {top.title}, only $3.33 today. "
        yield f"It costs {top.price:.2f}."

    def chat_model(self):
        return None


def test_llm_reply_is_grounded_in_shown_products(assistant):
    assistant.runtime.provide(llm=FakeBackend())
    events = events_of(assistant.turn(None, "a black dress"))
    reply = events[-1].reply
    top = products_in(events)[0]
    assert f"{top.price:.2f}" in reply
    assert "3.33" not in reply and "$" not in reply


def test_a_tool_calling_model_drives_the_same_tools(assistant):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    from atelier.assistant.agent_tools import ToolContext
    from atelier.assistant.routing import run_tool_agent

    class ToolModel(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kw):
            return self

    model = ToolModel(responses=[
        AIMessage(content="", tool_calls=[{"name": "search_products", "id": "c1",
                                           "args": {"query": "striped shirt", "must": {"category": ["shirt"],
                                                                                     "pattern": ["striped"]}}}]),
        AIMessage(content="Here are striped shirts."),
    ])
    memory = assistant.sessions.create()
    ctx = ToolContext(assistant.runtime, memory)
    events = list(run_tool_agent(model, ctx, "striped shirts please"))
    assert [(e.name, e.args["must"]["pattern"]) for e in events] == [("search_products", ["striped"])]
    assert ctx.results and all(r.pattern == "striped" and r.category == "shirt" for r in ctx.results)


def test_a_tool_calling_model_routes_assistant_turns(assistant):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    class ToolModel(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kw):
            return self

    sid = assistant.new_session()
    shown = products_in(events_of(assistant.turn(sid, "a white shirt")))
    assistant.runtime.provide(tool_model=ToolModel(responses=[
        AIMessage(content="", tool_calls=[{"name": "compare_products", "id": "c1",
                                           "args": {"first_id": shown[0].id, "second_id": shown[2].id}}]),
        AIMessage(content="done"),
    ]))
    events = events_of(assistant.turn(sid, "how do the first and third differ?"))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [c.name for c in calls] == ["compare_products"]
    assert {r.id for r in products_in(events)} == {shown[0].id, shown[2].id}
    assert shown[0].title in events[-1].reply
    # a model that calls no tool falls back to the deterministic router
    assistant.runtime.provide(tool_model=ToolModel(responses=[AIMessage(content="no tools today")]))
    events = events_of(assistant.turn(sid, "in blue"))
    assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["search_products"]
    assert all(r.colour == "blue" for r in products_in(events))


def test_an_item_both_referenced_and_passed_over_is_fetched_once(assistant):
    sid = assistant.new_session()
    events_of(assistant.turn(sid, "a dress"))
    events = events_of(assistant.turn(sid, "show me more like the first one"))
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.name for e in events if isinstance(e, ToolCallEvent)] == ["search_products"]


def test_terminal_chat_loop_streams_and_clicks(assistant):
    import io

    from atelier.ui.chat_cli import chat_loop

    lines = iter(["a black shirt", "/like 1", "/memory", "/more 9", "/quit"])
    out = io.StringIO()
    sid = chat_loop(assistant, assistant.new_session(), read=lambda prompt: next(lines), out=out)
    text = out.getvalue()
    assert "→ search_products(" in text and "atelier> Here are" in text and "Black shirt" in text
    assert "Noted, you like" in text and '"liked": [' in text
    assert "pick a shown result by number (1-3)" in text
    assert assistant.memory(sid)["liked"]


def search_args(events: list) -> dict:
    return next(e for e in events if isinstance(e, ToolCallEvent) and e.name == "search_products").args


def test_forget_drops_one_constraint_for_the_next_turn_only(assistant):
    from atelier.memory import ForgetError, NotRemembered
    from atelier.assistant.replay import Conversation, run_conversation
    from atelier.assistant.session_export import export_session

    sid = assistant.new_session()
    first = products_in(events_of(assistant.turn(sid, "a black dress, not striped, under 40")))
    assert first and all(r.colour == "black" for r in first)
    memory = assistant.forget(sid, "must", "colour", "black")
    assert memory["constraints"]["must"] == {"category": ["dress"]}
    assert memory["constraints"]["avoid"] == {"pattern": ["striped"]} and memory["constraints"]["price_max"] == 40
    assert assistant.memory(sid) == memory

    events = events_of(assistant.turn(sid, "show me some options"))
    args = search_args(events)
    assert "colour" not in args["must"] and args["must"]["category"] == ["dress"]
    assert args["avoid"] == {"pattern": ["striped"]} and args["price_max"] == 40
    again = products_in(events)
    assert {r.colour for r in again} - {"black"}, "non-black dresses are back"
    assert all(r.category == "dress" and r.pattern != "striped" and r.price <= 40 for r in again)

    memory = assistant.forget(sid, "price_max", value="40")
    assert memory["constraints"]["price_max"] is None
    assert "price_max" not in search_args(events_of(assistant.turn(sid, "show me some options")))

    with pytest.raises(NotRemembered):
        assistant.forget(sid, "must", "colour", "black")
    with pytest.raises(NotRemembered):
        assistant.forget(sid, "preference", value="darker")
    with pytest.raises(ForgetError):
        assistant.forget(sid, "colour", value="black")
    with pytest.raises(ValueError):
        assistant.forget(sid, "avoid")
    with pytest.raises(SessionNotFound):
        assistant.forget("missing", "must", "colour", "black")

    log = assistant.history(sid)
    forgets = [t for t in log if t["kind"] == "forget"]
    assert [t["intent"] for t in forgets] == [{"forget": "must", "facet": "colour", "value": "black"},
                                             {"forget": "price_max", "facet": None, "value": "40"}]
    assert forgets[0]["memory"]["constraints"]["must"] == {"category": ["dress"]}

    exported = export_session(assistant.sessions.turns(sid), assistant.settings)
    assert exported["turns"][1] == {"forget": {"kind": "must", "facet": "colour", "value": "black"},
                                    "expect": {"memory": {"must": {"category": ["dress"]},
                                                          "avoid": {"pattern": ["striped"]}, "price_max": 40.0}}}
    replayed = run_conversation(Conversation.model_validate(exported), assistant)
    assert replayed.passed, replayed.failures


def test_forget_a_reference_and_focus_a_product(assistant):
    sid = assistant.new_session()
    shown = products_in(events_of(assistant.turn(sid, "a blue shirt")))
    assistant.feedback(sid, shown[0].id, "like")
    memory = assistant.focus(sid, shown[1].id)
    assert memory["focus"] == shown[1].id and [a["id"] for a in memory["anchors"]] == [shown[0].id]
    memory = assistant.forget(sid, "anchor", value=shown[0].id)
    assert memory["anchors"] == [] and memory["liked"] == [shown[0].id] and memory["focus"] == shown[1].id
    events = events_of(assistant.turn(sid, "more like this one"))
    assert shown[1].id in [a["id"] for a in next(e for e in events if isinstance(e, MemoryEvent)).memory["anchors"]]
    kinds = [t["kind"] for t in assistant.history(sid)]
    assert kinds == ["message", "feedback", "focus", "forget", "message"]


def test_got_this_with_stripes_on_an_uploaded_photo_is_a_composed_search(assistant):
    import io

    from PIL import Image

    asked = []

    class Composed:  # records what the agent asks composed search for (the engine itself: test_recognition.py)
        def search(self, reference, change, k=10, filters=None):
            asked.append((reference, change))
            return []

    assistant.runtime.provide(composed=Composed())
    buffer = io.BytesIO()
    Image.new("RGB", (64, 96), (200, 30, 40)).save(buffer, "PNG")
    events = events_of(assistant.turn(assistant.new_session(), "got this with stripes?", image=buffer.getvalue()))
    call = next(e for e in events if isinstance(e, ToolCallEvent))
    assert call.name == "find_similar" and call.args["reference"] == "uploaded"
    (reference, change), = asked
    assert isinstance(reference, Image.Image) and "stripes" in change
