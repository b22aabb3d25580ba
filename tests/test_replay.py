"""Every checked-in conversation (tests/conversations/*.yaml) replayed on the H&M sample store, plus the
conversational CLI (ask across processes-worth of sessions, replay, export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from atelier.assistant.parser import INTENTS
from atelier.assistant.replay import format_report, load_conversation, run_conversation

CONVERSATIONS = sorted((Path(__file__).parent / "conversations").glob("*.yaml"))


@pytest.fixture(scope="module")
def replay_assistant(hm_store_settings, tmp_path_factory):
    from atelier.assistant.turn import Assistant

    home = tmp_path_factory.mktemp("replay")
    settings = hm_store_settings.model_copy(update={"home": home, "db": home / "replay.db", "llm": "none"})
    return Assistant(settings)


def test_conversations_cover_every_intent_and_click():
    assert len(CONVERSATIONS) >= 25
    intents, clicks, lengths = set(), set(), []
    for path in CONVERSATIONS:
        conversation = load_conversation(path)
        lengths.append(len(conversation.turns))
        for turn in conversation.turns:
            if turn.expect.intent:
                intents.add(turn.expect.intent)
            if turn.click:
                clicks.update(turn.click)
    assert intents == set(INTENTS)
    assert clicks == {"like", "dislike", "more_like_this"}
    assert min(lengths) >= 1 and max(lengths) <= 8  # the honesty rows are one question each


@pytest.mark.parametrize("path", CONVERSATIONS, ids=[p.stem for p in CONVERSATIONS])
def test_conversation(path, hm_settings, replay_assistant):
    result = run_conversation(load_conversation(path), replay_assistant, hm_settings, path=str(path))
    assert result.passed, format_report([result])


@pytest.fixture()
def cli_env(hm_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("ATELIER_HOME", str(tmp_path))
    monkeypatch.setenv("ATELIER_DB", str(tmp_path / "cli.db"))
    monkeypatch.setenv("ATELIER_LLM", "none")
    monkeypatch.setenv("ATELIER_DATASETS", str(hm_settings.datasets))
    return ["--store", str(hm_settings.store_path)]


def test_cli_ask_continues_a_session_and_prints_json(cli_env):
    from atelier.ui.cli import app

    runner = CliRunner()
    first = runner.invoke(app, ["ask", "--session", "cli-1", "a red dress under 40", "--json", *cli_env])
    assert first.exit_code == 0, first.output
    one = json.loads(first.output)
    assert one["session"] == "cli-1" and one["tool_calls"][0]["name"] == "search_products"
    assert one["results"] and all(r["colour"] == "red" and r["price"] <= 40 for r in one["results"])
    assert set(one["results"][0]) >= {"id", "title", "category", "colour", "price", "score", "why"}
    second = runner.invoke(app, ["ask", "--session", "cli-1", "actually black", "--json", *cli_env])
    two = json.loads(second.output)
    assert two["memory"]["constraints"]["must"] == {"colour": ["black"], "category": ["dress"]}
    assert two["memory"]["constraints"]["price_max"] == 40
    assert all(r["colour"] == "black" and r["category"] == "dress" for r in two["results"])

    exported = runner.invoke(app, ["export", "cli-1"])
    assert exported.exit_code == 0, exported.output
    data = yaml.safe_load(exported.output)
    assert [t["say"] for t in data["turns"]] == ["a red dress under 40", "actually black"]
    missing = runner.invoke(app, ["export", "nope"])
    assert missing.exit_code == 1 and "no session 'nope'" in missing.output


def test_cli_replay_exit_codes_and_diff(cli_env, tmp_path):
    from atelier.ui.cli import app

    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"name": "broken", "turns": [
        {"say": "a red dress", "expect": {"results": [{"all": {"colour": "green"}}]}}]}))
    runner = CliRunner()
    ok = runner.invoke(app, ["replay", str(CONVERSATIONS[0]), *cli_env])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["replay", str(broken), *cli_env])
    assert bad.exit_code == 1
    assert "FAIL broken" in bad.output and "should have {'colour': 'green'}" in bad.output
