"""Cascaded multi-turn memory: what one conversation remembers, how each turn updates it, how the next
search is composed from all of it (FashionNTM-style), and where it is stored (SQLite)."""

from memory.compose import CascadeWeights, ComposedQuery, compose_query, describe_constraints, rerank
from memory.state import Anchor, Constraints, Detail, SessionMemory, ShownItem
from memory.store import SessionNotFound, SessionStore, TurnRecord
from memory.update import (FORGET_KINDS, ForgetError, NotRemembered, TurnUpdate, apply_feedback, apply_turn,
                           forget_item, record_shown)

__all__ = [
    "FORGET_KINDS", "Anchor", "CascadeWeights", "ComposedQuery", "Constraints", "Detail", "ForgetError",
    "NotRemembered", "SessionMemory", "SessionNotFound", "SessionStore", "ShownItem", "TurnRecord", "TurnUpdate",
    "apply_feedback", "apply_turn", "compose_query", "describe_constraints", "forget_item", "record_shown", "rerank",
]
