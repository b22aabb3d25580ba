"""Sessions and turn logs in SQLite (``settings.db_path``), one row per turn, in the spirit of simonw/llm's
``logs.db``: every message, parsed intent, tool call, result id and reply can be inspected and replayed.

A connection per operation (WAL mode) keeps it safe to share between the CLI, the API's worker threads
and several processes appending to one conversation.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from atelier.memory.state import SessionMemory
from atelier.tools.errors import NotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    memory TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    turn INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'message',
    created_at REAL NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    image TEXT,
    intent TEXT NOT NULL DEFAULT '{}',
    tool_calls TEXT NOT NULL DEFAULT '[]',
    result_ids TEXT NOT NULL DEFAULT '[]',
    reply TEXT NOT NULL DEFAULT '',
    memory TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    latency_ms REAL
);
CREATE INDEX IF NOT EXISTS turns_session ON turns(session_id, id);
"""


class SessionNotFound(NotFoundError):
    """No session with this id exists (reads never create one)."""

    code = "not_found"
    public_message = "No such session; start a new one."

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id

    def __str__(self) -> str:
        return f"no session {self.session_id!r}; start one with a message first"


class TurnRecord(BaseModel):
    """One logged turn: a message (``kind="message"``), a click on a product (``kind="feedback"``), a memory
    item the shopper removed (``kind="forget"``) or a product put in focus (``kind="focus"``)."""

    session_id: str
    turn: int
    kind: str = "message"
    created_at: float = Field(default_factory=time.time)
    message: str = ""
    image: str | None = None
    intent: dict[str, Any] = Field(default_factory=dict)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    result_ids: list[str] = Field(default_factory=list)
    reply: str = ""
    memory: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    latency_ms: float | None = None


class SessionStore:
    """Session memories and turn logs in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
            db.commit()
        finally:
            db.close()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex[:12]

    def create(self, session_id: str | None = None) -> SessionMemory:
        memory = SessionMemory(session_id=session_id or self.new_id())
        now = time.time()
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO sessions (id, created_at, updated_at, memory) VALUES (?, ?, ?, ?)",
                       (memory.session_id, now, now, memory.model_dump_json()))
        return self.load(memory.session_id)

    def exists(self, session_id: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def load(self, session_id: str) -> SessionMemory:
        with self._connect() as db:
            row = db.execute("SELECT memory FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return SessionMemory.model_validate_json(row[0])

    def get_or_create(self, session_id: str | None) -> SessionMemory:
        if session_id and self.exists(session_id):
            return self.load(session_id)
        return self.create(session_id)

    def save(self, memory: SessionMemory) -> None:
        with self._connect() as db:
            db.execute("UPDATE sessions SET memory = ?, updated_at = ? WHERE id = ?",
                       (memory.model_dump_json(), time.time(), memory.session_id))

    def log(self, record: TurnRecord) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO turns (session_id, turn, kind, created_at, message, image, intent, tool_calls, "
                "result_ids, reply, memory, error, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.session_id, record.turn, record.kind, record.created_at, record.message, record.image,
                 json.dumps(record.intent, default=str), json.dumps(record.tool_calls, default=str),
                 json.dumps(record.result_ids), record.reply, json.dumps(record.memory, default=str),
                 record.error, record.latency_ms))

    def turns(self, session_id: str) -> list[TurnRecord]:
        """Every logged turn of a session, oldest first (raises ``SessionNotFound``)."""
        if not self.exists(session_id):
            raise SessionNotFound(session_id)
        with self._connect() as db:
            rows = db.execute(
                "SELECT session_id, turn, kind, created_at, message, image, intent, tool_calls, result_ids, "
                "reply, memory, error, latency_ms FROM turns WHERE session_id = ? ORDER BY id", (session_id,)
            ).fetchall()
        return [TurnRecord(session_id=r[0], turn=r[1], kind=r[2], created_at=r[3], message=r[4], image=r[5],
                           intent=json.loads(r[6]), tool_calls=json.loads(r[7]), result_ids=json.loads(r[8]),
                           reply=r[9], memory=json.loads(r[10]), error=r[11], latency_ms=r[12]) for r in rows]

    def sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent sessions, newest first: id, times and number of turns."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT s.id, s.created_at, s.updated_at, COUNT(t.id) FROM sessions s LEFT JOIN turns t "
                "ON t.session_id = s.id GROUP BY s.id ORDER BY s.updated_at DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "created_at": r[1], "updated_at": r[2], "turns": r[3]} for r in rows]
