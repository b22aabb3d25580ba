"""Catalog adapters: each turns one source format into normalised ``Product`` rows.

Adapters live in a registry (``CATALOG_FORMATS``) keyed by format name: ``hm`` (H&M ``articles.csv``),
``fpi`` (Fashion Product Images ``styles.csv``) and ``generic`` (any CSV or JSONL plus a column
mapping). A bad row never stops a catalog: it is yielded as a ``Reject`` with its reason.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from atelier.tools.errors import InputError
from atelier.tools.images import ImageError, resolve_image_ref
from atelier.tools.schema import UNKNOWN, Product
from atelier.tools.taxonomy import Taxonomy, get_taxonomy

csv.field_size_limit(10_000_000)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TEXT = 4000


class CatalogError(InputError):
    """A catalog row, mapping or format that cannot be read; the message names the problem."""

    code = "bad_catalog"


@dataclass(frozen=True)
class Reject:
    """A catalog row that could not become a product."""

    row: int
    id: str
    reason: str


Row = Product | Reject
Adapter = Callable[[Path, "CatalogOptions"], Iterator[Row]]


@dataclass
class CatalogOptions:
    """Per-run options of an adapter; ``mapping`` is used by the generic adapter only."""

    mapping: dict[str, str] = field(default_factory=dict)
    image_root: Path | None = None
    only_ids: frozenset[str] | None = None
    taxonomy: Taxonomy = field(default_factory=get_taxonomy)


CATALOG_FORMATS: dict[str, Adapter] = {}


def register_format(name: str) -> Callable[[Adapter], Adapter]:
    def decorator(adapter: Adapter) -> Adapter:
        CATALOG_FORMATS[name] = adapter
        return adapter

    return decorator


def read_catalog(path: str | Path, fmt: str, options: CatalogOptions | None = None) -> Iterator[Row]:
    """Yield every row of the catalog at ``path`` as a ``Product`` or a ``Reject``."""
    if fmt not in CATALOG_FORMATS:
        raise CatalogError(f"unknown catalog format {fmt!r}; choose one of {', '.join(sorted(CATALOG_FORMATS))}")
    options = options or CatalogOptions()
    rows = CATALOG_FORMATS[fmt](Path(path), options)
    if options.only_ids is None:
        return rows
    return (row for row in rows if row.id in options.only_ids)


def detect_format(path: str | Path) -> str:
    """Guess the format of a catalog folder or file."""
    path = Path(path)
    if (path / "articles.csv").is_file() or path.name == "articles.csv":
        return "hm"
    if (path / "styles.csv").is_file() or path.name == "styles.csv":
        return "fpi"
    return "generic"


def clean_text(value: Any) -> str:
    """Plain, bounded text: product text is data, never markup or control characters."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text[:MAX_TEXT]


def parse_price(value: Any) -> float | None:
    """A non-negative finite price, ``None`` when absent; raises ``ValueError`` when malformed."""
    if value is None or str(value).strip() == "":
        return None
    price = float(str(value).replace(",", "").strip().lstrip("$€£"))
    if not math.isfinite(price) or price < 0:
        raise CatalogError(f"price {value!r} is not a non-negative number")
    return round(price, 2)


FAMILY_INFER = "infer"
FAMILY_NONE = "none"


def infer_family(title: str, category: str, taxonomy: Taxonomy) -> str:
    """A variant-family key for catalogs without one: colour and pattern variants of a piece share their title up to
    the colour and pattern words ("Nike Men Navy Blue Tee" / "Nike Men White Tee"), and their category."""
    words = re.findall(r"[a-z0-9]+", taxonomy.strip(title, ("colour", "pattern")).lower())
    return f"{category}:{' '.join(words)}" if words else ""


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            yield number, row


