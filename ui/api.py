"""The Atelier HTTP API: sessions with bearer tokens, messages answered as Server-Sent Events,
feedback, forgetting memory items, catalog products and photos, and the embeddable widget.

``create_app()`` builds the app for the active settings; ``atelier serve`` runs it with uvicorn, as an app
factory so that ``--workers N`` starts N processes, each building its own app from the environment.
Every failure is JSON ``{"error": {"code", "message"}}`` (see ``ui.errors``); every response carries
the security headers of ``ui.headers``; ``/healthz`` is liveness and ``/readyz`` readiness (``ui.health``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, get_args

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from atelier.assistant.events import Event
from atelier.assistant.runtime import Runtime
from atelier.memory.update import FeedbackKind, MemoryKind
from atelier.tools.schema import Product
from atelier.tools.settings import Settings, apply_offline_defaults, get_settings
from atelier.ui import backend
from atelier.ui.backend import AssistantLike
from atelier.ui.concurrency import TurnScheduler
from atelier.ui.errors import ERROR_RESPONSES, APIError, install_error_handlers
from atelier.ui.headers import SecurityHeaders, page_csp
from atelier.ui.health import Readiness, readiness
from atelier.ui.ratelimit import SharedRateLimiter, retry_after
from atelier.ui.sse import public_memory, public_payload, stream_events
from atelier.ui.tokens import TokenCheck, TokenStore
from atelier.ui.uploads import MessageIn, read_message

log = logging.getLogger("atelier.api")
STATIC = Path(__file__).resolve().parent / "static"
PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
IMAGE_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                  ".gif": "image/gif", ".bmp": "image/bmp"}


class SessionCreated(BaseModel):
    session_id: str
    token: str = Field(description="Send as `Authorization: Bearer <token>`; shown only once.")


class HistoryItem(BaseModel):
    """One logged turn, without server-side details (file paths, tool arguments)."""

    turn: int = 0
    kind: str = "message"
    created_at: float | None = None
    message: str = ""
    had_image: bool = False
    reply: str = ""
    result_ids: list[str] = Field(default_factory=list)
    failed: bool = False

    @classmethod
    def of(cls, record: dict[str, Any]) -> "HistoryItem":
        return cls(**{k: v for k, v in record.items() if k in cls.model_fields},
                   had_image=bool(record.get("image")), failed=bool(record.get("error")))


class SessionOut(BaseModel):
    session_id: str
    history: list[HistoryItem] = Field(default_factory=list)
    memory: dict[str, Any] = Field(default_factory=dict)


class FeedbackIn(BaseModel):
    product_id: str = Field(min_length=1, max_length=128)
    kind: FeedbackKind


class FeedbackOut(BaseModel):
    ok: bool = True
    memory: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list,
                                         description="Events the feedback produced (e.g. products).")




class MemoryOut(BaseModel):
    ok: bool = True
    memory: dict[str, Any] = Field(default_factory=dict)


class ProductOut(BaseModel):
    id: str
    title: str
    description: str
    category: str
    group: str
    colour: str
    pattern: str
    gender: str
    price: float | None
    currency: str
    image_url: str | None

    @classmethod
    def of(cls, product: Product) -> "ProductOut":
        data = product.model_dump(include=set(cls.model_fields) - {"image_url"})
        return cls(**data, image_url=f"/v1/products/{product.id}/image" if product.image_path else None)


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class SessionDeleted(BaseModel):
    ok: bool = True
    session_id: str


Catalog = Callable[[str], Product | None]


class Services:
    """What the routes share: settings, the runtime (engines), token store, rate limiter and the (lazily
    built) assistant over that runtime."""

    def __init__(self, settings: Settings, assistant: AssistantLike | None, catalog: Catalog | None,
                 runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings)
        self._catalog = catalog
        self.tokens = TokenStore(settings.db_url, lifetime=settings.session_token_days * 86_400)
        self.limiter = SharedRateLimiter(settings.db_url, settings.rate_limit_per_minute)
        self.scheduler = TurnScheduler.from_settings(settings)
        self._assistant = assistant
        self._build_lock = threading.Lock()

    def readiness(self) -> Readiness:
        """``ui.health.readiness`` on the runtime's store (the one turns search); when the runtime cannot
        build it, readiness opens the store itself to say why."""
        try:
            store = self.runtime.search.store
        except Exception:  # noqa: BLE001 - readiness reports it
            store = None
        return readiness(self.settings, store)

    @property
    def assistant(self) -> AssistantLike:
        with self._build_lock:
            if self._assistant is None:
                self._assistant = backend.build_assistant(self.settings, self.runtime)
            return self._assistant

    @property
    def catalog(self) -> Catalog:
        with self._build_lock:
            if self._catalog is None:
                self._catalog = self.runtime.search.product
            return self._catalog

    def warm(self) -> None:
        """Build the assistant and every engine a turn may need before the first shopper arrives, so that
        no turn pays for model loading or waits on the runtime's build lock meanwhile."""
        self.assistant
        self.runtime.warm()

    def product(self, product_id: str) -> Product:
        if not PRODUCT_ID.match(product_id):
            raise APIError(404, "not_found", f"no product with id {product_id!r}")
        product = self.catalog(product_id)
        if product is None:
            raise APIError(404, "not_found", f"no product with id {product_id!r}")
        return product


