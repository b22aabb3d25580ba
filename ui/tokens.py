"""Bearer tokens for API sessions, kept as SHA-256 hashes in the shared sessions database.

A token is shown once, when its session is created; the database never holds it in the clear, so a
copied database cannot be used to read other shoppers' conversations. Living in the shared database
(SQLite or PostgreSQL, ``memory.database``), a token issued by one worker or host opens its session on
every other. A token expires after ``lifetime`` seconds without use (sliding, like a shop's login cookie;
OWASP API2, broken authentication) and can be revoked at once (``DELETE /v1/sessions/{id}``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from sqlalchemy import Column, Float, String, Table, select
from sqlalchemy.exc import IntegrityError

from atelier.memory.database import METADATA, Database, retrying

TOKENS = Table(
    "ui_session_tokens", METADATA,
    Column("session_id", String(64), primary_key=True),
    Column("token_sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)
TOUCH_EVERY_S = 60.0


class TokenCheck(Enum):
    """The answer of ``TokenStore.check``; true only when the token opens the session."""

    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"

    def __bool__(self) -> bool:
        return self is TokenCheck.OK


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Which API session a token opens (thread- and process-safe: one pooled connection per call).

    ``lifetime`` is in seconds (0: tokens never expire); ``clock`` is injectable for tests.
    """

    def __init__(self, db: str | Path, lifetime: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.db = Database(db)
        self.db.ensure([TOKENS])
        self.lifetime = lifetime
        self.clock = clock

    def issue(self, session_id: str) -> str:
        """A fresh token for ``session_id`` (replacing any earlier one)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        row = {"token_sha256": hash_token(token), "created_at": now, "last_used_at": now}

        def write() -> None:
            with self.db.engine.begin() as conn:
                replaced = conn.execute(TOKENS.update().where(TOKENS.c.session_id == session_id).values(**row))
                if replaced.rowcount == 0:
                    conn.execute(TOKENS.insert().values(session_id=session_id, **row))

        retrying(write, retry_on=(IntegrityError,))
        return token

    def exists(self, session_id: str) -> bool:
        return self._row(session_id) is not None

    def check(self, session_id: str, token: str) -> TokenCheck:
        """Does ``token`` open ``session_id``, and is it still fresh? A good check renews the token's life."""
        row = self._row(session_id)
        if row is None or not hmac.compare_digest(row.token_sha256, hash_token(token)):
            return TokenCheck.WRONG
        now = self.clock()
        last_used = row.last_used_at if row.last_used_at is not None else row.created_at
        if self.lifetime > 0 and now - last_used > self.lifetime:
            return TokenCheck.EXPIRED
        if now - last_used > TOUCH_EVERY_S:
            with self.db.engine.begin() as conn:
                conn.execute(TOKENS.update().where(TOKENS.c.session_id == session_id).values(last_used_at=now))
        return TokenCheck.OK

    def revoke(self, session_id: str) -> bool:
        """Forget the token of ``session_id``; ``False`` if it had none."""
        with self.db.engine.begin() as conn:
            return conn.execute(TOKENS.delete().where(TOKENS.c.session_id == session_id)).rowcount > 0

    def _row(self, session_id: str):  # noqa: ANN202 - a SQLAlchemy Row (token_sha256, created_at, last_used_at)
        with self.db.engine.connect() as conn:
            return conn.execute(select(TOKENS.c.token_sha256, TOKENS.c.created_at, TOKENS.c.last_used_at)
                                .where(TOKENS.c.session_id == session_id)).first()
