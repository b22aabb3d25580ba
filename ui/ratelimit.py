"""Per-client request limits: exact in memory (one process), or shared by every worker and host through
counters in the sessions database (``SharedRateLimiter``).

The shared one is the *sliding window counter* of Cloudflare's rate limiter (2017): two fixed one-minute
buckets per client, the previous one weighted by how much of it still overlaps the sliding window. One
upsert per request, no per-hit rows, and within a few percent of an exact sliding log.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, String, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from atelier.memory.database import METADATA, Database, retrying

RATE = Table(
    "ui_rate_limits", METADATA,
    Column("client", String(128), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("hits", Integer, nullable=False),
)


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Record a hit; 0 if allowed, else the seconds until the next hit would be."""
        if self.limit <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - now, 0.001)
            hits.append(now)
            if len(self._hits) > 10_000:
                self._forget_idle(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]


class SharedRateLimiter:
    """At most about ``limit`` hits per ``window`` seconds per key, counted in the shared database."""

    def __init__(self, db: str | Path, limit: int, window: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = Database(db)
        self.limit = limit
        self.window = window
        self.clock = clock
        self.db.ensure([RATE])
        self._insert = postgresql.insert if self.db.postgres else sqlite.insert

    def hit(self, key: str) -> float:
        """Record a hit; 0 if allowed, else the seconds until the estimate falls under the limit."""
        if self.limit <= 0:
            return 0.0
        now = self.clock()
        bucket = int(now // self.window)
        elapsed = now - bucket * self.window
        current, previous = retrying(lambda: self._count(key[:128], bucket))
        overlap = 1.0 - elapsed / self.window
        if previous * overlap + current <= self.limit:
            return 0.0
        if current > self.limit or previous == 0:
            return self.window - elapsed
        return max(self.window * (1.0 - (self.limit - current) / previous) - elapsed, 0.001)

    def _count(self, key: str, bucket: int) -> tuple[int, int]:
        upsert = self._insert(RATE).values(client=key, bucket=bucket, hits=1)
        upsert = upsert.on_conflict_do_update(index_elements=[RATE.c.client, RATE.c.bucket],
                                              set_={"hits": RATE.c.hits + 1}).returning(RATE.c.hits)
        with self.db.engine.begin() as conn:
            current = conn.execute(upsert).scalar_one()
            previous = conn.execute(select(RATE.c.hits).where(RATE.c.client == key,
                                                               RATE.c.bucket == bucket - 1)).scalar() or 0
            if random.random() < 0.01:
                conn.execute(delete(RATE).where(RATE.c.bucket < bucket - 1))
        return current, previous


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
