"""Fixtures for the sessions database: a real PostgreSQL server (the one .ci/run started, or one started here
with .ci/postgres) and ``db_url``, a fresh empty database per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
POSTGRES_SCRIPT = REPO / ".ci" / "postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql://`` URL of a server on loopback: ``ATELIER_TEST_POSTGRES_URL`` or a throwaway one."""
    url = os.environ.get("ATELIER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="atelier-pg-"))
    try:
        started = subprocess.run([str(POSTGRES_SCRIPT), "start", str(folder)], capture_output=True, text=True,
                                 timeout=300, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server could be started here ({exc}); .ci/run provides one")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_postgres_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh sessions database: a SQLite file, or a new database on the PostgreSQL server."""
    from atelier.memory.database import Database

    if request.param == "sqlite":
        yield str(tmp_path / "sessions.db")
    else:
        yield fresh_postgres_database(request.getfixturevalue("postgres_server"))
    Database.dispose_all()
