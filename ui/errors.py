"""One error shape for every API failure: ``{"error": {"code", "message"}}``.

Clients (the widget, scripts) branch on ``code`` and show ``message``. Every ``AtelierError`` (``APIError``
included) answers with its ``status``, ``code`` and ``public_message``; the exception's own text goes to the
log, so a bug becomes ``internal`` with a plain sentence instead of a traceback. Codes: ``docs/ui.md``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from atelier.memory.database import database_problem
from atelier.tools.errors import AtelierError

log = logging.getLogger("atelier.api")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
              422: "invalid_request", 429: "rate_limited", 503: "unavailable"}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for clients to branch on (see docs/ui.md).")
    message: str = Field(description="Safe to show to a shopper.")


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description} for status, description in {
        400: "The body could not be read.", 401: "The session's token is missing or expired.",
        403: "The token does not open this session.", 404: "No such session or product.",
        413: "The photo or request is too large.", 415: "Not JSON / multipart, or not an image.",
        422: "The request is not valid.", 429: "Too many requests (see Retry-After).",
        503: "The product store or the sessions database is unavailable.",
    }.items()}
"""What any route may answer besides success, documented in the OpenAPI schema (checked by the fuzzer)."""


class APIError(AtelierError):
    """A request the API refuses, with its HTTP status, a stable code and a shopper-safe message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, public_message=message, code=code)
        self.status = status
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception FastAPI may raise onto the one error shape."""

    @app.exception_handler(AtelierError)
    async def atelier_error(_: Request, exc: AtelierError) -> JSONResponse:
        if not isinstance(exc, APIError):
            log.info("request failed: %s: %s", type(exc).__name__, exc)
        return error_response(exc.status, exc.code, exc.public_message, getattr(exc, "headers", None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), message,
                              getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        return error_response(422, "invalid_request", problems or "the request is not valid")

    @app.exception_handler(sqlite3.Error)
    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("sessions database failed: %s", exc)
        return error_response(503, "sessions_unavailable",
                              f"{database_problem(exc) or 'the sessions database failed'}; please try again later",
                              {"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled API error")
        return error_response(500, AtelierError.code, AtelierError.public_message)