def services(request: Request) -> Services:
    return request.app.state.services


def rate_limit(request: Request, svc: Services = Depends(services)) -> None:
    client = request.client.host if request.client else "unknown"
    wait = svc.limiter.hit(client)
    if wait:
        raise APIError(429, "rate_limited", "too many requests; please slow down and try again shortly",
                       headers={"Retry-After": retry_after(wait)})


def session_access(session_id: str, request: Request, svc: Services = Depends(services)) -> str:
    """The session id, once the session is known (else 404) and the bearer token opens it (401/403)."""
    if not svc.tokens.exists(session_id):
        raise APIError(404, "not_found", "no such session; create one with POST /v1/sessions")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "unauthorized", "this session needs its token: Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": "Bearer"})
    check = svc.tokens.check(session_id, token.strip())
    if check is TokenCheck.EXPIRED:
        raise APIError(401, "token_expired", "this session's token has expired; start a new session",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if check is not TokenCheck.OK:
        raise APIError(403, "forbidden", "this token does not open this session")
    return session_id


EVENT_TYPES = tuple(cls.model_fields["type"].default for cls in get_args(get_args(Event)[0]))

MESSAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": MessageIn.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "image": {"type": "string", "format": "binary"}},
            }},
        },
    },
    "responses": {"200": {
        "description": "Server-Sent Events, one per assistant event: `event:` is the type "
                       "(status, tool_call, products, text_delta, memory, error, done), `data:` its JSON.",
        "content": {"text/event-stream": {"schema": {
            "type": "object", "required": ["event", "data"],
            "description": "One Server-Sent Event: its type and its JSON payload.",
            "properties": {"event": {"type": "string", "enum": list(EVENT_TYPES)},
                           "data": {"type": "string", "contentMediaType": "application/json"}},
        }}},
    }},
}

api = APIRouter(prefix="/v1", dependencies=[Depends(rate_limit)], responses=ERROR_RESPONSES)


@api.post("/sessions", response_model=SessionCreated, status_code=201, tags=["sessions"])
def create_session(svc: Services = Depends(services)) -> SessionCreated:
    """Start a conversation; the token in the answer is needed for every call on the session."""
    session_id = svc.assistant.new_session()
    return SessionCreated(session_id=session_id, token=svc.tokens.issue(session_id))


@api.get("/sessions/{session_id}", response_model=SessionOut, tags=["sessions"])
def read_session(session_id: str = Depends(session_access), svc: Services = Depends(services)) -> SessionOut:
    """The conversation so far and the session memory (constraints, likes, dislikes)."""
    view = backend.session_view(svc.assistant, session_id)
    return SessionOut(session_id=session_id, history=[HistoryItem.of(h) for h in view.history],
                      memory=public_memory(view.memory))


@api.delete("/sessions/{session_id}", response_model=SessionDeleted, tags=["sessions"])
async def delete_session(session_id: str = Depends(session_access),
                         svc: Services = Depends(services)) -> SessionDeleted:
    """End a session for good: its token stops working at once and its memory and turn log are erased."""
    def work() -> None:
        svc.tokens.revoke(session_id)
        backend.delete_session(svc.assistant, svc.settings, session_id)

    await svc.scheduler.run(session_id, work)
    return SessionDeleted(session_id=session_id)


@api.post("/sessions/{session_id}/messages", tags=["sessions"], response_class=StreamingResponse,
          openapi_extra=MESSAGE_BODY)
async def post_message(request: Request, session_id: str = Depends(session_access),
                       svc: Services = Depends(services)) -> StreamingResponse:
    """Send text (JSON) or text and a photo (multipart); the answer streams as Server-Sent Events."""
    message = await read_message(request, svc.settings.max_upload_bytes, svc.settings.upload_max_side)
    assistant = svc.assistant
    stream = stream_events(lambda: assistant.turn(session_id, message.text, image=message.image),
                           session_id, svc.scheduler)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@api.post("/sessions/{session_id}/feedback", response_model=FeedbackOut, tags=["sessions"])
async def post_feedback(body: FeedbackIn, session_id: str = Depends(session_access),
                        svc: Services = Depends(services)) -> FeedbackOut:
    """Like / dislike a product, or ask for more like it; the answer holds the updated memory."""
    def work() -> FeedbackOut:
        svc.product(body.product_id)
        produced = svc.assistant.feedback(session_id, body.product_id, body.kind)
        events = [public_payload(e) for e in produced] if _is_event_stream(produced) else []
        view = backend.session_view(svc.assistant, session_id)
        return FeedbackOut(memory=public_memory(view.memory), events=events)

    return await svc.scheduler.run(session_id, work)


