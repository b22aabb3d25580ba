"""Cascaded multi-turn memory: what one conversation remembers, how each turn updates it, how the next
search is composed from all of it (FashionNTM-style), and where it is stored (SQLite or PostgreSQL)."""

from atelier.memory.compose import CascadeWeights, ComposedQuery, compose_query, describe_constraints, rerank
from atelier.memory.state import Anchor, Constraints, Detail, SessionMemory, ShownItem
from atelier.memory.store import SessionNotFound, SessionStore, TurnRecord, VersionConflict
from atelier.memory.update import (FEEDBACK_KINDS, FORGET_KINDS, ForgetError, NotRemembered, TurnUpdate, apply_feedback,
    apply_turn, forget_item, record_shown)

__all__ = [
    "FEEDBACK_KINDS", "FORGET_KINDS", "Anchor", "CascadeWeights", "ComposedQuery", "Constraints", "Detail", "ForgetError",
    "NotRemembered", "SessionMemory", "SessionNotFound", "SessionStore", "ShownItem", "TurnRecord", "TurnUpdate",
    "VersionConflict", "apply_feedback", "apply_turn", "compose_query", "describe_constraints", "forget_item", "record_shown", "rerank",
]
