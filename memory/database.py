"""The shared sessions database: SQLite by default, PostgreSQL when ``ATELIER_DB`` is a ``postgresql://`` URL.

Everything several workers or hosts must agree on lives here (session memories, turn logs, API tokens,
rate-limit counters), written through SQLAlchemy Core so one schema serves both engines. Tables of every
layer register on ``METADATA``; ``Database.ensure`` creates what is missing and adds missing columns (then runs
the table's ``info["after_columns"]`` step to fill them) and indexes (migrations in code, idempotent, safe when
several processes start at once). One engine per URL
per process: its connection pool is shared by every store and thread.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, Index, MetaData, Table, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateIndex

from atelier.tools.errors import UnavailableError

log = logging.getLogger(__name__)

METADATA = MetaData()
T = TypeVar("T")
POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")
MIGRATION_LOCK = 727_274


def database_url(db: str | Path) -> str:
    """An SQLAlchemy URL for a SQLite file path or a PostgreSQL URL (driven by psycopg 3)."""
    value = str(db)
    for prefix in POSTGRES_PREFIXES:
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix):]
    if value.startswith("sqlite:"):
        return value
    return f"sqlite:///{Path(value).expanduser()}"


def is_postgres(db: str | Path) -> bool:
    return str(db).startswith(POSTGRES_PREFIXES)


def redact(url: str) -> str:
    """The URL without its password, for logs and health reports."""
    head, sep, tail = url.rpartition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':')[0]}:***@{tail}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI hook signature
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """One engine (and connection pool) over the sessions database of ``url``."""

    _engines: dict[str, Engine] = {}
    _ensured: set[tuple[str, str]] = set()
    _lock = threading.Lock()

    def __init__(self, db: str | Path) -> None:
        self.url = database_url(db)
        self.postgres = self.url.startswith("postgresql")
        self.engine = self._engine(self.url)

    @classmethod
    def _engine(cls, url: str) -> Engine:
        with cls._lock:
            engine = cls._engines.get(url)
            if engine is None:
                if url.startswith("sqlite:///"):
                    Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
                    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                           pool_size=8, max_overflow=16)
                    event.listen(engine, "connect", _sqlite_pragmas)
                else:
                    engine = create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True,
                                           pool_recycle=1800)
                cls._engines[url] = engine
            return engine

    @classmethod
    def dispose_all(cls) -> None:
        """Close every pooled connection (after a fork, or at the end of a test)."""
        with cls._lock:
            for engine in cls._engines.values():
                engine.dispose()
            cls._engines.clear()
            cls._ensured.clear()

    def ensure(self, tables: Iterable[Table]) -> None:
        """Create ``tables`` if missing and migrate older schemas (missing columns, then indexes)."""
        tables = list(tables)
        key = (self.url, ",".join(sorted(t.name for t in tables)))
        if key in self._ensured:
            return
        retrying(lambda: self._migrate(tables), attempts=5,
                 retry_on=(OperationalError, ProgrammingError, IntegrityError))
        self._ensured.add(key)

    def _migrate(self, tables: list[Table]) -> None:
        with self.engine.begin() as conn:
            if self.postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            METADATA.create_all(conn, tables=tables, checkfirst=True)
            inspector = inspect(conn)
            for table in tables:
                present = {c["name"] for c in inspector.get_columns(table.name)}
                added = [column for column in table.columns if column.name not in present]
                for column in added:
                    self._add_column(conn, table, column)
                migrate = table.info.get("after_columns")
                if added and migrate is not None:
                    migrate(conn)
                indexes = {i["name"] for i in inspect(conn).get_indexes(table.name)}
                for index in table.indexes:
                    if index.name not in indexes:
                        self._add_index(conn, index)

    @staticmethod
    def _add_index(conn, index: Index) -> None:  # noqa: ANN001
        """A unique index that rows written before it existed violate is logged, not fatal: those rows stay."""
        try:
            with conn.begin_nested():
                conn.execute(CreateIndex(index))
        except IntegrityError:
            log.warning("index %s not created: existing rows violate it", index.name)

    def _add_column(self, conn, table: Table, column) -> None:  # noqa: ANN001
        kind = column.type.compile(dialect=conn.dialect)
        default = column.server_default.arg if column.server_default is not None else None
        clause = f" NOT NULL DEFAULT {default}" if default is not None else ""
        log.info("migrating %s: adding column %s", table.name, column.name)
        conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{clause}'))


def database_problem(exc: BaseException) -> str | None:
    """What is wrong with the sessions database, in words a shopper or operator can act on, when ``exc`` (or
    what caused it) is a database error; ``None`` otherwise. Never a path: the error text stays in the log."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        original = getattr(current, "orig", None)  # SQLAlchemy wraps the driver's error
        if isinstance(current, (sqlite3.Error, DBAPIError)) or isinstance(original, sqlite3.Error):
            text = str(original or current).lower()
            for words, problem in DATABASE_PROBLEMS:
                if any(w in text for w in words):
                    return problem
            return "the sessions database failed"
        current = current.__cause__ or current.__context__
    return None


DATABASE_PROBLEMS = [
    (("readonly", "read-only"), "the sessions database is read-only"),
    (("disk is full", "disk full"), "the disk holding the sessions database is full"),
    (("unable to open",), "the sessions database cannot be opened"),
    (("locked", "busy"), "the sessions database is busy"),
]


class SessionStoreUnavailable(UnavailableError):
    """The sessions database cannot be read or written (read-only, disk full, missing folder): a 503 whose
    message says which, so the operator knows what to fix and the shopper that retrying now will not help."""

    code = "sessions_unavailable"

    def __init__(self, cause: BaseException) -> None:
        self.problem = database_problem(cause) or "the sessions database failed"
        super().__init__(f"{self.problem}: {cause}",
                         public_message=f"Sorry, I cannot save this conversation right now: {self.problem}. "
                                        "Please try again later.")


def retrying(action: Callable[[], T], *, attempts: int = 8, retry_on: tuple[type[BaseException], ...] = (),
             base_delay: float = 0.005) -> T:
    """Run ``action``, retrying on ``retry_on`` (and transient database errors) with jittered backoff; a
    database error that retrying cannot cure (read-only, disk full) becomes ``SessionStoreUnavailable``."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except retry_on + (OperationalError,) as exc:
            if attempt == attempts or not (isinstance(exc, retry_on) or transient(exc)):
                if isinstance(exc, OperationalError) and not isinstance(exc, retry_on):
                    raise SessionStoreUnavailable(exc) from exc
                raise
            time.sleep(base_delay * (2 ** min(attempt, 6)) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def transient(exc: BaseException) -> bool:
    """A lock timeout, serialization failure or deadlock: the same write may succeed when tried again."""
    message = str(exc).lower()
    return any(word in message for word in ("locked", "busy", "could not serialize", "deadlock"))
