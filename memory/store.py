"""Sessions and turn logs in the shared sessions database (``memory.database``: SQLite or PostgreSQL), one
row per turn, in the spirit of simonw/llm's ``logs.db``: every message, parsed intent, tool call, result id and
reply can be inspected and replayed.

Several threads, processes and hosts may write one session at once, so no write is a blind read-modify-write:
``commit`` stores a memory only if nobody else wrote the session since it was loaded (a ``version`` column,
optimistic concurrency control as in Kung & Robinson 1981) and logs the turn in the same transaction, numbered
``seq`` = 1..N per session under a UNIQUE constraint. On a conflict the caller's ``rebase`` re-applies its change
to the newer memory and the write is tried again, so no update is ever lost.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (Column, Float, Index, Integer, String, Table, Text, and_, func, insert, select, text,
    update)
from sqlalchemy.exc import IntegrityError

from atelier.memory.database import METADATA, Database, retrying
from atelier.memory.state import SessionMemory
from atelier.tools.errors import NotFoundError

SESSIONS = Table(
    "sessions", METADATA,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("memory", Text, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("0")),
)
TURNS = Table(
    "turns", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False, server_default=text("0")),
    Column("turn", Integer, nullable=False),
    Column("kind", String(16), nullable=False, server_default=text("'message'")),
    Column("created_at", Float, nullable=False),
    Column("message", Text, nullable=False, server_default=text("''")),
    Column("image", Text),
    Column("intent", Text, nullable=False, server_default=text("'{}'")),
    Column("tool_calls", Text, nullable=False, server_default=text("'[]'")),
    Column("result_ids", Text, nullable=False, server_default=text("'[]'")),
    Column("reply", Text, nullable=False, server_default=text("''")),
    Column("memory", Text, nullable=False, server_default=text("'{}'")),
    Column("error", Text),
    Column("latency_ms", Float),
)
MESSAGE_OK = and_(TURNS.c.kind == "message", TURNS.c.error.is_(None))


def _number_old_turns(conn) -> None:  # noqa: ANN001 - a migration step on a live connection
    """Logs written before ``seq`` existed: number each session's rows 1..N in insertion order."""
    older = TURNS.alias("older")
    position = (select(func.count()).select_from(older)
                .where(older.c.session_id == TURNS.c.session_id, older.c.id <= TURNS.c.id).scalar_subquery())
    conn.execute(update(TURNS).where(TURNS.c.seq == 0).values(seq=position))


TURNS.info["after_columns"] = _number_old_turns
Index("turns_session_seq", TURNS.c.session_id, TURNS.c.seq, unique=True)
Index("turns_session_turn", TURNS.c.session_id, TURNS.c.turn, unique=True,
      sqlite_where=MESSAGE_OK, postgresql_where=MESSAGE_OK)
TABLES = (SESSIONS, TURNS)
RECORD_COLUMNS = ("session_id", "turn", "kind", "created_at", "message", "image", "intent", "tool_calls",
                  "result_ids", "reply", "memory", "error", "latency_ms")
JSON_COLUMNS = ("intent", "tool_calls", "result_ids", "memory")


