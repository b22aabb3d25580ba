"""One hierarchy for every error Atelier raises on purpose: a stable ``code``, an HTTP status and a
shopper-safe message.

The API and the event stream show ``code`` and ``public_message`` only; the exception's own text (which may
name files, settings or upstream errors) goes to the log. Each class also derives from the built-in error
callers already catch (``ValueError``, ``KeyError``, ``RuntimeError``), so code that predates the hierarchy
keeps working. The floor of the project: it imports nothing of Atelier. Codes are listed in ``docs/ui.md``.
"""

from __future__ import annotations


class AtelierError(Exception):
    """Base of every deliberate Atelier error."""

    code: str = "internal"
    status: int = 500
    public_message: str = "Sorry, something went wrong on my side; please try again."

    def __init__(self, message: str | None = None, *, public_message: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message or public_message or self.public_message)
        if public_message is not None:
            self.public_message = public_message
        if code is not None:
            self.code = code


class InputError(AtelierError, ValueError):
    """The request itself is wrong; the shopper or client can fix it."""

    code = "invalid_request"
    status = 422
    public_message = "That request could not be understood."

    def __init__(self, message: str | None = None, **kwargs: str | None) -> None:
        kwargs.setdefault("public_message", message)
        super().__init__(message, **kwargs)


class NotFoundError(AtelierError, KeyError):
    """Something named by the request does not exist."""

    code = "not_found"
    status = 404
    public_message = "That was not found."

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.public_message


class UnavailableError(AtelierError, RuntimeError):
    """A dependency (store, encoder, model endpoint, database) cannot serve right now."""

    code = "unavailable"
    status = 503
    public_message = "Part of the shop is unavailable right now; please try again in a moment."
