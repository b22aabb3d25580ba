"""A logged session as a replay conversation (``atelier export``): the turn log turned back into a script.

Kept apart from ``replay`` so that the agent can export without importing the replay runner, which itself
drives the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from atelier.tools.settings import Settings, get_settings


def _image_ref(image: str | None, settings: Settings) -> str | None:
    if not image:
        return None
    path = Path(image).resolve()
    try:
        return str(path.relative_to(Path(settings.datasets).resolve()))
    except ValueError:
        return str(path)


def export_session(turns: Sequence[Any], settings: Settings | None = None, name: str | None = None) -> dict[str, Any]:
    """A logged session as a replay conversation whose expectations pin what happened (intent, tools,
    constraints, the top results)."""
    settings = settings or get_settings()
    out_turns: list[dict[str, Any]] = []
    for t in turns:
        if t.error:
            continue
        if t.kind in ("feedback", "focus"):
            kind, rank = t.intent.get("feedback", "focus"), t.intent.get("rank")
            spec: dict[str, Any] = {"click": {kind: rank if rank else t.intent.get("product_id")}}
        elif t.kind == "forget":
            spec = {"forget": {k: v for k, v in (("kind", t.intent.get("forget")), ("facet", t.intent.get("facet")),
                                                 ("value", t.intent.get("value"))) if v is not None}}
        else:
            spec = {"say": t.message}
            image = _image_ref(t.image, settings)
            if image:
                spec["image"] = image
        expect: dict[str, Any] = {}
        if t.kind == "message" and t.intent.get("intent"):
            expect["intent"] = t.intent["intent"]
        if t.tool_calls:
            expect["tools"] = list(dict.fromkeys(c["name"] for c in t.tool_calls))
        constraints = (t.memory or {}).get("constraints", {})
        if constraints:
            memory = {"must": constraints.get("must", {}), "avoid": constraints.get("avoid", {})}
            for bound in ("price_min", "price_max"):
                if constraints.get(bound) is not None:
                    memory[bound] = constraints[bound]
            expect["memory"] = memory
        if t.result_ids:
            expect["results"] = [{"top": 10, "includes": t.result_ids[:3]}]
        if expect:
            spec["expect"] = expect
        out_turns.append(spec)
    session = turns[0].session_id if turns else "session"
    return {"name": name or f"exported session {session}", "description": "Exported with `atelier export`.",
            "store": "hm-sample", "turns": out_turns}


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
