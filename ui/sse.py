"""Agent events as Server-Sent Events: ``event: <type>`` and ``data: <json>``, one per event.

The turn runs in one worker thread from start to end (the agent may hold thread-bound resources such
as SQLite connections) and hands events to the response through a queue. A client that disconnects
stops the turn at its next event; a crash mid-turn still ends the stream with ``error`` then ``done``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import nullcontext
from typing import Any

from pydantic import BaseModel

from atelier.assistant.events import DoneEvent, error_event, event_payload

log = logging.getLogger("atelier.api")
_END = object()


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
                        lock: threading.Lock | None = None) -> AsyncIterator[str]:
    """SSE text for every event ``produce()`` yields, guaranteeing the stream ends with ``done``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def emit(item: object) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        saw_done = False
        try:
            with lock or nullcontext():
                for event in produce():
                    if stop.is_set():
                        break
                    saw_done = saw_done or getattr(event, "type", "") == "done"
                    emit(event)
        except Exception as exc:  # noqa: BLE001 - the stream must still end with error, done
            log.exception("assistant turn failed")
            emit(error_event(exc))
        finally:
            if not saw_done and not stop.is_set():
                emit(DoneEvent(session_id=session_id))
            emit(_END)

    worker = threading.Thread(target=work, name=f"turn-{session_id[:8]}", daemon=True)
    worker.start()
    try:
        while (item := await queue.get()) is not _END:
            assert isinstance(item, BaseModel)
            yield format_sse(item.type, public_payload(item))  # type: ignore[attr-defined]
    finally:
        stop.set()

