"""A small synthetic catalog and a deterministic fake encoder, so agent tests need no model weights."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from atelier.assistant.turn import Assistant
from atelier.assistant.parser import TurnParser
from atelier.memory import SessionStore
from atelier.tools.schema import Product
from atelier.tools.search import ProductSearch
from atelier.tools.settings import override_settings
from atelier.tools.store import ProductStore, make_client

DIM = 64
COLOURS = ["red", "blue", "black", "white", "green"]


class HashEncoder:
    """Bag of words hashed into 64 dimensions: deterministic, instant, good enough to rank by words."""

    name = "hash-test"
    dim = DIM

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                out[i, zlib.crc32(word.encode()) % DIM] += 1.0
            out[i, 0] += 0.01
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_images(self, images) -> np.ndarray:
        out = np.zeros((len(images), DIM), dtype=np.float32)
        for i, image in enumerate(images):
            r, g, b = np.asarray(image.convert("RGB").resize((4, 4))).reshape(-1, 3).mean(0)
            out[i, :3] = (r, g, b)
            out[i, 3] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def catalog() -> list[Product]:
    products = []
    n = 0
    for category, group, base in (("dress", "full-body", 20.0), ("sneakers", "shoes", 40.0),
                                  ("shirt", "top", 15.0)):
        for c, colour in enumerate(COLOURS):
            for variant in range(3):
                n += 1
                products.append(Product(
                    id=f"{n:04d}", title=f"{colour.title()} {category} {variant}", category=category, group=group,
                    colour=colour, pattern="solid" if variant < 2 else "striped", gender="women" if variant else "men",
                    price=base + 5 * variant + c, description=f"A {colour} {category} in soft fabric.",
                    source="test"))
    return products


@pytest.fixture()
def assistant(tmp_path) -> Assistant:
    settings = override_settings(home=tmp_path, store=tmp_path / "store", db=tmp_path / "a.db", llm="none")
    encoder = HashEncoder()
    store = ProductStore(make_client(settings), "agenttest", encoder.name, encoder.dim)
    products = catalog()
    texts = encoder.embed_texts([p.search_text() for p in products])
    store.upsert(products, ["h"] * len(products), texts, texts)
    engine = ProductSearch(store, encoder, settings)
    return Assistant(settings, engine=engine, sessions=SessionStore(settings.db_path),
                     parser=TurnParser(encoder=encoder, use_embeddings=False), tool_model=None)
