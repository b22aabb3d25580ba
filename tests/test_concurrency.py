"""Turns inside one API process: sessions in parallel, one turn at a time per session, the status event before
any waiting, clicks never queued behind other sessions' turns; the global-lock baseline serialises all."""

from __future__ import annotations

import asyncio
import threading

from atelier.assistant.events import DoneEvent, StatusEvent, TextDeltaEvent
from atelier.ui.concurrency import TurnScheduler
from atelier.ui.sse import stream_events


def blocking_turn(gate: threading.Event, log: list[str], name: str):
    def produce():
        yield StatusEvent(message="Looking through the catalog…")
        log.append(f"{name} started")
        assert gate.wait(10), f"{name} never released"
        yield TextDeltaEvent(text=name)
        log.append(f"{name} ended")
        yield DoneEvent(session_id=name, reply=name)

    return produce


async def first_chunk(stream) -> str:
    return await asyncio.wait_for(stream.__anext__(), 5)


async def drain(stream) -> list[str]:
    return [chunk async for chunk in stream]


async def wait_for(log: list[str], entry: str) -> None:
    for _ in range(500):
        if entry in log:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{entry!r} never happened: {log}")


def test_sessions_run_in_parallel_and_one_session_in_order():
    async def scenario() -> list[str]:
        scheduler = TurnScheduler(workers=2)
        log: list[str] = []
        gate_a, gate_b, gate_c = threading.Event(), threading.Event(), threading.Event()
        a = stream_events(blocking_turn(gate_a, log, "a"), "s1", scheduler)
        b = stream_events(blocking_turn(gate_b, log, "b"), "s1", scheduler)
        c = stream_events(blocking_turn(gate_c, log, "c"), "s2", scheduler)
        assert "event: status" in await first_chunk(a)
        a_rest = asyncio.ensure_future(drain(a))
        await wait_for(log, "a started")
        assert "event: status" in await first_chunk(b)
        b_rest = asyncio.ensure_future(drain(b))
        assert "event: status" in await first_chunk(c)
        c_rest = asyncio.ensure_future(drain(c))
        await wait_for(log, "c started")
        clicked = await asyncio.wait_for(scheduler.run("s3", lambda: "click on s3"), 5)
        gate_c.set()
        assert any("event: done" in chunk for chunk in await c_rest)
        assert "b started" not in log
        gate_a.set()
        await a_rest
        await wait_for(log, "b started")
        gate_b.set()
        await b_rest
        scheduler.shutdown()
        return log + [clicked]

    log = asyncio.run(scenario())
    assert log.index("a ended") < log.index("b started")
    assert log.index("c started") < log.index("a ended")
    assert log[-1] == "click on s3"


def test_status_is_not_repeated_and_global_lock_serialises_everything():
    async def scenario() -> tuple[list[str], list[str]]:
        scheduler = TurnScheduler(workers=2, global_lock=True)
        log: list[str] = []
        gate_a, gate_c = threading.Event(), threading.Event()
        a = stream_events(blocking_turn(gate_a, log, "a"), "s1", scheduler)
        c = stream_events(blocking_turn(gate_c, log, "c"), "s2", scheduler)
        a_rest = asyncio.ensure_future(drain(a))
        c_rest = asyncio.ensure_future(drain(c))
        await wait_for(log, "a started")
        await asyncio.sleep(0.2)
        assert "c started" not in log
        gate_a.set()
        chunks = await a_rest
        await wait_for(log, "c started")
        gate_c.set()
        await c_rest
        scheduler.shutdown()
        return log, chunks

    log, chunks = asyncio.run(scenario())
    assert log[:2] == ["a started", "a ended"]
    assert [c.split("\n")[0] for c in chunks] == ["event: status", "event: text_delta", "event: done"]


def test_the_early_status_replaces_the_turns_own():
    async def scenario() -> list[str]:
        scheduler = TurnScheduler(workers=1)
        gate = threading.Event()
        gate.set()
        chunks = await drain(stream_events(blocking_turn(gate, [], "a"), "s1", scheduler))
        scheduler.shutdown()
        return chunks

    chunks = asyncio.run(scenario())
    assert [c.split("\n")[0] for c in chunks] == ["event: status", "event: text_delta", "event: done"]


def test_a_turn_outliving_its_event_loop_still_frees_the_session(caplog):
    scheduler = TurnScheduler(workers=1)
    gate = threading.Event()

    async def first_request() -> None:
        await scheduler.acquire("s1")
        scheduler.start("s1", lambda: gate.wait(10))

    asyncio.run(first_request())  # the request's loop closes while its turn still runs
    gate.set()
    scheduler.pool.submit(lambda: None).result(5)

    async def next_request() -> str:
        return await asyncio.wait_for(scheduler.run("s1", lambda: "second turn"), 5)

    try:
        assert asyncio.run(next_request()) == "second turn"
    finally:
        scheduler.shutdown()
    assert scheduler._sessions == {}
    assert not [r for r in caplog.records if "exception calling callback" in r.getMessage()]


def test_model_threads_follow_the_number_of_running_turns(monkeypatch):
    """A turn alone may use every core; two running at once one each; the global-lock baseline and any thread
    outside a turn keep every core (``tools.encoders.threads``)."""
    from atelier.tools.encoders.threads import threads_now

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    scheduler = TurnScheduler(workers=2)
    assert scheduler.submit(lambda: threads_now(2)).result(5) == 2
    both_running = threading.Barrier(2, timeout=5)

    def during_a_concurrent_turn() -> int:
        both_running.wait()
        seen = threads_now(2)
        both_running.wait()
        return seen

    futures = [scheduler.submit(during_a_concurrent_turn) for _ in range(2)]
    assert [f.result(5) for f in futures] == [1, 1]
    assert scheduler.submit(lambda: threads_now(2)).result(5) == 2 and scheduler.running == 0
    assert threads_now(2) == 2
    baseline = TurnScheduler(workers=2, global_lock=True)
    assert baseline.submit(lambda: threads_now(2)).result(5) == 2
    scheduler.shutdown()
    baseline.shutdown()


def test_a_session_per_thread_count_gives_the_same_vectors(tmp_path):
    import numpy as np
    import torch

    from atelier.tools.encoders.threads import set_budget
    from atelier.tools.encoders.vision import OnnxRunner

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=8), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    runner = OnnxRunner(model, tmp_path, "tiny", threads=2)
    assert runner.backend == "onnxruntime"
    x = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    full = runner(x)
    set_budget(lambda: 1)
    try:
        single = runner(x)
    finally:
        set_budget(None)
    assert set(runner.sessions._sessions) == {1, 2}
    np.testing.assert_allclose(single, full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full, model(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
