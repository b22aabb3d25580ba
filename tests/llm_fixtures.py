"""Pytest fixtures for the LLM tests: a live fake OpenAI server and real-looking results.

Use with ``from llm_fixtures import ...`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fake_openai_server import FakeOpenAIServer

from atelier.tools.schema import Product, SearchResult


@pytest.fixture(scope="session")
def fake_openai_session() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture()
def fake_openai(fake_openai_session: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    """The session's fake server, with its script and request log cleared for this test."""
    fake_openai_session.replies.clear()
    fake_openai_session.requests.clear()
    yield fake_openai_session
    fake_openai_session.replies.clear()


@pytest.fixture()
def dead_url() -> str:
    """An OpenAI base URL on a local port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def make_result(id: str, title: str, price: float | None, colour: str = "blue", category: str = "jeans",
                description: str = "") -> SearchResult:
    product = Product(id=id, title=title, description=description, category=category, colour=colour,
                      price=price, source="hm")
    return SearchResult.from_product(product, score=0.9, why="text match")


@pytest.fixture()
def hm_results() -> list[SearchResult]:
    """Three H&M articles as search returns them (ids, titles and prices from articles.csv)."""
    return [
        make_result("0706016001", "Jade HW Skinny Denim TRS", 33.88),
        make_result("0111565001", "20 den 1p Stockings", 8.46, colour="black", category="tights"),
        make_result("0372860001", "7p Basic Shaftless", 13.54, colour="black", category="socks"),
    ]
