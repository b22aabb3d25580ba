"""Security headers for every response of the API (OWASP API8, security misconfiguration).

JSON and event-stream answers get the strictest policy (``default-src 'none'``: nothing in them may load
or run anything, and no page may frame them). The ``/demo`` page gets a policy that allows exactly what
the widget needs: its own script (and the page's one inline script, pinned by its SHA-256), styles in its
Shadow DOM, product photos and photo previews (``blob:``), and calls back to this server. Swagger's
``/docs`` loads its assets from a CDN, so it only gets the framing and sniffing headers.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = "frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions (``'sha256-...'``) for each inline ``<script>`` of ``html``."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in INLINE_SCRIPT.findall(html)]


def page_csp(html: str) -> str:
    """The policy for a page that embeds the widget (``/demo``)."""
    scripts = " ".join(["'self'", *inline_script_hashes(html)])
    return (f"default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


class SecurityHeaders:
    """ASGI middleware adding :data:`COMMON` plus a per-path Content-Security-Policy.

    ``pages`` maps a path to its own policy; a route may also set its CSP itself (it is kept).
    """

    def __init__(self, app: ASGIApp, pages: dict[str, str] | None = None) -> None:
        self.app = app
        self.pages = pages or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = self.pages.get(path) or (DOCS_CSP if path.startswith(DOCS_PATHS) else API_CSP)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = {**COMMON, "Content-Security-Policy": csp}
                headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()
                            if k.lower().encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
