"""Cascaded multi-turn memory: what one conversation remembers, how each turn updates it, how the next
search is composed from all of it (FashionNTM-style), and where it is stored (SQLite)."""

from memory.compose import CascadeWeights, ComposedQuery, compose_query, describe_constraints, rerank
from memory.state import Anchor, Constraints, Detail, SessionMemory, ShownItem
from memory.store import SessionNotFound, SessionStore, TurnRecord
from memory.update import TurnUpdate, apply_feedback, apply_turn, record_shown

__all__ = [
    "Anchor", "CascadeWeights", "ComposedQuery", "Constraints", "Detail", "SessionMemory", "SessionNotFound",
    "SessionStore", "ShownItem", "TurnRecord", "TurnUpdate", "apply_feedback", "apply_turn", "compose_query",
    "describe_constraints", "record_shown", "rerank",
]
