"""Agent events as Server-Sent Events: ``event: <type>`` and ``data: <json>``, one per event.

The turn runs in one pool thread from start to end (``ui.concurrency``: sessions in parallel, one turn at a
time per session) and hands events to the response through a queue. A client that disconnects stops the turn
at its next event; a crash mid-turn still ends the stream with ``error`` then ``done``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from pydantic import BaseModel

from atelier.assistant.events import DoneEvent, StatusEvent, error_event, event_payload
from atelier.ui.concurrency import TurnScheduler

log = logging.getLogger("atelier.api")
_END = object()
WORKING = "Looking through the catalog…"


def format_sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def public_payload(event: BaseModel) -> dict[str, Any]:
    """``event_payload`` with server file paths removed: product photos become URLs a browser can load."""
    data = event_payload(event)
    for result in data.get("results", []) if data.get("type") == "products" else []:
        result.pop("image_path", None)
        result["image_url"] = f"/v1/products/{result['id']}/image"
    if data.get("type") == "memory":
        data["memory"] = public_memory(data["memory"])
    return data


def public_memory(memory: dict[str, Any]) -> dict[str, Any]:
    """The session memory without the server paths of uploaded photos."""
    anchors = [{k: v for k, v in a.items() if k != "image_path"} if isinstance(a, dict) else a
               for a in memory.get("anchors", [])]
    return {**memory, "anchors": anchors} if "anchors" in memory else dict(memory)


async def stream_events(produce: Callable[[], Iterable[BaseModel]], session_id: str,
                        scheduler: TurnScheduler) -> AsyncIterator[str]:
    """SSE text for every event ``produce()`` yields, guaranteeing the stream ends with ``done``.

    A ``status`` event goes out at once, before the turn waits for its session's lock or a pool thread, so
    the shopper sees the assistant at work whatever the load (the turn's own leading status is then not
    repeated). In the baseline mode (``global_turn_lock``) nothing is sent before the lock, as it used to be.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()
    announced = not scheduler.global_lock
    if announced:
        yield format_sse("status", public_payload(StatusEvent(message=WORKING)))

    def emit(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        saw_done = False
        try:
            for index, event in enumerate(produce()):
                if stop.is_set():
                    break
                if index == 0 and announced and getattr(event, "type", "") == "status":
                    continue
                saw_done = saw_done or getattr(event, "type", "") == "done"
                emit(event)
        except Exception as exc:  # noqa: BLE001 - the stream must still end with error, done
            log.exception("assistant turn failed")
            emit(error_event(exc))
        finally:
            if not saw_done and not stop.is_set():
                emit(DoneEvent(session_id=session_id))
            emit(_END)

    await scheduler.acquire(session_id)
    scheduler.start(session_id, work)
    try:
        while (item := await queue.get()) is not _END:
            assert isinstance(item, BaseModel)
            yield format_sse(item.type, public_payload(item))  # type: ignore[attr-defined]
    finally:
        stop.set()
