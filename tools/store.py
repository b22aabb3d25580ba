"""The product store: two Chroma collections (product-text vectors and product-image vectors) that
share ids and filterable metadata.

The product itself (its JSON and search document) is stored once, in the text collection; the image collection
carries only what filters need. Every write moves the store's ``revision`` (in the text collection's metadata):
first to ``writing:<uuid>``, then to a fresh id, so in-process indexes built from the store (``tools.table``,
``tools.lexical``) know when they are stale without counting rows.

Embedded (``PersistentClient`` at ``ATELIER_STORE``) by default, client/server when ``ATELIER_CHROMA_URL``
is set. The encoder that built a store is recorded in its collection metadata, so a query with another
encoder fails with a clear message instead of returning nonsense.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from atelier.tools.errors import AtelierError, UnavailableError
from atelier.tools.schema import Product
from atelier.tools.settings import Settings, get_settings

FILTER_FIELDS = ("category", "group", "colour", "pattern", "gender", "source")
MAX_BATCH = 5000
WRITING = "writing:"


class StoreError(UnavailableError):
    """The store cannot serve this request; the message says what to do."""

    code = "store_unavailable"
    public_message = "The catalog is unavailable right now; please try again in a moment."


F = TypeVar("F", bound=Callable[..., Any])


def unavailable_on_failure(method: F) -> F:
    """A Chroma call that fails (server stopped, connection reset, store file gone) raises ``StoreError``, so a
    turn ends with a clear ``store_unavailable`` event instead of an internal error; the next call simply
    tries again, so a restarted server is picked up without restarting Atelier."""
    @functools.wraps(method)
    def guarded(self: "ProductStore", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (AtelierError, TypeError):
            raise
        except Exception as exc:  # noqa: BLE001 - chromadb and httpx raise many unrelated types
            raise StoreError(f"the product store failed in {method.__name__}: {type(exc).__name__}: {exc}") from exc

    return guarded  # type: ignore[return-value]


@dataclass(frozen=True)
class Hit:
    id: str
    similarity: float
    metadata: dict[str, Any]


def product_metadata(product: Product, content_hash: str) -> dict[str, Any]:
    """Flat, filterable metadata (Chroma accepts no None or nested values)."""
    meta: dict[str, Any] = {name: getattr(product, name) for name in FILTER_FIELDS}
    meta.update(title=product.title, content_hash=content_hash, has_price=product.price is not None,
                product=product.model_dump_json())
    if product.price is not None:
        meta["price"] = float(product.price)
    if product.family:
        meta["family"] = product.family
    return meta


def filter_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The part of ``product_metadata`` the image collection keeps: what ``where`` clauses and resumes read."""
    return {k: v for k, v in meta.items() if k not in ("product", "title")}


def product_from_metadata(meta: dict[str, Any]) -> Product:
    return Product.model_validate_json(meta["product"])


