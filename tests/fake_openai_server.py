"""A small but real OpenAI-compatible server for tests: ``POST /v1/chat/completions`` over HTTP.

It speaks the wire protocol the ``openai`` client and LangChain's ``ChatOpenAI`` expect: plain JSON
completions, SSE streams of ``chat.completion.chunk`` objects ending in ``data: [DONE]``, and tool
calls in both forms (whole ``tool_calls`` messages, and streamed ``tool_calls`` deltas whose JSON
arguments arrive in pieces). Behaviour is scripted, so tests can assert on exact outputs:

* queued ``replies`` are answered first, in order (a ``str`` is text, a ``dict`` is a tool call
  ``{"name": ..., "arguments": {...}}``);
* otherwise, with ``tools`` in the request and a user message last, it calls ``search_products`` (or
  the first tool) with the user's text as ``query``; after a ``tool`` message it answers
  ``"Found: <tool output>"``;
* otherwise it recommends the first product of the ``PRODUCTS`` list in the system prompt.

Model ``"missing-model"`` gets a 404 and a wrong key (when ``api_key`` is set) a 401, both in
OpenAI's error format. Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


class FakeOpenAIServer:
    """Run with ``with FakeOpenAIServer() as server: ... server.base_url`` (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, *, api_key: str | None = None, chunk_words: int = 2) -> None:
        self.api_key = api_key
        self.chunk_words = chunk_words
        self.replies: list[str | dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> "FakeOpenAIServer":
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"]),
                                Route("/v1/models", self._models, methods=["GET"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- protocol ---------------------------------------------------------------------------------

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "tests"}]})

    async def _completions(self, request: Request) -> JSONResponse | StreamingResponse:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        body = await request.json()
        self.requests.append(body)
        model = body.get("model", "")
        if model == "missing-model":
            return _error(404, f"The model `{model}` does not exist.", "model_not_found")
        reply = self._decide(body)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._sse(completion_id, model, reply, include_usage),
                                     media_type="text/event-stream")
        if isinstance(reply, dict):
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [_tool_call(reply)]}
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": reply}, "stop"
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": _usage(body, reply)})

    def _decide(self, body: dict[str, Any]) -> str | dict[str, Any]:
        if self.replies:
            return self.replies.pop(0)
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        tools = [t.get("function", {}) for t in body.get("tools") or []]
        if tools and last.get("role") == "user":
            names = [t.get("name") for t in tools]
            name = "search_products" if "search_products" in names else names[0]
            return {"name": name, "arguments": {"query": _text(last.get("content"))}}
        if last.get("role") == "tool":
            return f"Found: {_text(last.get('content'))[:200]}"
        system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
        first = re.search(r"^1\.\s+(?:<<<title>>>\s*)?(.+?)(?:\s*<<<end title>>>)?\s*\|.*price:\s*([\d.]+)",
                          system, re.M)
        if first:
            return f"I recommend the {first.group(1)}. It costs {first.group(2)} and fits your request."
        return "I could not find anything matching that yet."

    def _sse(self, completion_id: str, model: str, reply: str | dict[str, Any],
             include_usage: bool) -> Iterator[str]:
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            return f"data: {json.dumps(data)}\n\n"

        if isinstance(reply, dict):
            call = _tool_call(reply)
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            yield chunk({"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for piece in (arguments[:half], arguments[half:]):
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            yield chunk({}, "tool_calls")
        else:
            yield chunk({"role": "assistant", "content": ""})
            words = re.findall(r"\S+\s*", reply)
            for start in range(0, len(words), self.chunk_words):
                yield chunk({"content": "".join(words[start:start + self.chunk_words])})
            yield chunk({}, "stop")
        if include_usage:
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage({}, reply)})}\n\n"
        yield "data: [DONE]\n\n"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _tool_call(reply: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"call_{uuid.uuid4().hex[:10]}", "type": "function",
            "function": {"name": reply["name"], "arguments": json.dumps(reply.get("arguments", {}))}}


def _usage(body: dict[str, Any], reply: str | dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(_text(m.get("content")).split()) for m in body.get("messages") or [])
    completion = len(reply.split()) if isinstance(reply, str) else 10
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}},
                        status_code=status)