def _build(row_number: int, raw_id: str, fields: dict[str, Any], base: Path) -> Row:
    image = fields.get("image_path")
    if image:
        try:
            path = resolve_image_ref(str(image), base)
        except ImageError as exc:
            return Reject(row_number, raw_id, str(exc))
        if not path.is_file():
            return Reject(row_number, raw_id, f"image file not found: {path}")
        fields["image_path"] = str(path.resolve())
    try:
        return Product(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        return Reject(row_number, raw_id, f"invalid {'.'.join(map(str, first['loc']))}: {first['msg']}")


HM_GROUPS = {
    "garment upper body": "top", "garment lower body": "bottom", "garment full body": "full-body",
    "shoes": "shoes", "accessories": "accessory", "underwear": "underwear", "swimwear": "swimwear",
    "socks & tights": "socks", "nightwear": "nightwear", "bags": "bag",
}
HM_GENDERS = {"Ladieswear": "women", "Divided": "women", "Menswear": "men", "Baby/Children": "kids"}
HM_FIELDS = (
    "product_code", "product_type_name", "product_group_name", "graphical_appearance_name", "colour_group_name",
    "perceived_colour_value_name", "perceived_colour_master_name", "department_name", "index_name",
    "index_group_name", "section_name", "garment_group_name", "price_source",
)


def hm_gender(row: dict[str, str]) -> str:
    group = row.get("index_group_name", "")
    if group == "Sport":
        section = row.get("section_name", "")
        return "men" if section.startswith("Men") else "kids" if section.startswith("Kids") else "women"
    return HM_GENDERS.get(group, UNKNOWN)


@register_format("hm")
def read_hm(path: Path, options: CatalogOptions) -> Iterator[Row]:
    """H&M ``articles.csv`` (the Personalized Fashion Recommendations schema plus price and image_path)."""
    return _read_csv_catalog(path, "articles.csv", ("article_id", "prod_name"), _hm_fields, options)


def _hm_fields(row: dict[str, str], raw_id: str, tax: Taxonomy) -> dict[str, Any]:
    try:
        price = parse_price(row.get("price"))
    except ValueError as exc:
        raise CatalogError(f"malformed price: {exc}") from exc
    category = tax.from_source("category", "hm", row.get("product_type_name"))
    if category == "trousers" and row.get("garment_group_name") == "Trousers Denim":
        category = "jeans"
    group = tax.group_of(category) if category != UNKNOWN else HM_GROUPS.get(
        row.get("product_group_name", "").lower(), "other")
    return {
        "id": raw_id,
        "title": clean_text(row.get("prod_name")),
        "description": clean_text(row.get("detail_desc")),
        "category": category,
        "group": group,
        "colour": tax.from_source("colour", "hm", row.get("colour_group_name")),
        "pattern": tax.from_source("pattern", "hm", row.get("graphical_appearance_name")),
        "gender": hm_gender(row),
        "price": price,
        "currency": "",
        "image_path": row.get("image_path") or None,
        "attributes": {k: clean_text(row.get(k)) for k in HM_FIELDS if row.get(k)},
        "source": "hm",
    }


def _read_csv_catalog(path: Path, filename: str, required: tuple[str, str],
                      to_fields: Callable[[dict[str, str], str, Taxonomy], dict[str, Any]],
                      options: CatalogOptions) -> Iterator[Row]:
    """The row loop every CSV source shares: a row without its id or title column, or one whose fields
    cannot be read (``ValueError``), becomes a ``Reject`` with the reason; the rest become products."""
    csv_path = path / filename if path.is_dir() else path
    base = options.image_root or csv_path.parent
    for number, row in _csv_rows(csv_path):
        raw_id = clean_text(row.get(required[0]))
        if not raw_id or not clean_text(row.get(required[1])):
            yield Reject(number, raw_id, f"missing {required[0]} or {required[1]}")
            continue
        try:
            fields = to_fields(row, raw_id, options.taxonomy)
        except ValueError as exc:
            yield Reject(number, raw_id, str(exc))
            continue
        yield _build(number, raw_id, fields, base)


FPI_GROUPS = {
    "topwear": "top", "bottomwear": "bottom", "dress": "full-body", "saree": "full-body", "apparel set": "full-body",
    "shoes": "shoes", "sandal": "shoes", "flip flops": "shoes", "bags": "bag", "wallets": "bag",
    "watches": "jewellery", "jewellery": "jewellery", "eyewear": "accessory", "belts": "accessory",
    "headwear": "accessory", "ties": "accessory", "scarves": "accessory", "stoles": "accessory",
    "mufflers": "accessory", "gloves": "accessory", "cufflinks": "accessory", "accessories": "accessory",
    "innerwear": "underwear", "loungewear and nightwear": "nightwear", "socks": "socks",
}
FPI_GENDERS = {"men": "men", "women": "women", "unisex": "unisex", "boys": "kids", "girls": "kids"}
FPI_FIELDS = ("masterCategory", "subCategory", "articleType", "baseColour", "season", "year", "usage")


@register_format("fpi")
def read_fpi(path: Path, options: CatalogOptions) -> Iterator[Row]:
    """Fashion Product Images (Myntra) ``styles.csv``: no prices, no descriptions, no pattern field."""
    return _read_csv_catalog(path, "styles.csv", ("id", "productDisplayName"), _fpi_fields, options)


def _fpi_fields(row: dict[str, str], raw_id: str, tax: Taxonomy) -> dict[str, Any]:
    title = clean_text(row.get("productDisplayName"))
    category = tax.from_source("category", "fpi", row.get("articleType"))
    group = tax.group_of(category) if category != UNKNOWN else FPI_GROUPS.get(
        (row.get("subCategory") or "").lower(), "other")
    facts = [row.get(k, "") for k in ("articleType", "baseColour", "usage", "season")]
    given = clean_text(row.get("family")) or infer_family(title, category, tax)
    family = {"family": given} if given else {}
    return {
        "id": raw_id,
        "title": title,
        "description": ", ".join(clean_text(f) for f in facts if clean_text(f)),
        "category": category,
        "group": group,
        "colour": tax.from_source("colour", "fpi", row.get("baseColour")),
        "pattern": tax.normalise("pattern", title) if tax.find_mentions(title, ("pattern",)) else UNKNOWN,
        "gender": FPI_GENDERS.get((row.get("gender") or "").lower(), UNKNOWN),
        "price": None,
        "image_path": row.get("image_path") or f"images/{raw_id}.jpg",
        "attributes": {k: clean_text(row.get(k)) for k in FPI_FIELDS if row.get(k)} | family,
        "source": "fpi",
    }


GENERIC_FIELDS = ("id", "title", "description", "category", "group", "colour", "pattern", "gender", "price",
                  "currency", "image_path")


def load_mapping(path: str | Path | None, pairs: list[str] | None = None) -> dict[str, str]:
    """A column mapping ``{product field: source column}`` from a YAML file and/or ``field=column`` pairs."""
    mapping: dict[str, str] = {}
    if path:
        mapping.update({str(k): str(v) for k, v in (yaml.safe_load(Path(path).read_text()) or {}).items()})
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CatalogError(f"mapping {pair!r} must look like field=column")
        mapping[key.strip()] = value.strip()
    unknown = set(mapping) - set(GENERIC_FIELDS) - {"image_root", "family"}
    if unknown:
        raise CatalogError(f"unknown product fields in mapping: {', '.join(sorted(unknown))}")
    return mapping


def _generic_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    yield number, None
                    continue
                yield number, value if isinstance(value, dict) else None
    else:
        yield from _csv_rows(path)


def generic_family(row: dict[str, Any], column: str, title: str, category: str, taxonomy: Taxonomy) -> str:
    """The mapping's ``family`` entry: a column (default ``family``) whose value wins when given, ``infer`` to
    always derive it from title + category, ``none`` for no families; an empty cell falls back to inference."""
    if column == FAMILY_NONE:
        return ""
    given = clean_text(row.get(column)) if column != FAMILY_INFER else ""
    return given or infer_family(title, category, taxonomy)


@register_format("generic")
def read_generic(path: Path, options: CatalogOptions) -> Iterator[Row]:
    """Any CSV or JSONL file; ``options.mapping`` maps product fields to columns (identity by default)."""
    mapping = {name: name for name in GENERIC_FIELDS} | options.mapping
    family_column = mapping.pop("family", "family")
    image_root = options.image_root or (Path(options.mapping["image_root"]) if "image_root" in options.mapping
                                        else path.parent)
    tax = options.taxonomy
    seen: set[str] = set()
    for number, row in _generic_rows(path):
        if row is None:
            yield Reject(number, "", "row is not a JSON object")
            continue
        value = {name: row.get(column) for name, column in mapping.items() if name in GENERIC_FIELDS}
        raw_id = clean_text(value.get("id"))
        title = clean_text(value.get("title"))
        if not raw_id or not title:
            yield Reject(number, raw_id, "missing id or title")
            continue
        if raw_id in seen:
            yield Reject(number, raw_id, "duplicate id in this catalog")
            continue
        seen.add(raw_id)
        try:
            price = parse_price(value.get("price"))
        except ValueError as exc:
            yield Reject(number, raw_id, f"malformed price: {exc}")
            continue
        category = tax.normalise("category", clean_text(value.get("category")) or title)
        group = tax.normalise("group", clean_text(value.get("group")))
        known = set(mapping.values())
        fields = {
            "id": raw_id,
            "title": title,
            "description": clean_text(value.get("description")),
            "category": category,
            "group": group if group != UNKNOWN else tax.group_of(category),
            "colour": tax.normalise("colour", clean_text(value.get("colour")) or title),
            "pattern": tax.normalise("pattern", clean_text(value.get("pattern"))),
            "gender": tax.normalise("gender", clean_text(value.get("gender"))),
            "price": price,
            "currency": clean_text(value.get("currency")),
            "image_path": clean_text(value.get("image_path")) or None,
            "attributes": {k: clean_text(v) for k, v in row.items() if k not in known and v not in (None, "")},
            "source": path.stem,
        }
        family = generic_family(row, family_column, title, category, tax)
        for column in (family_column, "family"):
            fields["attributes"].pop(column, None)
        if family:
            fields["attributes"]["family"] = family
        yield _build(number, raw_id, fields, image_root)
