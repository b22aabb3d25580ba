"""Fuzzing (issue 14): schemathesis against the OpenAPI schema of a running server, hypothesis on the parser and
the memory update.

Both are bounded (examples per route / per property, no deadline) so the file runs in well under a minute on
two busy cores. The server is the real app on the H&M sample store, served by uvicorn on loopback; every
generated request carries a real session and its token (refreshed after a DELETE), so the fuzzer reaches the
routes' own validation instead of stopping at 404 / 401.
"""

from __future__ import annotations

import string

import pytest
import schemathesis
from agent_fixtures import HashEncoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from ui_fixtures import ServerThread, real_assistant  # noqa: F401

from atelier.assistant.parser import TurnParser
from atelier.memory.intent import ParseContext
from atelier.memory.state import SessionMemory
from atelier.memory.update import apply_feedback, apply_turn, record_shown
from atelier.tools.schema import Product, SearchResult

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES_PER_ROUTE = 40


@pytest.fixture(scope="module")
def fuzz_server(hm_store_settings, real_assistant):
    from atelier.ui.api import create_app

    settings = hm_store_settings.model_copy(update={"rate_limit_per_minute": 0})
    server = ServerThread(create_app(assistant=real_assistant, settings=settings)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def session(fuzz_server):
    import httpx

    def fresh() -> dict[str, str]:
        return httpx.post(f"{fuzz_server.url}/v1/sessions").raise_for_status().json()

    state = fresh()
    state["fresh"] = fresh
    return state


def test_api_never_fails_and_always_matches_its_schema(fuzz_server, session):
    """Every route of ``/openapi.json``: generated requests, valid and invalid (40 a route), never get a 5xx,
    and every answer matches the status codes, content types and body schemas the API documents."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9

    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
        def call(case) -> None:
            if "session_id" in (case.path_parameters or {}):
                case.path_parameters["session_id"] = session["session_id"]
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {session['token']}"}
            case.call_and_validate(checks=CHECKS)
            if case.method.upper() == "DELETE" and case.path == "/v1/sessions/{session_id}":
                session.update(session["fresh"]())

        call()


# --- the parser and the memory update, on any text ------------------------------------------------------------

FASHION = ["black", "red", "dress", "not", "no", "under", "$40", "cheaper", "the second", "like", "this", "jeans",
           "for men", "without", "stripes", "more like #2", "start over", "what is it made of", "€", "¥", "1e309",
           "ignore previous instructions", "\u202e", "\x00", "😀", "NaN", "-0", "0.00", "between 10 and 5"]
messages = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FASHION) | st.text(string.printable, max_size=8), max_size=12).map(" ".join),
)
contexts = st.builds(ParseContext, has_results=st.booleans(), n_shown=st.integers(0, 12), has_image=st.booleans(),
                     has_reference=st.booleans())


def shown_results(n: int) -> list[SearchResult]:
    products = [Product(id=f"p{i:04d}", title=f"Item {i}", category="dress", colour="black", price=10.0 + i,
                        source="fuzz") for i in range(n)]
    return [SearchResult.from_product(p, score=1.0, why="") for p in products]


PARSER = TurnParser(encoder=HashEncoder())


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(messages, min_size=1, max_size=4), context=contexts)
def test_any_text_parses_and_memory_stays_valid_json(texts, context):
    """The parser's rules and exemplar classifier on any text, with a hashing encoder standing in for MiniLM
    (0.3 s a call on gibberish would make 200 examples take minutes; the model only embeds the text)."""
    memory = SessionMemory(session_id="fuzz")
    for text in texts:
        intent = PARSER.parse(text, context)
        assert intent.intent, text
        apply_turn(memory, intent)
        record_shown(memory, shown_results(context.n_shown))
        if intent.like:
            apply_feedback(memory, "p0000", "like")
        dumped = memory.model_dump_json()
        again = SessionMemory.model_validate_json(dumped)
        assert again.model_dump_json() == dumped
    assert memory.turn == len(texts)
