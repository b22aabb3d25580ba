"""Fixtures for the UI tests: the API app on the real assistant, served servers, a photo to upload.

``FakeAssistant`` (real H&M products read straight from the catalog, filtered by the query parser) is
only for what the real agent cannot be made to do on demand, such as failing halfway through a turn.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atelier.assistant.events import DoneEvent, MemoryEvent, ProductsEvent, TextDeltaEvent
from atelier.tools.schema import Product, SearchResult

REPO = Path(__file__).resolve().parent.parent
HM = Path(os.environ.get("ATELIER_DATASETS", REPO.parent / "shared" / "datasets")) / "hm"
ARTIFACTS = REPO / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hm_photo(article_id: str) -> Path:
    return HM / "images" / article_id[:3] / f"{article_id}.jpg"


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def settings_env(settings) -> dict[str, str]:
    """The ATELIER_* variables that make a child process use ``settings``."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ATELIER_HOME=str(settings.home),
               ATELIER_STORE=str(settings.store_path), ATELIER_DB=settings.db_url,
               ATELIER_ENCODER=settings.encoder, ATELIER_DATASETS=str(settings.datasets), ATELIER_LLM=settings.llm)
    return env


class FakeAssistant:
    """The assistant's interface over real catalog products, for fault injection."""

    def __init__(self, products: list[Product], fail_after: int | None = None) -> None:
        self.products = products
        self.fail_after = fail_after
        self.sessions: dict[str, dict] = {}

    def new_session(self) -> str:
        session_id = uuid.uuid4().hex
        self.sessions[session_id] = {"history": [], "memory": {"likes": [], "dislikes": []}}
        return session_id

    def turn(self, session_id: str, message: str, image=None) -> Iterator:
        from atelier.tools.query_parser import parse_query

        filters = parse_query(message).filters
        hits = [p for p in self.products if filters.matches(_meta(p))][:6]
        yield ProductsEvent(results=[SearchResult.from_product(p, 1.0, "fake") for p in hits])
        if self.fail_after is not None:
            raise RuntimeError("boom: a fake failure")
        for word in f"Here are {len(hits)} picks.".split(" "):
            yield TextDeltaEvent(text=word + " ")
        yield MemoryEvent(memory=self.sessions[session_id]["memory"])
        yield DoneEvent(session_id=session_id, reply="done")

    def feedback(self, session_id: str, product_id: str, kind: str):
        key = {"like": "likes", "dislike": "dislikes"}.get(kind)
        if key:
            self.sessions[session_id]["memory"][key].append(product_id)
        return []

    def history(self, session_id: str) -> list[dict]:
        return self.sessions[session_id]["history"]

    def delete_session(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    def memory(self, session_id: str) -> dict:
        return self.sessions[session_id]["memory"]


def _meta(product: Product) -> dict:
    return {f: getattr(product, f) for f in ("category", "group", "colour", "pattern", "gender", "source")} | {
        "price": product.price, "has_price": product.price is not None}


def hm_products(limit: int = 3000) -> list[Product]:
    from atelier.tools.catalogs import CatalogOptions, read_catalog

    rows = read_catalog(HM, "hm", CatalogOptions(only_ids=_sample_ids()))
    return [r for r in rows if isinstance(r, Product)][:limit]


def _sample_ids() -> frozenset[str]:
    from conftest import hm_sample_ids

    return hm_sample_ids()


class ServerThread:
    """uvicorn serving an ASGI app on a free port in a background thread; ``stop()`` shuts it down."""

    def __init__(self, app, **options) -> None:
        """``options`` go to ``uvicorn.Config`` (e.g. ``ui.api.server_options``: which proxies to believe)."""
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"proxy_headers": False, **options}
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off", **options))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> "ServerThread":
        self.thread.start()
        wait_http(self.url + "/healthz", timeout=30)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class StreamlitServer:
    """``streamlit run ui/streamlit_app.py`` in a child process on a free port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = ARTIFACTS / f"streamlit-{self.port}.log"
        self.env = env

    def start(self) -> "StreamlitServer":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "ui" / "streamlit_app.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(self.port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
             "--client.toolbarMode", "minimal"],
            cwd=REPO, env=self.env, stdout=self.log_handle, stderr=subprocess.STDOUT)
        try:
            wait_http(self.url + "/_stcore/health", timeout=90, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"streamlit did not start; log:\n{self.log.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_handle.close()


@pytest.fixture(scope="module")
def fake_products() -> list[Product]:
    return hm_products()


@pytest.fixture()
def black_dress_photo() -> Path:
    """A real H&M photo of a black dress from the sample catalog."""
    path = hm_photo(BLACK_DRESS_ID)
    assert path.is_file(), path
    return path


BLACK_DRESS_ID = "0811398005"


@pytest.fixture(scope="module")
def real_assistant(hm_store_settings):
    """The real agent (offline ``ATELIER_LLM=none`` default) over the H&M sample store, one per module."""
    from atelier.tools.settings import override_settings
    from atelier.ui.backend import build_assistant

    return build_assistant(override_settings(**hm_store_settings.model_dump()))


@pytest.fixture()
def api_app(hm_settings, real_assistant):
    from atelier.ui.api import create_app

    return create_app(assistant=real_assistant, settings=hm_settings)


@pytest.fixture()
def api(api_app):
    from fastapi.testclient import TestClient

    with TestClient(api_app) as client:
        yield client
