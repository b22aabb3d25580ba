"""Faults of whole processes (issue 14): the Chroma server going away mid-turn and coming back, ``kill -9`` of
``atelier ingest`` and of ``atelier serve`` mid-turn. Each must end with a clear answer, lose nothing, leave the
store and the sessions database consistent, and let a plain re-run carry on.

Real processes, real signals: a Chroma server started here, the ``atelier`` CLI as a child process. These tests
take tens of seconds each, so they are marked ``slow`` (``make test`` runs them; ``make test-fast`` does not).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from test_api import parse_sse, say, start
from ui_fixtures import HM, free_port, settings_env, wait_http

pytestmark = pytest.mark.slow
ATELIER = [sys.executable, "-m", "atelier.ui.cli"]


class ChromaServer:
    """``chroma run`` on a fixed port and folder, so it can be stopped and started again as the same server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ChromaServer":
        chroma = Path(sys.executable).parent / "chroma"
        self.proc = subprocess.Popen([str(chroma), "run", "--path", str(self.path), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"{self.url}/api/v2/heartbeat", timeout=60, proc=self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


def sample_ids(count: int) -> frozenset[str]:
    from conftest import hm_sample_ids

    return frozenset(sorted(hm_sample_ids())[:count])


def test_chroma_server_stopped_mid_turn_then_restarted(tmp_path, hm_settings):
    from atelier.tools.catalogs import CatalogOptions
    from atelier.tools.ingest import ingest
    from atelier.ui.api import create_app
    from atelier.ui.backend import build_assistant

    chroma = ChromaServer(tmp_path / "chroma").start()
    try:
        settings = hm_settings.model_copy(update={"chroma_url": chroma.url, "db": tmp_path / "atelier.db",
                                                  "collection_prefix": "faults"})
        report = ingest(HM, "hm", options=CatalogOptions(only_ids=sample_ids(48)), settings=settings,
                        progress=False, predict_missing=False)
        assert report.store_count == 48
        assistant = build_assistant(settings)
        with TestClient(create_app(assistant=assistant, settings=settings)) as client:
            session_id, headers = start(client)
            first = say(client, session_id, headers, json={"text": "black top"})
            assert any(name == "products" for name, _ in first)

            engine = assistant.runtime.search
            store, real_revision = engine.store, engine.store.revision

            def revision_after_the_server_died(*args, **kwargs):
                chroma.kill()
                return real_revision(*args, **kwargs)

            # The in-process index answers most searches without Chroma; its next revision check reads the
            # store, so the fault reaches the turn there (force that check now).
            store.revision = revision_after_the_server_died
            engine.live._checked = 0.0
            in_flight = say(client, session_id, headers, json={"text": "in blue instead"})
            store.revision = real_revision
            names = [name for name, _ in in_flight]
            assert names[-1] == "done" and "products" not in names
            error = next(data for name, data in in_flight if name == "error")
            assert error["code"] == "store_unavailable", error
            assert chroma.url not in error["message"] and "Connect" not in error["message"]
            assert client.get("/readyz").status_code == 503

            chroma.start()
            after = say(client, session_id, headers, json={"text": "black top"})
            assert "error" not in [name for name, _ in after]
            assert next(data for name, data in after if name == "products")["results"]
            assert client.get("/readyz").json()["store"]["products"] == 48
    finally:
        chroma.kill()


def test_kill_9_of_ingest_leaves_a_consistent_store_that_a_rerun_completes(tmp_path, hm_settings):
    from atelier.tools.ingest import ingest
    from atelier.tools.store import open_store

    settings = hm_settings.model_copy(update={"store": tmp_path / "store", "home": tmp_path})
    env = settings_env(settings)
    log = (tmp_path / "ingest.log").open("w")
    proc = subprocess.Popen([*ATELIER, "ingest", str(HM), "--format", "hm", "--limit", "48", "--batch-size", "8",
                             "--no-predict"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        progress = [int(n) for n in re.findall(r"(\d+)/48", (tmp_path / "ingest.log").read_text())]
        if progress and max(progress) >= 16:
            break
        time.sleep(0.2)
    assert proc.poll() is None, (tmp_path / "ingest.log").read_text()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)
    log.close()

    store = open_store(settings)
    partial = store.count()
    assert 0 < partial < 48
    assert store.text.count() - store.image.count() in (-8, 0, 8)  # at most one batch half-written
    with sqlite3.connect(tmp_path / "store" / "chroma.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    report = ingest(HM, "hm", limit=48, settings=settings, progress=False, predict_missing=False, batch_size=8)
    assert report.store_count == 48
    assert report.skipped_unchanged >= partial - 8 and report.added <= 48 - partial + 8
    assert open_store(settings).text.count() == open_store(settings).image.count() == 48


class HangingLLM:
    """An OpenAI-compatible endpoint that accepts the request and never answers: a turn waits inside it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(connection)
            self.accepted.set()

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.sock.close()


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    handle = log.open("a")
    proc = subprocess.Popen([*ATELIER, "serve", "--port", str(port)], env=env, stdout=handle,
                            stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=proc)
    return proc


def test_kill_9_of_the_server_mid_turn_keeps_the_sessions_db_consistent(tmp_path, hm_settings):
    store = tmp_path / "store"
    shutil.copytree(hm_settings.store_path, store)
    settings = hm_settings.model_copy(update={"store": store, "home": tmp_path, "db": tmp_path / "atelier.db"})
    llm = HangingLLM()
    env = {**settings_env(settings), "ATELIER_LLM": "openai", "ATELIER_LLM_BASE_URL": llm.base_url}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(env, port, tmp_path / "serve.log")
    try:
        created = httpx.post(f"{url}/v1/sessions", timeout=120).json()
        headers = {"Authorization": f"Bearer {created['token']}"}
        messages = f"{url}/v1/sessions/{created['session_id']}/messages"
        with httpx.stream("POST", messages, headers=headers, json={"text": "black dress"}, timeout=60) as stream:
            assert stream.status_code == 200
            assert llm.accepted.wait(60), "the turn never reached the LLM"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    finally:
        llm.close()
        if proc.poll() is None:
            proc.kill()

    from atelier.memory.store import SessionStore

    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    sessions = SessionStore(settings.db_path)
    memory = sessions.load(created["session_id"])
    logged = [t for t in sessions.turns(created["session_id"]) if t.kind == "message"]
    assert memory.turn == len(logged) and [t.turn for t in logged] == list(range(1, len(logged) + 1))

    restarted = serve({**env, "ATELIER_LLM": "none"}, port, tmp_path / "serve.log")
    try:
        events = parse_sse(httpx.post(messages, headers=headers, json={"text": "black dress"}, timeout=60).text)
        assert "error" not in [name for name, _ in events] and events[-1][0] == "done"
        assert events[-1][1]["turn"] == len(logged) + 1
        assert json.loads(json.dumps(SessionStore(settings.db_path).load(created["session_id"]).model_dump()))
    finally:
        restarted.terminate()
        restarted.wait(timeout=20)
