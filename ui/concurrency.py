"""Which turns run at once inside one API process.

Turns of different sessions run concurrently in a pool of threads sized to the cores (the models are shared:
torch, ONNX Runtime and Chroma release the GIL in their kernels); turns of one session run one after the
other, in arrival order, behind that session's lock; feedback and forgetting take only their session's lock.
Each pool thread bounds torch's intra-op threads so that concurrent turns share the cores instead of
oversubscribing them (N turns x N threads on N cores thrash), and gives the ONNX models a budget that follows the
number of turns running: a turn alone uses every core, two at once one each (``tools.encoders.threads``).
Across processes and hosts the session store's version check keeps concurrent writes of one session from losing
updates (``memory.store``).

``global_lock=True`` restores the old behaviour, one turn at a time per process, taken before anything is
sent: the baseline of ``benchmarks/bench_load.py``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from atelier.tools.encoders.threads import set_budget
from atelier.tools.settings import Settings

T = TypeVar("T")


def pool_size(settings: Settings) -> int:
    return settings.turn_workers or os.cpu_count() or 1


def threads_per_turn(settings: Settings) -> int:
    """Cores shared out among the turns that may run at once (at least one thread each); all of them when
    one turn runs at a time (the global-lock baseline)."""
    cores = os.cpu_count() or 1
    return cores if settings.global_turn_lock else max(1, cores // pool_size(settings))


def bound_threads(threads: int) -> None:
    """Limit this thread's torch intra-op threads (OpenMP's setting is per thread, so each worker sets it)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


@dataclass
class _SessionLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class TurnScheduler:
    """A thread pool for assistant work plus one lock per session (held from the event loop, not a thread)."""

    def __init__(self, workers: int, threads: int = 1, global_lock: bool = False) -> None:
        self.workers = workers
        self.global_lock = global_lock
        self.running = 0
        self._count = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="turn",
                                       initializer=self._start_thread, initargs=(threads,))
        self.quick = ThreadPoolExecutor(max_workers=max(4, workers), thread_name_prefix="quick",
                                        initializer=bound_threads, initargs=(threads,))
        self._serial = threading.Lock()
        self._sessions: dict[str, _SessionLock] = {}

    def _start_thread(self, threads: int) -> None:
        bound_threads(threads)
        if not self.global_lock:
            set_budget(self.model_threads)

    def model_threads(self) -> int:
        """Intra-op threads for a model call inside a turn now: the cores shared among the running turns."""
        return max(1, (os.cpu_count() or 1) // max(1, self.running))

    @classmethod
    def from_settings(cls, settings: Settings) -> "TurnScheduler":
        return cls(pool_size(settings), threads_per_turn(settings), settings.global_turn_lock)

    async def acquire(self, session_id: str) -> None:
        """Wait for the session's turn (the event loop keeps serving everyone else meanwhile)."""
        entry = self._sessions.setdefault(session_id, _SessionLock())
        entry.users += 1
        try:
            await entry.lock.acquire()
        except BaseException:
            self._forget(session_id, entry)
            raise

    def release(self, session_id: str) -> None:
        """Let the session's next turn in (call from the event loop thread)."""
        entry = self._sessions.get(session_id)
        if entry is not None:
            entry.lock.release()
            self._forget(session_id, entry)

    def _forget(self, session_id: str, entry: _SessionLock) -> None:
        entry.users -= 1
        if entry.users == 0:
            self._sessions.pop(session_id, None)

    def submit(self, work: Callable[[], T], pool: ThreadPoolExecutor | None = None) -> Future[T]:
        """Run ``work`` on the turn pool, or ``pool`` (behind the process-wide lock in baseline mode)."""
        if self.global_lock:
            return (pool or self.pool).submit(self._serialised(work))
        return (pool or self.pool).submit(self._counted(work) if pool is None else work)

    def _counted(self, work: Callable[[], T]) -> Callable[[], T]:
        def counted() -> T:
            with self._count:
                self.running += 1
            try:
                return work()
            finally:
                with self._count:
                    self.running -= 1

        return counted

    def start(self, session_id: str, work: Callable[[], T], pool: ThreadPoolExecutor | None = None) -> Future[T]:
        """Submit ``work`` for a session whose lock is held; the lock passes on when the work has ended (even
        if the request that started it is gone), so a session's turns never overlap."""
        try:
            future = self.submit(work, pool)
        except BaseException:
            self.release(session_id)
            raise
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: self._release_on(loop, session_id))
        return future

    def _release_on(self, loop: asyncio.AbstractEventLoop, session_id: str) -> None:
        """Release from the loop that took the lock; if that loop has closed meanwhile (a test client runs each
        request on its own loop), nobody can be waiting on it, and releasing here is what keeps the session
        usable from the next loop."""
        try:
            loop.call_soon_threadsafe(self.release, session_id)
        except RuntimeError:
            self.release(session_id)

    async def run(self, session_id: str, work: Callable[[], T]) -> T:
        """A short operation on one session (a click, forgetting a chip): only that session's lock, and its own
        small pool, so it never queues behind other shoppers' turns."""
        await self.acquire(session_id)
        return await asyncio.wrap_future(self.start(session_id, work, self.quick))

    def _serialised(self, work: Callable[[], T]) -> Callable[[], T]:
        def locked() -> T:
            with self._serial:
                return work()

        return locked

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.quick.shutdown(wait=False, cancel_futures=True)