class VersionConflict(RuntimeError):
    """Someone else wrote the session since this memory was loaded; reload, re-apply, retry."""


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
    """Session memories and turn logs in the sessions database (a SQLite path or a PostgreSQL URL)."""

    def __init__(self, db: str | Path) -> None:
        self.db = Database(db)
        self.db.ensure(TABLES)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex[:12]

    def create(self, session_id: str | None = None) -> SessionMemory:
        memory = SessionMemory(session_id=session_id or self.new_id())
        now = time.time()
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(SESSIONS).values(id=memory.session_id, created_at=now, updated_at=now,
                                                     memory=memory.model_dump_json(), version=0))
        except IntegrityError:
            pass
        return self.load(memory.session_id)

    def exists(self, session_id: str) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(select(SESSIONS.c.id).where(SESSIONS.c.id == session_id)).first() is not None

    def load(self, session_id: str) -> SessionMemory:
        """The session's memory, remembering the version it was read at (``version_of``)."""
        with self.db.engine.connect() as conn:
            row = conn.execute(select(SESSIONS.c.memory, SESSIONS.c.version)
                               .where(SESSIONS.c.id == session_id)).first()
        if row is None:
            raise SessionNotFound(session_id)
        memory = SessionMemory.model_validate_json(row[0])
        memory._version = row[1]
        return memory

    def get_or_create(self, session_id: str | None) -> SessionMemory:
        if session_id:
            try:
                return self.load(session_id)
            except SessionNotFound:
                pass
        return self.create(session_id)

    def commit(self, memory: SessionMemory, record: TurnRecord | None = None,
               rebase: Callable[[SessionMemory], None] | None = None, attempts: int = 25) -> SessionMemory:
        """Store ``memory`` and log ``record`` in one transaction, if the session is still at the version
        ``memory`` was loaded at. Otherwise reload, let ``rebase`` re-apply the change to the newer memory
        (it may also renumber ``record``) and try again; without ``rebase`` raise ``VersionConflict``.
        Returns the memory as stored (its version advanced)."""
        for attempt in range(1, attempts + 1):
            try:
                return retrying(lambda: self._commit_once(memory, record))
            except VersionConflict:
                if rebase is None or attempt == attempts:
                    raise
            time.sleep(random.uniform(0.001, 0.004) * attempt)
            memory = self.load(memory.session_id)
            rebase(memory)
        raise AssertionError("unreachable")

    def _commit_once(self, memory: SessionMemory, record: TurnRecord | None) -> SessionMemory:
        version = memory._version
        now = time.time()
        with self.db.engine.begin() as conn:
            changed = conn.execute(
                update(SESSIONS).where(SESSIONS.c.id == memory.session_id, SESSIONS.c.version == version)
                .values(memory=memory.model_dump_json(), updated_at=now, version=SESSIONS.c.version + 1))
            if changed.rowcount != 1:
                if not self._exists_in(conn, memory.session_id):
                    raise SessionNotFound(memory.session_id)
                raise VersionConflict(memory.session_id)
            if record is not None:
                record.memory = memory.model_dump(mode="json")
                self._insert(conn, record)
        memory._version = version + 1
        return memory

    def save(self, memory: SessionMemory) -> None:
        """Store ``memory`` (raises ``VersionConflict`` if the session changed since it was loaded)."""
        self.commit(memory)

    def delete(self, session_id: str) -> bool:
        """Erase a session's memory and turn log in one transaction; ``False`` if there was none."""
        def once() -> bool:
            with self.db.engine.begin() as conn:
                conn.execute(TURNS.delete().where(TURNS.c.session_id == session_id))
                return conn.execute(SESSIONS.delete().where(SESSIONS.c.id == session_id)).rowcount > 0

        return retrying(once)

    def log(self, record: TurnRecord) -> None:
        """Append a record without changing the memory (its seq still taken under the session's row lock)."""
        def once() -> None:
            with self.db.engine.begin() as conn:
                touched = conn.execute(update(SESSIONS).where(SESSIONS.c.id == record.session_id)
                                       .values(updated_at=time.time()))
                if touched.rowcount != 1:
                    raise SessionNotFound(record.session_id)
                self._insert(conn, record)

        retrying(once)

    @staticmethod
    def _exists_in(conn, session_id: str) -> bool:  # noqa: ANN001
        return conn.execute(select(SESSIONS.c.id).where(SESSIONS.c.id == session_id)).first() is not None

    @staticmethod
    def _insert(conn, record: TurnRecord) -> None:  # noqa: ANN001 - runs inside the caller's transaction
        seq = conn.execute(select(func.coalesce(func.max(TURNS.c.seq), 0) + 1)
                           .where(TURNS.c.session_id == record.session_id)).scalar_one()
        values = record.model_dump(include=set(RECORD_COLUMNS))
        for name in JSON_COLUMNS:
            values[name] = json.dumps(values[name], default=str)
        conn.execute(insert(TURNS).values(seq=seq, **values))

    def turns(self, session_id: str) -> list[TurnRecord]:
        """Every logged turn of a session, oldest first (raises ``SessionNotFound``)."""
        with self.db.engine.connect() as conn:
            if not self._exists_in(conn, session_id):
                raise SessionNotFound(session_id)
            rows = conn.execute(select(*(TURNS.c[name] for name in RECORD_COLUMNS))
                                .where(TURNS.c.session_id == session_id).order_by(TURNS.c.seq)).mappings().all()
        return [TurnRecord(**{k: json.loads(v) if k in JSON_COLUMNS else v for k, v in row.items()})
                for row in rows]

    def sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent sessions, newest first: id, times and number of turns."""
        count = (select(func.count()).select_from(TURNS).where(TURNS.c.session_id == SESSIONS.c.id)
                 .scalar_subquery())
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(SESSIONS.c.id, SESSIONS.c.created_at, SESSIONS.c.updated_at, count)
                                .order_by(SESSIONS.c.updated_at.desc()).limit(limit)).all()
        return [{"id": r[0], "created_at": r[1], "updated_at": r[2], "turns": r[3]} for r in rows]