@api.delete("/sessions/{session_id}/memory/{kind}", response_model=MemoryOut, tags=["sessions"])
async def forget_memory(kind: MemoryKind,
                        facet: str | None = Query(None, max_length=64,
                                                  description="must / avoid: the facet (colour)"),
                        value: str | None = Query(None, max_length=256,
                                                  description="the value, preference, detail text or anchor id "
                                                              "to remove; for a price bound, optional (must match)"),
                        session_id: str = Depends(session_access),
                        svc: Services = Depends(services)) -> MemoryOut:
    """Forget one remembered item (the × on a memory chip): a `must` / `avoid` value of a `facet` (no `value`:
    the whole facet), `price_min` / `price_max`, a `preference`, a `detail` text or a reference `anchor` (by id).
    The next message searches without it; everything else stays. 404 `not_in_memory` if it is not remembered."""
    def work() -> MemoryOut:
        return MemoryOut(memory=public_memory(svc.assistant.forget(session_id, kind, facet, value)))

    return await svc.scheduler.run(session_id, work)


def _is_event_stream(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict))


@api.get("/products/{product_id}", response_model=ProductOut, tags=["products"])
def read_product(product_id: str, svc: Services = Depends(services)) -> ProductOut:
    return ProductOut.of(svc.product(product_id))


def product_image(product_id: str, request: Request) -> FileResponse:
    """The catalog photo of a product: only files the catalog names, never a path from the request."""
    product = services(request).product(product_id)
    path = Path(product.image_path) if product.image_path else None
    media_type = IMAGE_SUFFIXES.get(path.suffix.lower()) if path else None
    if path is None or media_type is None or not path.is_file():
        raise APIError(404, "not_found", f"product {product_id} has no photo")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


def serve_app() -> FastAPI:
    """The app ``atelier serve`` runs (an app factory, called once per worker process): the active settings,
    every engine built before the worker accepts its first request."""
    return create_app(warm=True)


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options that believe ``X-Forwarded-For`` / ``-Proto`` only from ``settings.trusted_proxies``.

    uvicorn trusts them from 127.0.0.1 by default, so any local client (or a proxy that passes the
    header through) could pick its own address and walk around the rate limit (OWASP API4).
    """
    proxies = ",".join(settings.trusted_proxies)
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or None}


def create_app(assistant: AssistantLike | None = None, settings: Settings | None = None,
               catalog: Catalog | None = None, runtime: Runtime | None = None, warm: bool = False) -> FastAPI:
    """The API for ``settings`` (default: the active ones).

    ``assistant`` defaults to the real agent and ``catalog`` (product id → product) to the product store, both
    over ``runtime`` (default: one built for ``settings``). ``warm`` builds them all at startup.
    """
    apply_offline_defaults()
    settings = settings or get_settings()
    svc = Services(settings, assistant, catalog, runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm:
            await asyncio.to_thread(svc.warm)
        yield
        svc.scheduler.shutdown()

    app = FastAPI(title="Atelier API", version="1", summary="A conversational fashion shopping assistant.",
                  lifespan=lifespan)
    app.state.services = svc
    install_error_handlers(app)

    demo_html = (STATIC / "demo.html").read_text(encoding="utf-8")
    app.add_middleware(SecurityHeaders, pages={"/demo": page_csp(demo_html)})
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                       allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"],
                       expose_headers=["Retry-After"])
    app.include_router(api)
    app.add_api_route("/v1/products/{product_id}/image", product_image, methods=["GET"], tags=["products"],
                      response_class=FileResponse, summary="Product photo",
                      responses={**ERROR_RESPONSES, 200: {"content": {m: {} for m in set(IMAGE_SUFFIXES.values())},
                                                          "description": "The photo."}})

    @app.get("/healthz", response_model=Health, tags=["meta"])
    def healthz() -> Health:
        """Liveness: the process answers (restart it if this fails)."""
        return Health()

    @app.get("/readyz", response_model=Readiness, tags=["meta"],
             responses={503: {"model": Readiness, "description": "The store or the sessions database is unusable."}})
    def readyz() -> JSONResponse:
        """Readiness: the product store (product count, encoder) and the sessions database can serve a turn."""
        report = app.state.services.readiness()
        return JSONResponse(report.model_dump(), status_code=200 if report.status == "ready" else 503)

    @app.get("/widget.js", include_in_schema=False)
    def widget() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="application/javascript",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/demo", include_in_schema=False, response_class=HTMLResponse)
    def demo() -> HTMLResponse:
        return HTMLResponse(demo_html)

    return app
