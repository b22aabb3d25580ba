"""The replay file format: a conversation's turns (say, photo, click, forget) and what must hold after each.

Pydantic models, so a malformed file fails on load with the field that is wrong. Documented in
``docs/agent.md``; run by ``assistant.replay``, written by ``assistant.session_export``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from atelier.tools.errors import InputError

CLICK_KINDS = ("like", "dislike", "more_like_this", "focus")
REF = re.compile(r"^@(\d+)\.(-?\d+|\*)$")
STAT = re.compile(r"^@(\d+)\.(median_price|min_price|max_price|-?\d+\.price)$")


class ResultCheck(BaseModel):
    """One property of the top results: ``all`` / ``none`` / ``fraction`` of them match ``where``, a count,
    or ids (or ``@turn.rank`` references to earlier results, ``@disliked``) in / out of the top ``top``."""

    model_config = ConfigDict(extra="forbid")

    top: int = 10
    all: dict[str, Any] | None = None
    none: dict[str, Any] | None = None
    fraction: float | None = None
    where: dict[str, Any] | None = None
    count: dict[str, int] | None = None
    includes: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)


class MemoryCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    must: dict[str, list[str]] | None = None
    avoid: dict[str, list[str]] | None = None
    price_min: Any = "unset"
    price_max: Any = "unset"
    preferences: list[str] | None = None
    liked: list[str] | None = None
    disliked: list[str] | None = None
    anchors: int | None = None
    empty: bool | None = None


class ReplyCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contains: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)
    any_of: list[str] = Field(default_factory=list)


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: str | None = None
    tools: list[str] | None = None
    error: bool = False
    memory: MemoryCheck | None = None
    results: list[ResultCheck] = Field(default_factory=list)
    reply: ReplyCheck | None = None


class ForgetSpec(BaseModel):
    """One memory item to remove (``Assistant.forget``): ``{kind: avoid, facet: colour, value: black}``."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    facet: str | None = None
    value: str | float | None = None


class TurnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    say: str | None = None
    image: str | None = None
    click: dict[str, int | str] | None = None
    forget: ForgetSpec | None = None
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _one_action(self) -> "TurnSpec":
        if self.say is None and self.click is None and self.image is None and self.forget is None:
            raise InputError("a turn needs `say`, `image`, `click` or `forget`")
        if self.click is not None and (len(self.click) != 1 or next(iter(self.click)) not in CLICK_KINDS):
            raise InputError(f"`click` takes one of {', '.join(CLICK_KINDS)} with a rank or an id")
        return self


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    store: str = "hm-sample"
    turns: list[TurnSpec]


class ReplayResult(BaseModel):
    name: str
    path: str = ""
    turns: int
    failures: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


def load_conversation(path: str | Path) -> Conversation:
    data = yaml.safe_load(Path(path).read_text())
    return Conversation.model_validate(data)
