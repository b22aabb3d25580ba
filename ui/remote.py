"""``atelier ask`` through a running ``atelier serve``: the turn runs in the warm server, the CLI only streams it.

A cold ``atelier ask`` loads the models and the catalog index before it can answer (2.3-2.5 s at 56k); a server
that already holds them answers a turn in tens of milliseconds. ``RemoteAssistant`` has the two methods the CLI
uses of ``Assistant`` (``new_session``, ``turn``) and yields the same typed events, parsed from the API's
Server-Sent Events, so ``--json`` and the streamed text are the same either way.

The API names sessions itself and opens each with a bearer token shown once; the CLI names them (``--session
s1``). The mapping, name -> (server session id, token) per server URL, is kept in
``<ATELIER_HOME>/remote-sessions.json`` (owner-only permissions: the tokens open the conversations). A session
started in-process and one started through a server are different sessions, since the server may keep its
memories in another database.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from atelier.assistant.events import EVENT_ADAPTER, DoneEvent, ErrorEvent, Event
from atelier.tools.errors import UnavailableError

TURN_TIMEOUT_S = 300.0
PROBE_TIMEOUT_S = 1.0


class ServerUnavailable(UnavailableError):
    """The configured server does not answer (or not as an Atelier API)."""

    code = "server_unavailable"


class RemoteSessions:
    """name -> {"id", "token"} for one server, persisted as JSON readable by the owner only."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url.rstrip("/")

    def _all(self) -> dict[str, dict[str, dict[str, str]]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def get(self, name: str) -> dict[str, str] | None:
        return self._all().get(self.url, {}).get(name)

    def put(self, name: str, session_id: str, token: str) -> None:
        data = self._all()
        data.setdefault(self.url, {})[name] = {"id": session_id, "token": token}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.replace(tmp, self.path)


class RemoteAssistant:
    """The agent of a running ``atelier serve`` at ``url``, driven over its HTTP API."""

    def __init__(self, url: str, sessions_file: Path, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.sessions = RemoteSessions(sessions_file, self.url)
        self.client = httpx.Client(base_url=self.url, transport=transport,
                                   timeout=httpx.Timeout(TURN_TIMEOUT_S, connect=PROBE_TIMEOUT_S))

    def ready(self) -> bool:
        """Whether an Atelier server answers ``/readyz`` with 200 (models and store loaded) within a second."""
        try:
            return self.client.get("/readyz", timeout=PROBE_TIMEOUT_S).status_code == 200
        except httpx.HTTPError:
            return False

    def knows(self, name: str) -> bool:
        return self.sessions.get(name) is not None

    def new_session(self, name: str | None = None) -> str:
        """A server session, remembered under ``name`` (default: a fresh short name)."""
        name = name or uuid.uuid4().hex[:12]
        try:
            response = self.client.post("/v1/sessions")
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach {self.url}: {exc}",
                                    public_message=f"the server at {self.url} is not answering") from exc
        if response.status_code != 201:
            raise ServerUnavailable(f"{self.url} answered {response.status_code} to POST /v1/sessions",
                                    public_message=error_message(response))
        body = response.json()
        self.sessions.put(name, body["session_id"], body["token"])
        return name

    def turn(self, name: str, message: str, image: str | Path | None = None) -> Iterator[Event]:
        """The turn's events as the server streams them; ``done`` names the session as the CLI does."""
        if not self.knows(name):
            self.new_session(name)
        session = self.sessions.get(name) or {}
        headers = {"Authorization": f"Bearer {session['token']}"}
        path = f"/v1/sessions/{session['id']}/messages"
        try:
            if image is not None:
                with open(image, "rb") as photo:
                    request = self.client.build_request("POST", path, headers=headers, data={"text": message},
                                                        files={"image": (Path(image).name, photo.read())})
            else:
                request = self.client.build_request("POST", path, headers=headers, json={"text": message})
            response = self.client.send(request, stream=True)
        except httpx.HTTPError:
            yield ErrorEvent(message=f"the server at {self.url} is not answering", code="server_unavailable")
            yield DoneEvent(session_id=name)
            return
        try:
            if response.status_code != 200:
                response.read()
                message = error_message(response)
                if response.status_code in (401, 403, 404):
                    message = (f"session {name} cannot be continued on {self.url} ({message}); start a new one "
                               f"with another --session name")
                yield ErrorEvent(message=message, code=error_code(response))
                yield DoneEvent(session_id=name)
                return
            done = False
            for event in self._events(response, name):
                done = isinstance(event, DoneEvent)
                yield event
        except httpx.HTTPError:
            done = False
        finally:
            response.close()
        if not done:
            yield ErrorEvent(message=f"the server at {self.url} stopped answering mid-reply; the turn may not "
                                     f"have been saved", code="server_unavailable")
            yield DoneEvent(session_id=name)

    def _events(self, response: httpx.Response, name: str) -> Iterator[Event]:
        data: list[str] = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                yield self._event(json.loads("\n".join(data)), name)
                data = []

    def _event(self, payload: dict, name: str) -> Event:
        """The typed event of one SSE ``data``: product photos as absolute URLs (the CLI prints them where a
        local run prints a file path), the session named as the CLI knows it."""
        if payload.get("type") == "products":
            for result in payload.get("results", []):
                url = result.pop("image_url", None)
                result["image_path"] = f"{self.url}{url}" if url else None
        if payload.get("type") == "done":
            payload = {**payload, "session_id": name}
        return EVENT_ADAPTER.validate_python(payload)


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the server answered HTTP {response.status_code}"


def error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "server_error"