class ProductStore:
    """Products with their text and image embeddings, in Chroma."""

    def __init__(self, client: Any, prefix: str, encoder_name: str, dim: int, create: bool = True,
                 ef_search: int | None = None, hnsw_m: int | None = None) -> None:
        self.client = client
        self.encoder_name = encoder_name
        self.dim = dim
        self.ef_search = ef_search
        self.hnsw_m = hnsw_m
        self.text = self._collection(f"{prefix}_text", create)
        self.image = self._collection(f"{prefix}_image", create)
        self._check_encoder(self.text)
        if create and ef_search:
            for collection in (self.text, self.image):
                self._tune(collection, ef_search)

    @classmethod
    def open(cls, encoder_name: str, dim: int, settings: Settings | None = None,
             create: bool = False) -> "ProductStore":
        """The configured store. Only ingestion passes ``create``: a server pointed at a wrong or deleted
        store must say so at startup, not answer every shopper with "nothing matches" from an empty one."""
        settings = settings or get_settings()
        return cls(make_client(settings, create), settings.collection_prefix, encoder_name, dim, create,
                   settings.hnsw_ef_search, settings.hnsw_m)

    @staticmethod
    def _tune(collection: Any, ef_search: int) -> None:
        """Set the collection's HNSW search breadth (a search-time setting: a store built before keeps its graph
        and is re-tuned by the next ``atelier ingest``; open processes pick it up when they reopen the store)."""
        current = ((collection.configuration_json or {}).get("hnsw") or {}).get("ef_search")
        if current != ef_search:
            collection.modify(configuration={"hnsw": {"ef_search": ef_search}})

    def _collection(self, name: str, create: bool) -> Any:
        """The collection ``name``; ingestion creates it with the configured HNSW graph degree ``M`` (a build
        setting: Chroma keeps an existing collection's, so a store built before keeps its graph until rebuilt)."""
        if not create:
            try:
                return self.client.get_collection(name=name, embedding_function=None)
            except Exception as exc:  # chromadb raises NotFoundError / ValueError, or a transport error
                raise StoreError(f"the product store has no collection {name!r} ({exc.__class__.__name__}); "
                                 f"check ATELIER_STORE / ATELIER_CHROMA_URL / ATELIER_COLLECTION_PREFIX "
                                 f"or build the catalog with `atelier ingest`") from exc
        hnsw = {"space": "cosine", **({"ef_search": self.ef_search} if self.ef_search else {}),
                **({"max_neighbors": self.hnsw_m} if self.hnsw_m else {})}
        return self.client.get_or_create_collection(name=name, embedding_function=None,
                                                    metadata={"encoder": self.encoder_name, "dim": self.dim},
                                                    configuration={"hnsw": hnsw})

    def _check_encoder(self, collection: Any) -> None:
        meta = collection.metadata or {}
        built = meta.get("encoder")
        if built and built != self.encoder_name and collection.count() > 0:
            raise StoreError(
                f"this store was built with encoder {built!r} but {self.encoder_name!r} is configured; "
                f"set ATELIER_ENCODER={built} or ingest into a new store (ATELIER_STORE=...)"
            )

    @unavailable_on_failure
    def count(self) -> int:
        return min(self.text.count(), self.image.count())

    @unavailable_on_failure
    def upsert(self, products: Sequence[Product], hashes: Sequence[str], text_vectors: np.ndarray,
               image_vectors: np.ndarray) -> None:
        """Write products to both collections (idempotent by id: re-running never duplicates)."""
        ids = [p.id for p in products]
        metas = [product_metadata(p, h) for p, h in zip(products, hashes)]
        docs = [p.search_text() for p in products]
        self._mark(WRITING + uuid.uuid4().hex)
        self.image.upsert(ids=ids, embeddings=np.asarray(image_vectors, np.float32),
                          metadatas=[filter_metadata(m) for m in metas])
        self.text.upsert(ids=ids, embeddings=np.asarray(text_vectors, np.float32), metadatas=metas, documents=docs)
        self._mark(uuid.uuid4().hex)

    @unavailable_on_failure
    def revision(self) -> str:
        """Changes on every write (``writing:...`` while one is under way or was interrupted); a store written
        before revisions existed gets one stamped now."""
        meta = self.client.get_collection(self.text.name).metadata or {}
        if "revision" not in meta:
            self._mark(uuid.uuid4().hex)
            return self.revision()
        return str(meta["revision"])

    @unavailable_on_failure
    def bump_revision(self) -> None:
        """Declare the store changed (for writers that bypass ``upsert``, such as bulk loaders)."""
        self._mark(uuid.uuid4().hex)

    def _mark(self, revision: str) -> None:
        meta = dict(self.client.get_collection(self.text.name).metadata or {})
        meta["revision"] = revision
        self.text.modify(metadata=meta)

    @unavailable_on_failure
    def content_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """Hashes of the ids present in *both* collections (an item half-written by a crash counts as absent)."""
        if not ids:
            return {}
        got: list[dict[str, str]] = []
        for collection in (self.text, self.image):
            rows = collection.get(ids=list(ids), include=["metadatas"])
            got.append({i: (m or {}).get("content_hash", "") for i, m in zip(rows["ids"], rows["metadatas"])})
        return {i: h for i, h in got[0].items() if got[1].get(i) == h}

    @unavailable_on_failure
    def get(self, ids: Sequence[str]) -> list[Product]:
        """Products by id, in the order asked; unknown ids are skipped."""
        if not ids:
            return []
        rows = self.text.get(ids=list(dict.fromkeys(ids)), include=["metadatas"])
        by_id = {i: product_from_metadata(m) for i, m in zip(rows["ids"], rows["metadatas"])}
        return [by_id[i] for i in ids if i in by_id]

    def get_product(self, product_id: str) -> Product | None:
        found = self.get([product_id])
        return found[0] if found else None

    @unavailable_on_failure
    def vectors(self, ids: Sequence[str], kind: str = "image") -> dict[str, np.ndarray]:
        """Stored embeddings by id (``kind`` is "image" or "text")."""
        if not ids:
            return {}
        collection = self.image if kind == "image" else self.text
        rows = collection.get(ids=list(ids), include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(rows["ids"], rows["embeddings"])}

    @unavailable_on_failure
    def query(self, vector: np.ndarray, kind: str = "text", where: dict[str, Any] | None = None,
              k: int = 50) -> list[Hit]:
        """Nearest products to ``vector`` in the text or image collection, honouring ``where``."""
        ids, sims = self.nearest(vector, kind, k, where)
        if not ids:
            return []
        rows = self.text.get(ids=ids, include=["metadatas"])
        metas = dict(zip(rows["ids"], rows["metadatas"]))
        return [Hit(i, s, metas[i]) for i, s in zip(ids, sims) if i in metas]

    def nearest(self, vector: np.ndarray, kind: str = "text", k: int = 50, where: dict[str, Any] | None = None
                ) -> tuple[list[str], list[float]]:
        """Ids and cosine similarities of the ``k`` nearest products (fewer when the store or filter has fewer)."""
        collection = self.image if kind == "image" else self.text
        try:
            rows = collection.query(query_embeddings=np.asarray(vector, dtype=np.float32)[None, :], n_results=k,
                                    where=where or None, include=["distances"])
        except Exception as exc:  # noqa: BLE001  (chromadb raises plain errors for an empty collection)
            if collection.count() == 0:
                return [], []
            raise StoreError(f"the vector query failed: {exc}") from exc
        return list(rows["ids"][0]), [1.0 - float(d) for d in rows["distances"][0]]

    def family_members(self, family: str) -> list[str]:
        """Ids of one variant family (``family`` metadata, written at ingestion since products carry it)."""
        return list(self.image.get(where={"family": family}, include=[])["ids"])

    def iter_metadata(self, batch: int = MAX_BATCH) -> Iterable[tuple[str, dict[str, Any], str]]:
        """(id, metadata, document) for every product, in pages."""
        offset = 0
        while True:
            rows = self._page(batch, offset)
            if not rows["ids"]:
                return
            yield from zip(rows["ids"], rows["metadatas"], rows["documents"])
            offset += len(rows["ids"])

    @unavailable_on_failure
    def _page(self, batch: int, offset: int) -> dict[str, Any]:
        return self.text.get(include=["metadatas", "documents"], limit=batch, offset=offset)

    @unavailable_on_failure
    def delete(self, ids: Sequence[str]) -> None:
        self._mark(WRITING + uuid.uuid4().hex)
        for collection in (self.text, self.image):
            collection.delete(ids=list(ids))
        self._mark(uuid.uuid4().hex)


def make_client(settings: Settings, create: bool = True) -> Any:
    """A Chroma client: HTTP when ``chroma_url`` is set, else embedded at ``store_path`` (made only if
    ``create``)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                       ssl=url.scheme == "https", settings=chroma_settings)
        except Exception as exc:  # chromadb raises plain Exception/ValueError when the server is down
            raise StoreError(f"cannot reach the Chroma server at {settings.chroma_url}: {exc}") from exc
    if not create and not (settings.store_path / "chroma.sqlite3").is_file():
        raise StoreError(f"no product store at ATELIER_STORE={settings.store_path}; build one with "
                         f"`atelier ingest CATALOG` or point ATELIER_STORE at an existing store")
    settings.store_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)


def open_store(settings: Settings | None = None, create: bool = False) -> ProductStore:
    """The configured store, with the configured encoder's name and dimension."""
    from atelier.tools.encoders import load_encoder

    settings = settings or get_settings()
    encoder = load_encoder(settings.encoder)
    return ProductStore.open(encoder.name, encoder.dim, settings, create)

