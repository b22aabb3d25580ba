"""Bearer tokens for API sessions, kept as SHA-256 hashes in the shared sessions database.

A token is shown once, when its session is created; the database never holds it in the clear, so a
copied database cannot be used to read other shoppers' conversations. Living in the shared database
(SQLite or PostgreSQL, ``memory.database``), a token issued by one worker or host opens its session on
every other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from sqlalchemy import Column, Float, String, Table, select
from sqlalchemy.exc import IntegrityError

from atelier.memory.database import METADATA, Database, retrying

TOKENS = Table(
    "ui_session_tokens", METADATA,
    Column("session_id", String(64), primary_key=True),
    Column("token_sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Which API session a token opens (thread- and process-safe: one pooled connection per call)."""

    def __init__(self, db: str | Path) -> None:
        self.db = Database(db)
        self.db.ensure([TOKENS])

    def issue(self, session_id: str) -> str:
        """A fresh token for ``session_id`` (replacing any earlier one)."""
        token = secrets.token_urlsafe(32)
        row = {"token_sha256": hash_token(token), "created_at": time.time()}

        def write() -> None:
            with self.db.engine.begin() as conn:
                replaced = conn.execute(TOKENS.update().where(TOKENS.c.session_id == session_id).values(**row))
                if replaced.rowcount == 0:
                    conn.execute(TOKENS.insert().values(session_id=session_id, **row))

        retrying(write, retry_on=(IntegrityError,))
        return token

    def exists(self, session_id: str) -> bool:
        return self._stored_hash(session_id) is not None

    def check(self, session_id: str, token: str) -> bool:
        stored = self._stored_hash(session_id)
        return stored is not None and hmac.compare_digest(stored, hash_token(token))

    def _stored_hash(self, session_id: str) -> str | None:
        with self.db.engine.connect() as conn:
            return conn.execute(select(TOKENS.c.token_sha256).where(TOKENS.c.session_id == session_id)).scalar()
