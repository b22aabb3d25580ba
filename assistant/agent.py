"""Compatibility name for the dialogue agent: ``Assistant`` lives in ``assistant.turn`` (session API and turn
loop); handlers, presenters, routing, uploads and wording have their own modules (see ``docs/architecture.md``)."""

from atelier.assistant.turn import Assistant, FeedbackError

__all__ = ["Assistant", "FeedbackError"]
