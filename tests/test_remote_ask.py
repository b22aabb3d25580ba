"""``atelier ask --server URL``: the turn runs in a running ``atelier serve`` (its own home and sessions database),
the CLI streams it and prints what an in-process ask prints; memory lives on the server between asks; a server
that stops answering is an error for its sessions and an in-process answer for new ones."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from ui_fixtures import free_port, hm_photo, settings_env, wait_http

pytestmark = pytest.mark.server


@pytest.fixture()
def server(hm_store_settings, tmp_path):
    home = tmp_path / "server-home"
    env = settings_env(hm_store_settings) | {"ATELIER_HOME": str(home), "ATELIER_DB": str(home / "server.db"),
                                             "ATELIER_RATE_LIMIT_PER_MINUTE": "0", "ATELIER_LLM": "none"}
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "atelier"), "serve", "--port", str(port)], env=env,
                            stdout=(tmp_path / "server.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", timeout=180, proc=proc)
        yield proc, url, home
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture()
def cli(hm_settings, monkeypatch, tmp_path):
    home = tmp_path / "cli-home"
    monkeypatch.setenv("ATELIER_HOME", str(home))
    monkeypatch.setenv("ATELIER_DB", str(home / "cli.db"))
    monkeypatch.setenv("ATELIER_LLM", "none")
    monkeypatch.setenv("ATELIER_DATASETS", str(hm_settings.datasets))
    monkeypatch.delenv("ATELIER_SERVER_URL", raising=False)
    runner = CliRunner()

    def ask(*args: str) -> tuple[int, dict | None, str]:
        from atelier.ui.cli import app

        result = runner.invoke(app, ["ask", *args, "--json", "--store", str(hm_settings.store_path)])
        try:
            payload = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            payload = None
        return result.exit_code, payload, result.output

    return ask, home


def test_ask_through_a_running_server_answers_as_in_process_and_keeps_memory_there(server, cli, hm_sample):
    proc, url, server_home = server
    ask, cli_home = cli
    code, remote, output = ask("--server", url, "--session", "r1", "a red dress under 40")
    assert code == 0, output
    _, local, _ = ask("--session", "local-1", "a red dress under 40")
    assert remote["session"] == "r1"
    assert [r["id"] for r in remote["results"]] == [r["id"] for r in local["results"]] != []
    assert [c["name"] for c in remote["tool_calls"]] == [c["name"] for c in local["tool_calls"]]
    assert all(r["image_path"] == f"{url}/v1/products/{r['id']}/image" for r in remote["results"])

    code, second, output = ask("--server", url, "--session", "r1", "actually black")
    assert code == 0, output
    assert second["memory"]["constraints"]["must"] == {"colour": ["black"], "category": ["dress"]}
    assert second["memory"]["constraints"]["price_max"] == 40
    assert all(r["colour"] == "black" and r["category"] == "dress" for r in second["results"])

    saved = cli_home / "remote-sessions.json"
    mapping = json.loads(saved.read_text())[url]["r1"]
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert mapping["token"] not in output and (server_home / "server.db").exists()

    forged = json.loads(saved.read_text())
    forged[url]["r3"] = {"id": mapping["id"], "token": "not-the-token"}
    saved.write_text(json.dumps(forged))
    code, refused, output = ask("--server", url, "--session", "r3", "cheaper")
    assert code == 1 and refused["error"]["code"] == "forbidden"
    assert "session r3 cannot be continued" in refused["error"]["message"]

    photo = hm_photo(min(hm_sample))
    code, with_photo, output = ask("--server", url, "--session", "r2", "like this but in black", "--image",
                                   str(photo))
    _, local_photo, _ = ask("--session", "local-2", "like this but in black", "--image", str(photo))
    assert code == 0, output
    assert [c["name"] for c in with_photo["tool_calls"]] == [c["name"] for c in local_photo["tool_calls"]]
    assert [r["id"] for r in with_photo["results"]] == [r["id"] for r in local_photo["results"]] != []

    proc.terminate()
    proc.wait(timeout=30)
    code, _, output = ask("--server", url, "--session", "r1", "cheaper")
    assert code == 1 and "lives on the server" in output
    code, fallback, output = ask("--server", url, "--session", "new-here", "a red dress under 40")
    assert code == 0 and "answering in-process" in output
    assert [r["id"] for r in fallback["results"]] == [r["id"] for r in local["results"]]
