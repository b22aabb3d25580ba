"""The Streamlit app through ``streamlit.testing.v1.AppTest`` on the real assistant and the H&M sample store,
plus its plain state logic (``ui.chat_state``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from ui_fixtures import real_assistant  # noqa: F401

from atelier.assistant.events import DoneEvent, ErrorEvent, ProductsEvent, TextDeltaEvent
from atelier.memory.state import Anchor, Constraints, Detail, SessionMemory
from atelier.memory.update import NotRemembered
from atelier.ui.chat_state import ChatMessage, Transcript, apply_event, memory_chips, remove_chip, run_turn

APP = Path(__file__).resolve().parent.parent / "ui" / "streamlit_app.py"


@pytest.fixture()
def app(hm_settings):
    return AppTest.from_file(str(APP), default_timeout=90).run()


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input(key="chat").set_value(text).run()
    assert not at.exception, at.exception
    return at


def card_ids(at: AppTest, message_index: int) -> list[str]:
    prefix = f"like-{message_index}-"
    return [b.key[len(prefix):] for b in at.button if b.key and b.key.startswith(prefix)]


def card_facts(message) -> list[tuple[str, str]]:
    """(colour, category) of every card in a chat message, read from the card text."""
    facts = []
    for block in message.markdown:
        if block.value.startswith("**"):
            parts = block.value.splitlines()[-1].split(" · ")
            facts.append((parts[-2], parts[-1]))
    return facts


def session_memory(at: AppTest, assistant) -> dict:
    return assistant.memory(at.session_state.transcript.session_id)


def test_message_gets_streamed_reply_and_product_cards(app, hm_sample):
    at = send(app, "black dress")
    user, reply = at.chat_message[0], at.chat_message[1]
    assert user.name == "user" and user.markdown[0].value == "black dress"
    assert reply.name == "assistant"
    assert reply.markdown[0].value.strip()
    assert not at.error
    ids = card_ids(at, 1)
    assert len(ids) >= 3 and all(i in hm_sample for i in ids)
    facts = card_facts(reply)
    assert len(facts) == len(ids) and set(facts) == {("black", "dress")}
    assert len(at.get("image")) >= len(ids)
    for action in ("dislike", "more", "look", "ask"):
        assert at.button(key=f"{action}-1-{ids[0]}")
    chips = [b.label for b in at.sidebar.button if b.key and b.key.startswith("chip-")]
    assert any("black" in c for c in chips) and any("dress" in c for c in chips)


def test_like_and_dislike_update_memory(app, real_assistant):
    at = send(app, "black dress")
    first, second = card_ids(at, 1)[:2]
    at.button(key=f"like-1-{first}").click().run()
    memory = session_memory(at, real_assistant)
    assert first in memory["liked"] and first not in memory["disliked"]
    assert at.button(key=f"like-1-{first}").label == "Liked"
    at.button(key=f"dislike-1-{second}").click().run()
    memory = session_memory(at, real_assistant)
    assert second in memory["disliked"]
    assert any("Liked 1" in c.value and "not for you 1" in c.value for c in at.sidebar.caption)
    assert not at.exception and not at.error


def test_removing_a_chip_removes_the_constraint(app, real_assistant):
    at = send(app, "black dress under 40")
    constraints = session_memory(at, real_assistant)["constraints"]
    assert constraints["must"]["colour"] == ["black"] and constraints["price_max"] == 40
    at.button(key="chip-must:colour:black").click().run()
    constraints = session_memory(at, real_assistant)["constraints"]
    assert "colour" not in constraints["must"] and constraints["must"]["category"] == ["dress"]
    assert constraints["price_max"] == 40
    chips = [b.key for b in at.sidebar.button if b.key and b.key.startswith("chip-")]
    assert "chip-must:colour:black" not in chips and "chip-price_max::40.0" in chips
    at.button(key="chip-price_max::40.0").click().run()
    assert session_memory(at, real_assistant)["constraints"]["price_max"] is None
    history = real_assistant.history(at.session_state.transcript.session_id)
    assert [t["kind"] for t in history] == ["message", "forget", "forget"]
    send(at, "show me more")
    facts = card_facts(at.chat_message[3])
    assert facts and {category for _, category in facts} == {"dress"}
    assert {colour for colour, _ in facts} != {"black"}


def test_more_like_this_shows_new_results(app):
    at = send(app, "black dress")
    before = card_ids(at, 1)
    at.button(key=f"more-1-{before[0]}").click().run()
    assert not at.exception and not at.error
    assert at.chat_message[2].markdown[0].value.startswith("More like this")
    after = card_ids(at, 3)
    assert after and before[0] not in after and after != before


def test_complete_the_look_and_ask_about_this(app):
    at = send(app, "black dress")
    dress = card_ids(at, 1)[0]
    at.button(key=f"look-1-{dress}").click().run()
    assert not at.exception and not at.error
    assert at.chat_message[2].markdown[0].value.startswith("Complete the look with")
    look = at.chat_message[3]
    assert look.markdown[0].value.strip()
    assert any(m.value.startswith("#####") for m in look.markdown)
    pieces = card_facts(look)
    assert pieces and any(category != "dress" for _, category in pieces)
    at.button(key=f"ask-1-{dress}").click().run()
    assert "Ask a question about" in at.info[0].value
    send(at, "what is it made of")
    assert not at.info and not at.error
    assert at.chat_message[-1].markdown[0].value.strip()
    assert card_ids(at, len(at.chat_message) - 1) == [dress]


def test_failures_show_a_message_not_a_traceback(app, monkeypatch):
    from atelier.ui import backend

    def broken(*args, **kwargs):
        raise RuntimeError("database exploded at 0xdeadbeef")

    monkeypatch.setattr(backend, "act", broken)
    at = send(app, "black dress")
    assert not at.exception
    assert at.error and "something went wrong" in at.error[0].value.lower()
    assert "0xdeadbeef" not in at.error[0].value

    monkeypatch.setattr(backend, "act", lambda *a, **k: iter([
        ErrorEvent(message="The catalog is not available right now.", code="store"),
        DoneEvent(session_id="x")]))
    send(at, "black dress")
    assert at.error[-1].value == "The catalog is not available right now."


def test_new_chat_and_past_sessions(app):
    at = send(app, "red sweater")
    first = at.session_state.transcript.session_id
    at.button(key="new-chat").click().run()
    assert not at.chat_message and at.session_state.transcript.session_id is None
    at.button(key=f"session-{first}").click().run()
    assert at.session_state.transcript.session_id == first
    assert at.chat_message[0].markdown[0].value == "red sweater"
    assert card_ids(at, 1)


def test_chips_and_removal_are_plain_logic():
    memory = SessionMemory(session_id="s", constraints=Constraints(
        must={"colour": ["black", "navy"], "category": ["dress"]}, avoid={"pattern": ["print"]}, price_max=40.0),
        preferences=["cheaper"])
    chips = memory_chips(memory.model_dump(mode="json"))
    assert [c.label for c in chips] == ["category: dress", "colour: black", "colour: navy", "no print (pattern)",
                                        "up to 40", "cheaper"]
    for chip in chips[1:4]:
        remove_chip(memory, chip)
    assert memory.constraints.must == {"category": ["dress"]} and memory.constraints.avoid == {}
    remove_chip(memory, chips[4])
    remove_chip(memory, chips[5])
    assert memory.constraints.price_max is None and memory.preferences == []
    assert [c.label for c in memory_chips(memory.summary())] == ["category: dress"]
    memory.details = [Detail(turn=1, text="long sleeves")]
    memory.anchors = [Anchor(kind="product", id="p1", turn=1, title="Tie dress")]
    chips = memory_chips(memory.model_dump(mode="json"))
    assert [(c.kind, c.label) for c in chips[1:]] == [("detail", "“long sleeves”"), ("anchor", "like Tie dress")]
    for chip in chips[1:]:
        remove_chip(memory, chip)
    assert memory.details == [] and memory.anchors == []
    with pytest.raises(NotRemembered):
        remove_chip(memory, chips[2])


def test_transcript_folds_events_and_survives_a_crash(hm_settings, real_assistant):
    product = real_assistant.runtime.search.store.get_product("0811398005")
    from atelier.tools.schema import SearchResult

    transcript, message = Transcript(), ChatMessage(role="assistant")

    def events():
        yield ProductsEvent(results=[SearchResult.from_product(product, 1.0, "colour: black")])
        yield TextDeltaEvent(text="One ")
        yield TextDeltaEvent(text="dress.")
        raise RuntimeError("boom")

    streamed = list(run_turn(transcript, message, events(), lambda exc: "Sorry."))
    assert streamed == ["One ", "dress."] and message.text == "One dress."
    assert message.product_ids() == ["0811398005"] and message.error == "Sorry."
    apply_event(transcript, message, DoneEvent(session_id="abc", reply="One dress."))
    assert transcript.session_id == "abc"
