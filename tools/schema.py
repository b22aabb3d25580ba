"""The normalised product schema that every catalog adapter produces and every tool returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

UNKNOWN = "unknown"


class Product(BaseModel):
    """One catalog item, in the shared taxonomy's vocabulary (see ``prompts/taxonomy.yaml``).

    ``category`` is fine-grained ("dress", "jeans", "sneakers"), ``group`` the coarse outfit slot
    ("top", "bottom", "full-body", "shoes", ...). ``attributes`` keeps source fields that have no
    column of their own; predicted attributes are stored under ``attributes["predicted"]`` and never
    overwrite given ones.
    """

    id: str
    title: str
    description: str = ""
    category: str = UNKNOWN
    group: str = "other"
    colour: str = UNKNOWN
    pattern: str = UNKNOWN
    gender: str = UNKNOWN
    price: float | None = None
    currency: str = ""
    image_path: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    source: str = ""

    @property
    def family(self) -> str | None:
        """The variant family (colour/pattern variants of one piece): a catalog's ``family`` column, else H&M's
        ``product_code``; ``None`` when the catalog says nothing."""
        value = self.attributes.get("family") or self.attributes.get("product_code")
        return str(value) if value else None

    def search_text(self) -> str:
        """The text embedded for dense product-text search."""
        parts = [self.title]
        facets = [v for v in (self.colour, self.pattern, self.category, self.gender) if v and v != UNKNOWN]
        if facets:
            parts.append(" ".join(facets))
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)


class SearchResult(BaseModel):
    """A product as a tool returns it: the ``atelier search --json`` fields, plus the product."""

    id: str
    title: str
    category: str
    group: str
    colour: str
    pattern: str
    gender: str
    price: float | None
    image_path: str | None
    score: float
    why: str
    product: Product | None = Field(default=None, exclude=True)

    @classmethod
    def from_product(cls, product: Product, score: float, why: str) -> "SearchResult":
        return cls(
            id=product.id,
            title=product.title,
            category=product.category,
            group=product.group,
            colour=product.colour,
            pattern=product.pattern,
            gender=product.gender,
            price=product.price,
            image_path=product.image_path,
            score=round(float(score), 6),
            why=why,
            product=product,
        )
