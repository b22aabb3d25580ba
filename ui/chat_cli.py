"""What the conversational CLI commands (``atelier ask``, ``chat``, ``replay``, ``export``) do, kept out of
``assistant/cli.py`` so that file stays a list of thin commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from atelier.assistant.events import (DoneEvent, ErrorEvent, Event, MemoryEvent, ProductsEvent, StatusEvent,
    TextDeltaEvent, ToolCallEvent)


def ask_payload(events: list[Event], session: str) -> dict[str, Any]:
    """The ``ask --json`` object: session, reply, results (the ``search --json`` fields), tool calls, memory,
    and for searches ``honesty`` (whether the results match, which request terms none has)."""
    results, slots = [], {}
    for event in events:
        if isinstance(event, ProductsEvent):
            results += [r.model_dump() for r in event.results]
            if event.slot:
                slots[event.slot] = [r.id for r in event.results]
    done = next((e for e in events if isinstance(e, DoneEvent)), None)
    memory = next((e.memory for e in reversed(events) if isinstance(e, MemoryEvent)), {})
    payload: dict[str, Any] = {
        "session": done.session_id if done else session,
        "reply": done.reply if done else "",
        "results": results,
        "tool_calls": [{"name": e.name, "args": e.args} for e in events if isinstance(e, ToolCallEvent)],
        "memory": memory,
    }
    honesty = next((e.honesty for e in reversed(events) if isinstance(e, ProductsEvent) and e.honesty), None)
    if honesty is not None:
        payload["honesty"] = honesty.model_dump()
    if slots:
        payload["slots"] = slots
    error = next((e for e in events if isinstance(e, ErrorEvent)), None)
    if error:
        payload["error"] = {"message": error.message, "code": error.code}
    return payload


def print_results(results: list, out: TextIO, title: str | None = None) -> None:
    if title:
        out.write(f"  {title}\n")
    for rank, r in enumerate(results, start=1):
        price = "" if r.price is None else f"  {r.price:.2f}"
        out.write(f"  {rank:2d}. [{r.id}] {r.title} — {r.colour} {r.pattern} {r.category} ({r.gender}){price}\n")


def render_stream(events, out: TextIO, show_tools: bool = True) -> list[Event]:
    """Print a turn's events as they arrive (text streamed); returns them."""
    seen: list[Event] = []
    streaming = False
    for event in events:
        seen.append(event)
        if isinstance(event, StatusEvent):
            continue
        if isinstance(event, ToolCallEvent) and show_tools:
            args = {k: v for k, v in event.args.items() if k != "cascade" and v not in (None, {}, [])}
            out.write(f"  → {event.name}({', '.join(f'{k}={v}' for k, v in args.items())})\n")
        elif isinstance(event, ProductsEvent):
            print_results(event.results, out, event.title)
        elif isinstance(event, TextDeltaEvent):
            if not streaming:
                out.write("atelier> ")
                streaming = True
            out.write(event.text)
        elif isinstance(event, ErrorEvent):
            out.write(f"error: {event.message}\n")
        elif isinstance(event, DoneEvent) and streaming:
            out.write("\n")
        out.flush()
    return seen


CHAT_HELP = ("Type what you are looking for. Commands: /image PATH [message] (send a photo), /like N, /dislike N, "
             "/more N (click result N), /memory, /new (new session), /quit.")


def chat_loop(assistant: Any, session: str, read=input, out: TextIO | None = None) -> str:
    """Interactive chat; returns the session id it ended in."""
    import json
    import shlex
    import sys

    out = out or sys.stdout
    out.write(f"session {session}. {CHAT_HELP}\n")
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return session
        if not line:
            continue
        if line in ("/quit", "/exit", "/q"):
            return session
        if line == "/new":
            session = assistant.new_session()
            out.write(f"new session {session}\n")
            continue
        if line == "/memory":
            out.write(json.dumps(assistant.memory(session), indent=2, ensure_ascii=False) + "\n")
            continue
        command, _, rest = line.partition(" ")
        if command in ("/like", "/dislike", "/more"):
            kind = {"/like": "like", "/dislike": "dislike", "/more": "more_like_this"}[command]
            shown = assistant.memory(session).get("shown", [])
            try:
                product_id = shown[int(rest) - 1]["id"]
            except (ValueError, IndexError):
                out.write(f"pick a shown result by number (1-{len(shown)})\n")
                continue
            render_stream(assistant.feedback(session, product_id, kind), out)
            continue
        image = None
        if command == "/image":
            parts = shlex.split(rest)
            if not parts:
                out.write("usage: /image PATH [message]\n")
                continue
            image, line = Path(parts[0]).expanduser(), " ".join(parts[1:])
        render_stream(assistant.turn(session, line, image=image), out)
