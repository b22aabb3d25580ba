"""The shared taxonomy: one vocabulary for categories, groups, colours, patterns and genders.

Catalog adapters map source values onto it (``Taxonomy.category_from_source``), query parsing finds
its synonyms in free text (``Taxonomy.find_mentions``). The data lives in ``prompts/taxonomy.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from atelier.tools.schema import UNKNOWN
from atelier.tools.settings import PROMPTS_DIR

FACETS = ("category", "colour", "pattern", "gender")


@dataclass(frozen=True)
class Mention:
    """A taxonomy value found in text: which facet, which value, where."""

    facet: str
    value: str
    start: int
    end: int
    surface: str


@dataclass
class Taxonomy:
    groups: dict[str, str]
    category_group: dict[str, str]
    synonyms: dict[str, dict[str, str]]  # facet -> surface form -> canonical value
    source_maps: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # facet -> source -> raw -> value
    _patterns: dict[str, re.Pattern[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> "Taxonomy":
        data = yaml.safe_load((path or PROMPTS_DIR / "taxonomy.yaml").read_text())
        synonyms: dict[str, dict[str, str]] = {f: {} for f in FACETS}
        source_maps: dict[str, dict[str, dict[str, str]]] = {f: {} for f in FACETS}
        category_group: dict[str, str] = {}
        sections = {"category": "categories", "colour": "colours", "pattern": "patterns", "gender": "genders"}
        for facet, key in sections.items():
            for value, spec in (data.get(key) or {}).items():
                spec = spec or {}
                if facet == "category":
                    category_group[value] = spec["group"]
                for word in [value, *spec.get("synonyms", [])]:
                    synonyms[facet].setdefault(word.lower(), value)
                for source in ("hm", "fpi"):
                    for raw in spec.get(source, []) or []:
                        source_maps[facet].setdefault(source, {})[raw.lower()] = value
        return cls(groups=dict(data["groups"]), category_group=category_group, synonyms=synonyms, source_maps=source_maps)

    def values(self, facet: str) -> list[str]:
        if facet == "group":
            return list(self.groups)
        return sorted(set(self.synonyms[facet].values()))

    def group_of(self, category: str) -> str:
        return self.category_group.get(category, "other")

    def from_source(self, facet: str, source: str, raw: str | None) -> str:
        """Map a source catalog's raw value (e.g. H&M "Dark Blue") onto the shared value ("navy")."""
        if not raw:
            return UNKNOWN
        key = raw.strip().lower()
        mapped = self.source_maps.get(facet, {}).get(source, {}).get(key)
        if mapped:
            return mapped
        return self.synonyms[facet].get(key, UNKNOWN)

    def normalise(self, facet: str, text: str | None) -> str:
        """Map any free-text value (a synonym or a canonical name) onto the shared value."""
        if not text:
            return UNKNOWN
        key = text.strip().lower()
        if facet == "group":
            return key if key in self.groups else UNKNOWN
        if key in self.synonyms[facet]:
            return self.synonyms[facet][key]
        found = self.find_mentions(key, facets=(facet,))
        return found[0].value if found else UNKNOWN

    def _regex(self, facet: str) -> re.Pattern[str]:
        if facet not in self._patterns:
            words = sorted(self.synonyms[facet], key=len, reverse=True)
            alternation = "|".join(re.escape(w) for w in words)
            self._patterns[facet] = re.compile(rf"(?<![\w-])({alternation})(?![\w-])", re.IGNORECASE)
        return self._patterns[facet]

    def find_mentions(self, text: str, facets: tuple[str, ...] = FACETS) -> list[Mention]:
        """Every taxonomy value mentioned in ``text``, longest surface form first, in text order."""
        found: list[Mention] = []
        taken: list[tuple[int, int]] = []
        for facet in facets:
            for m in self._regex(facet).finditer(text):
                span = (m.start(), m.end())
                if any(s < span[1] and span[0] < e for s, e in taken):
                    continue
                taken.append(span)
                found.append(Mention(facet, self.synonyms[facet][m.group(1).lower()], span[0], span[1], m.group(1)))
        return sorted(found, key=lambda x: x.start)

    def strip(self, text: str, facets: tuple[str, ...]) -> str:
        """``text`` without its mentions of ``facets`` ("Navy blue striped dress" -> "dress" for colour, pattern)."""
        if not facets:
            return text.strip()
        for mention in sorted(self.find_mentions(text, facets), key=lambda m: -m.start):
            text = text[:mention.start] + text[mention.end:]
        return re.sub(r"\s{2,}", " ", text).strip(" ,.")


@lru_cache(maxsize=1)
def get_taxonomy() -> Taxonomy:
    return Taxonomy.load()
