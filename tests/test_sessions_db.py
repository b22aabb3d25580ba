"""The shared sessions database on SQLite and on a real PostgreSQL: no lost update across processes, turns
numbered 1..N under UNIQUE constraints, tokens and rate limits seen by every worker, old files migrated."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
from db_fixtures import db_url, postgres_server  # noqa: F401
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from atelier.memory import SessionMemory, SessionStore, TurnRecord, VersionConflict
from atelier.memory.state import Detail
from atelier.memory.store import TURNS

PROCESSES, TURNS_EACH = 4, 25


def one_turn(memory: SessionMemory, record: TurnRecord, worker: int) -> None:
    """What a message turn does to memory: count the turn and remember one detail."""
    memory.turn += 1
    memory.details.append(Detail(turn=memory.turn, text=f"w{worker}"))
    record.turn = memory.turn


def hammer(url: str, session_id: str, worker: int) -> None:
    store = SessionStore(url)
    for _ in range(TURNS_EACH):
        memory = store.load(session_id)
        record = TurnRecord(session_id=session_id, turn=0, message=f"from {worker}")
        one_turn(memory, record, worker)
        store.commit(memory, record, rebase=lambda fresh, r=record: one_turn(fresh, r, worker))


def test_processes_writing_one_session_lose_no_update(db_url):
    store = SessionStore(db_url)
    session_id = store.create().session_id
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=hammer, args=(db_url, session_id, w)) for w in range(PROCESSES)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    total = PROCESSES * TURNS_EACH
    memory = store.load(session_id)
    turns = store.turns(session_id)
    assert memory.turn == total and len(memory.details) == total
    assert sorted(t.turn for t in turns) == list(range(1, total + 1))
    assert [t.memory["turn"] for t in turns] == list(range(1, total + 1))
    assert sorted(d.text for d in memory.details) == sorted(f"w{w}" for w in range(PROCESSES) for _ in
                                                            range(TURNS_EACH))


def test_stale_write_is_refused_and_rebased(db_url):
    store = SessionStore(db_url)
    first = store.create()
    second = store.load(first.session_id)
    first.constraints.must["colour"] = ["red"]
    store.commit(first)
    second.preferences.append("darker")
    with pytest.raises(VersionConflict):
        store.commit(second)
    stored = store.commit(second, rebase=lambda fresh: fresh.preferences.append("darker"))
    again = store.load(first.session_id)
    assert again.constraints.must == {"colour": ["red"]} and again.preferences == ["darker"]
    assert stored._version == again._version == 2


def test_turn_log_is_numbered_and_unique(db_url):
    store = SessionStore(db_url)
    memory = store.create()
    memory.turn = 1
    store.commit(memory, TurnRecord(session_id=memory.session_id, turn=1, message="a red dress"))
    store.log(TurnRecord(session_id=memory.session_id, turn=1, kind="feedback", message="like 1"))
    store.log(TurnRecord(session_id=memory.session_id, turn=2, message="failed", error="boom"))
    turns = store.turns(memory.session_id)
    assert [(t.kind, t.turn) for t in turns] == [("message", 1), ("feedback", 1), ("message", 2)]
    assert turns[0].memory["turn"] == 1
    row = {"session_id": memory.session_id, "kind": "message", "created_at": 0.0, "message": "dup"}
    with store.db.engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(TURNS).values(seq=1, turn=9, **row))
    with store.db.engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(TURNS).values(seq=9, turn=1, **row))


def test_tokens_and_rate_limits_are_shared_by_workers(db_url):
    from atelier.ui.ratelimit import SharedRateLimiter
    from atelier.ui.tokens import TokenStore

    token = TokenStore(db_url).issue("s1")
    other_worker = TokenStore(db_url)
    assert other_worker.check("s1", token) and not other_worker.check("s1", token + "x")
    assert not other_worker.exists("s2")
    now = [6000.0]
    one, two = (SharedRateLimiter(db_url, 4, clock=lambda: now[0]) for _ in range(2))
    assert [one.hit("1.2.3.4"), two.hit("1.2.3.4"), one.hit("1.2.3.4"), two.hit("1.2.3.4")] == [0.0] * 4
    assert two.hit("1.2.3.4") == 60.0 and one.hit("5.6.7.8") == 0.0
    now[0] += 70
    assert one.hit("1.2.3.4") == pytest.approx(14.0)
    now[0] += 50
    assert one.hit("1.2.3.4") == 0.0


def test_old_sqlite_file_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE sessions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                                   memory TEXT NOT NULL);
            CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, turn INTEGER NOT NULL,
                kind TEXT NOT NULL DEFAULT 'message', created_at REAL NOT NULL, message TEXT NOT NULL DEFAULT '',
                image TEXT, intent TEXT NOT NULL DEFAULT '{}', tool_calls TEXT NOT NULL DEFAULT '[]',
                result_ids TEXT NOT NULL DEFAULT '[]', reply TEXT NOT NULL DEFAULT '',
                memory TEXT NOT NULL DEFAULT '{}', error TEXT, latency_ms REAL);
            INSERT INTO sessions VALUES ('s1', 1, 1, '{"session_id": "s1", "turn": 2}');
            INSERT INTO turns (session_id, turn, created_at, message) VALUES ('s1', 1, 1, 'a'), ('s1', 2, 2, 'b');
        """)
    store = SessionStore(path)
    memory = store.load("s1")
    memory.turn = 3
    store.commit(memory, TurnRecord(session_id="s1", turn=3, message="c"))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT seq, turn, message FROM turns ORDER BY id").fetchall() == [
            (1, 1, "a"), (2, 2, "b"), (3, 3, "c")]
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"turns_session_seq", "turns_session_turn"} <= indexes
    assert store.load("s1")._version == 1
