"""Two ``atelier serve`` processes on one sessions database, 20 clients sending to one session through both:
every turn answered and logged once, numbered 1..N, none lost from memory. On SQLite the servers share the
sample store folder; on a real PostgreSQL they share a Chroma server too, as two hosts would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import HM, MODEL_CACHE
from db_fixtures import db_url, postgres_server  # noqa: F401
from ui_fixtures import free_port, settings_env, wait_http

CLIENTS, MESSAGES = 20, 5
COLOURS = ["red", "black", "blue", "green", "white"]

pytestmark = pytest.mark.server


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    atelier = Path(sys.executable).parent / "atelier"
    proc = subprocess.Popen([str(atelier), "serve", "--port", str(port)], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


async def one_session_through_both(urls: list[str]) -> tuple[str, dict, list[int]]:
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        created = (await client.post(urls[0] + "/v1/sessions")).json()
        session_id, headers = created["session_id"], {"Authorization": f"Bearer {created['token']}"}

        async def say(url: str, text: str) -> int:
            turn = 0
            async with client.stream("POST", f"{url}/v1/sessions/{session_id}/messages", headers=headers,
                                     json={"text": text}) as response:
                assert response.status_code == 200
                event = ""
                async for line in response.aiter_lines():
                    event = line[7:] if line.startswith("event: ") else event
                    if line.startswith("data: ") and event in ("done", "error"):
                        data = json.loads(line[6:])
                        assert event == "done", data
                        turn = data["turn"]
            return turn

        async def shopper(i: int) -> list[int]:
            return [await say(urls[(i + j) % 2], f"a {COLOURS[(i + j) % 5]} dress") for j in range(MESSAGES)]

        answered = [n for batch in await asyncio.gather(*(shopper(i) for i in range(CLIENTS))) for n in batch]
        view = (await client.get(f"{urls[1]}/v1/sessions/{session_id}", headers=headers)).json()
    return session_id, view, answered


def chroma_server_env(request: pytest.FixtureRequest, tmp_path: Path, hm_sample: frozenset[str]) -> dict:
    """150 sample articles ingested into the Chroma server; the variables that point a server at them."""
    from atelier.tools.catalogs import CatalogOptions
    from atelier.tools.ingest import ingest
    from atelier.tools.settings import override_settings

    url = request.getfixturevalue("chroma_server_url")
    prefix = f"scale{tmp_path.name[-6:].replace('-', '')}"
    settings = override_settings(chroma_url=url, home=tmp_path, encoder="compact", cache=MODEL_CACHE,
                                 collection_prefix=prefix)
    ingest(HM, "hm", options=CatalogOptions(only_ids=frozenset(sorted(hm_sample)[:150])), settings=settings,
           progress=False)
    return {"ATELIER_CHROMA_URL": url, "ATELIER_COLLECTION_PREFIX": prefix, "ATELIER_CACHE": str(MODEL_CACHE)}


def test_two_servers_one_session_lose_no_turn(db_url, hm_store_settings, hm_sample, tmp_path, request):
    env = settings_env(hm_store_settings) | {"ATELIER_DB": db_url, "ATELIER_HOME": str(tmp_path),
                                             "ATELIER_RATE_LIMIT_PER_MINUTE": "0", "ATELIER_LLM": "none"}
    if db_url.startswith("postgresql"):
        env |= chroma_server_env(request, tmp_path, hm_sample)
    servers = [serve(env, tmp_path / f"server-{i}.log") for i in range(2)]
    try:
        for proc, url in servers:
            wait_http(url + "/healthz", timeout=120, proc=proc)
        session_id, view, answered = asyncio.run(one_session_through_both([url for _, url in servers]))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)
    total = CLIENTS * MESSAGES
    numbers = [h["turn"] for h in view["history"] if h["kind"] == "message"]
    assert sorted(answered) == list(range(1, total + 1))
    assert sorted(numbers) == list(range(1, total + 1))
    assert not any(h["failed"] for h in view["history"])
    assert view["memory"]["turn"] == total
