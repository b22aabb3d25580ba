"""How many intra-op threads a model call may use, decided at each call.

One turn alone should use every core (the image tower and MiniLM run about twice as fast on two threads than on
one); several turns at once should each run on one, since two turns that each ask for every core spend part of
the machine handing work between threads (sessions never spin-wait: ``_open``). The turn
scheduler (``ui.concurrency``) gives each of its threads a budget that depends on how many turns are running;
models ask ``threads_now()`` at every call and run the session opened with that many threads. Outside a turn
(ingestion, the CLI, the global-lock baseline) there is no budget and models use every core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_local = threading.local()


def set_budget(budget: Callable[[], int] | None) -> None:
    """Give this thread a budget (called with no argument at each model call), or remove it."""
    _local.budget = budget


def one_thread() -> int:
    """The budget of a thread that runs beside others doing the same (ingestion lanes, warming those sessions)."""
    return 1


def threads_now(default: int) -> int:
    """The intra-op threads a model call on this thread may use: ``default`` unless a budget says fewer."""
    budget = getattr(_local, "budget", None)
    return default if budget is None else max(1, min(default, budget()))


class OrtSessions:
    """ONNX Runtime sessions of one model file, one per thread count, each opened on first use (another copy of
    the weights: 20-90 MB for our models)."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path = path
        self.threads = threads
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.default = self.get(threads)

    def get(self, threads: int) -> Any:
        session = self._sessions.get(threads)
        if session is None:
            with self._lock:
                session = self._sessions.get(threads)
                if session is None:
                    session = self._sessions[threads] = _open(self.path, threads)
        return session

    def now(self) -> Any:
        """The session for this call's thread budget."""
        return self.get(threads_now(self.threads))


def _open(path: Path, threads: int) -> Any:
    """A CPU session whose worker threads sleep when idle. Spinning (ONNX Runtime's default) cost twice the CPU
    per image and per sentence here, and made one caller slower, not faster: measured on 2 cores, Lite0 + 2 MiniLM
    calls 46 -> 24 ms CPU and 23 -> 14 ms wall; two concurrent callers 54 -> 93 units/s."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
