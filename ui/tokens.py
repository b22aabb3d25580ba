"""Bearer tokens for API sessions, kept as SHA-256 hashes in the Atelier SQLite file.

A token is shown once, when its session is created; the database never holds it in the clear, so a
copied database file cannot be used to read other shoppers' conversations.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS ui_session_tokens (
    session_id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
)"""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Which API session a token opens. One short-lived connection per call keeps it thread-safe."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=30)

    def issue(self, session_id: str) -> str:
        """A fresh token for ``session_id`` (replacing any earlier one)."""
        token = secrets.token_urlsafe(32)
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO ui_session_tokens VALUES (?, ?, ?)",
                       (session_id, hash_token(token), time.time()))
        return token

    def exists(self, session_id: str) -> bool:
        return self._stored_hash(session_id) is not None

    def check(self, session_id: str, token: str) -> bool:
        stored = self._stored_hash(session_id)
        return stored is not None and hmac.compare_digest(stored, hash_token(token))

    def _stored_hash(self, session_id: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT token_sha256 FROM ui_session_tokens WHERE session_id = ?",
                             (session_id,)).fetchone()
        return row[0] if row else None
