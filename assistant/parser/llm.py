"""The optional LLM turn parser: an OpenAI-compatible model fills the same ``TurnIntent`` as JSON-schema structured
output, and the rules stay the floor.

The schema pins every facet value to the taxonomy (enums), so the model can only name values the catalog has; the
answer is validated (pydantic) and any error - no endpoint, a refusal, invalid JSON, an unknown value - falls back
to the rule parser's reading of the same message. The rules still give the free-text parts the model is not asked
for (``details``, ``change``). On with ``ATELIER_PARSER=llm`` and ``ATELIER_LLM=openai``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from atelier.assistant.llm.prompts import load_prompt
from atelier.memory.intent import INTENTS, ParseContext, TurnIntent
from atelier.tools.settings import Settings, get_settings
from atelier.tools.taxonomy import Taxonomy, get_taxonomy

log = logging.getLogger(__name__)

FACETS = ("category", "group", "colour", "pattern", "gender")
RELATIVE = ("cheaper", "pricier", "longer", "shorter", "darker", "lighter", "more_formal", "more_casual")


class LLMReading(BaseModel):
    """What the model may fill: the structured part of ``TurnIntent``."""

    intent: Literal[INTENTS]  # type: ignore[valid-type]
    must: dict[str, list[str]] = Field(default_factory=dict)
    avoid: dict[str, list[str]] = Field(default_factory=dict)
    allow: dict[str, list[str]] = Field(default_factory=dict)
    price_min: float | None = None
    price_max: float | None = None
    relative: list[Literal[RELATIVE]] = Field(default_factory=list)  # type: ignore[valid-type]
    references: list[int] = Field(default_factory=list)
    similar: list[int] = Field(default_factory=list)
    like: list[int] = Field(default_factory=list)
    dislike: list[int] = Field(default_factory=list)
    show_more: bool = False


def facet_values(taxonomy: Taxonomy) -> dict[str, list[str]]:
    return {facet: taxonomy.values(facet) for facet in FACETS}


def json_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """The strict JSON schema of ``LLMReading`` with every facet value an enum of the taxonomy."""
    values = facet_values(taxonomy)
    facets = {"type": "object", "additionalProperties": False, "required": list(FACETS),
              "properties": {f: {"type": "array", "items": {"type": "string", "enum": v}} for f, v in values.items()}}
    ranks = {"type": "array", "items": {"type": "integer"}}
    price = {"type": ["number", "null"]}
    properties = {"intent": {"type": "string", "enum": list(INTENTS)}, "must": facets, "avoid": facets,
                  "allow": facets, "price_min": price, "price_max": price,
                  "relative": {"type": "array", "items": {"type": "string", "enum": list(RELATIVE)}},
                  "references": ranks, "similar": ranks, "like": ranks, "dislike": ranks,
                  "show_more": {"type": "boolean"}}
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


def validate(raw: str, taxonomy: Taxonomy) -> LLMReading:
    """The model's answer as an ``LLMReading``; raises ``ValueError`` on anything outside the schema."""
    reading = LLMReading.model_validate(json.loads(raw))
    allowed = facet_values(taxonomy)
    for name in ("must", "avoid", "allow"):
        constraints = getattr(reading, name)
        for facet, values in constraints.items():
            if facet not in allowed or any(v not in allowed[facet] for v in values):
                raise ValueError(f"{name}.{facet}: a value outside the taxonomy: {values}")
        setattr(reading, name, {f: list(dict.fromkeys(v)) for f, v in constraints.items() if v})
    return reading


class LLMTurnParser:
    """``parse`` like ``TurnParser``: the model's structured reading, or the rules' on any error."""

    def __init__(self, fallback: Any, settings: Settings | None = None, taxonomy: Taxonomy | None = None,
                 client: Any | None = None) -> None:
        self.fallback = fallback
        self.settings = settings or get_settings()
        self.taxonomy = taxonomy or get_taxonomy()
        self._client = client
        self._schema = json_schema(self.taxonomy)
        self.failures = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            from atelier.assistant.llm.openai_compat import OpenAIBackend

            self._client = OpenAIBackend(self.settings).client
        return self._client

    def parse(self, text: str, context: ParseContext | None = None) -> TurnIntent:
        context = context or ParseContext()
        rules = self.fallback.parse(text, context)
        try:
            reading = self.read(text, context)
        except Exception as exc:  # noqa: BLE001 - any failure of the model leaves the rules' reading
            self.failures += 1
            log.warning("LLM parser failed (%s: %s); using the rules", type(exc).__name__, exc)
            return rules
        fields = reading.model_dump()
        return rules.model_copy(update={**fields, "new_topic": reading.intent == "search" and context.has_results,
                                        "question": text.strip() if reading.intent in ("question", "describe") else None,
                                        "source": "llm", "score": 1.0})

    def read(self, text: str, context: ParseContext) -> LLMReading:
        facets = "\n".join(f"- {f}: {', '.join(v)}" for f, v in facet_values(self.taxonomy).items())
        system = load_prompt("llm/turn_parser.md").format(facets=facets, context=context.model_dump_json())
        response = self.client.chat.completions.create(
            model=self.settings.llm_model, temperature=0, max_tokens=512,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": text}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "turn_intent", "strict": True, "schema": self._schema}})
        content = response.choices[0].message.content
        if not content:
            raise ValueError("empty answer (a refusal?)")
        try:
            return validate(content, self.taxonomy)
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ValueError(f"invalid structured output: {exc}") from exc
