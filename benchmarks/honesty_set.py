"""Build the labelled query set of the honesty benchmark (``benchmarks/data/honesty.yaml``).

``python -m benchmarks.honesty_set`` writes it; the file is committed, so every run measures the same queries.

Three groups, each from data plus hand-written queries:

* ``in_catalog`` — templated from H&M articles' own vocabulary (their colour, the taxonomy's words for their
  category, a material or a feature from their description, their catalog type) plus vague shopper phrasings.
  Articles of test-split products give held-out queries, the others dev queries: the held-out in-catalog
  queries describe products the calibration never looked at.
* ``out_of_domain`` — household, electronics, food, vehicles, garden, tools, toys, services, personal care
  (the other catalog's cosmetics types), sports equipment, in a few phrasings.
* ``not_carried`` — fashion the H&M catalog does not carry: garments (wetsuit, tuxedo, kurta, the other catalog's
  types H&M lacks), qualified garments (ski boots, golf shoes), brands, sizes.

Labels come from the catalog: ``nothing_matches`` is true when no H&M article satisfies every content term of
the query (``tools.coverage.cover`` over the whole catalog) — and for every out-of-domain query, whose words may
all occur in fashion listings ("red wine") —, ``unmatched`` lists the terms no article carrying the head garment
has (the reply must name them). An in-catalog query the catalog cannot satisfy moves to ``not_carried``; a
not-carried query it can satisfy is dropped; both are printed.
Hand-written queries are split dev / held-out by a hash of their text.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import yaml

from atelier.tools.catalogs import CatalogOptions, read_catalog
from atelier.tools.coverage import cover, product_stems, request_terms
from atelier.tools.schema import UNKNOWN, Product, SearchResult
from atelier.tools.taxonomy import get_taxonomy
from benchmarks.common import datasets, hm_test_product_codes

OUT = Path(__file__).resolve().parent / "data" / "honesty.yaml"
SEED = 17
MATERIALS = ["cotton", "linen", "wool", "denim", "leather", "silk", "satin", "velvet", "jersey", "lace", "cashmere",
             "corduroy", "chiffon", "mesh", "suede", "fleece", "viscose", "lyocell", "rib-knit", "twill"]
FEATURES = ["long sleeves", "short sleeves", "a hood", "pockets", "a zip", "a collar", "a v-neck", "a belt",
            "frills", "buttons", "a drawstring", "shoulder straps", "a slit", "puff sleeves", "a tie belt"]
OPENERS = ["", "", "I'm looking for ", "do you have ", "show me ", "I need ", "any "]

VAGUE_IN = [
    "something comfy", "outfit for a date", "what's trendy", "something for a wedding", "a cosy hoodie for men",
    "white sneakers", "a gift for my girlfriend", "beach outfit", "party dress", "something warm for winter",
    "office wear for women", "a summer dress", "black jeans for men", "a smart blazer", "sporty leggings",
    "running shorts", "a swimsuit for the holidays", "pyjamas for kids", "a little black dress", "a denim jacket",
    "gold earrings", "a straw hat", "a leather belt", "a striped t-shirt", "floral blouse", "a wool scarf",
    "ankle boots", "a backpack", "ballet flats", "a bikini", "a lace bra", "socks", "a trench coat",
    "a knitted cardigan", "hair clips", "sunglasses", "a silk scarf", "a long skirt", "a red dress",
    "kids' rain jacket", "a cap", "something sparkly for new year's eve", "a padded jacket", "a polo shirt",
]
OUT_OF_DOMAIN = {
    "household": ["toaster", "kettle", "vacuum cleaner", "frying pan", "curtains", "table lamp", "sofa",
                  "dining table", "blender", "microwave", "dishwasher tablets", "scented candles", "mattress",
                  "bath towels", "coffee machine", "ironing board", "cutlery set", "bookshelf"],
    "electronics": ["laptop", "iphone charger", "headphones", "smart tv", "gaming console", "digital camera",
                    "printer", "usb cable", "tablet computer", "wifi router", "mechanical keyboard",
                    "bluetooth speaker", "phone screen protector", "graphics card", "e-reader"],
    "food": ["pizza", "pasta", "coffee beans", "dark chocolate", "bananas", "olive oil", "breakfast cereal",
             "red wine", "cheddar cheese", "birthday cake", "sushi", "protein powder", "dog food"],
    "vehicles": ["car tyres", "mountain bike", "electric scooter", "car battery", "windscreen wipers",
                 "engine oil", "a used car", "motorbike", "bike pump", "roof rack"],
    "garden and tools": ["lawnmower", "hammer", "cordless drill", "garden hose", "tomato seeds", "plant pot",
                         "screwdriver set", "wall paint", "ladder", "wheelbarrow", "chainsaw"],
    "toys and books": ["lego set", "board game", "a novel", "maths textbook", "teddy bear", "jigsaw puzzle",
                       "cat litter", "aquarium", "printer ink", "guitar strings"],
    "services": ["flight to paris", "hotel room", "car insurance", "tax return form", "a plumber",
                 "how do I fix my car", "weather forecast", "train tickets", "a haircut appointment"],
    "personal care": ["lipstick", "perfume", "deodorant", "nail polish", "mascara", "face wash", "sunscreen",
                      "shampoo", "electric toothbrush", "hair dryer"],
    "sports equipment": ["basketball", "football", "tennis racket", "yoga mat", "dumbbells", "golf clubs",
                         "skis", "surfboard", "treadmill", "camping tent"],
}
OOD_TEMPLATES = ["{x}", "a {x}", "I need a {x}", "do you sell {x}?", "cheap {x}", "{x} under 50",
                 "where can I buy {x}", "looking for {x}"]
NOT_CARRIED = [
    "a wetsuit for surfing", "a tuxedo", "ski boots", "golf shoes", "hiking boots, waterproof",
    "a laptop bag for a 15 inch macbook", "a kilt", "cowboy boots", "football boots", "tap shoes",
    "wellington boots", "crocs", "clogs", "motorcycle leathers", "a lab coat", "a chef jacket", "nurse scrubs",
    "a saree", "a kurta", "a lehenga", "a sherwani", "a nehru jacket", "a tie clip", "a tiara", "a bridal veil",
    "a leotard", "a tutu", "a rash guard",
    "a swim cap", "swimming goggles", "ski pants", "snowboard pants", "a thermal base layer", "compression socks",
    "shin guards", "a golf polo", "running shoes with a carbon plate", "a 13 inch laptop sleeve", "size 48 shoes",
    "a xxxl suit", "waterproof rain boots", "a diamond ring", "a rolex watch", "nike sneakers", "adidas trainers",
    "a gucci belt", "ray-ban sunglasses", "levi's jeans", "a louis vuitton handbag", "a trolley bag",
    "a messenger bag for a laptop", "a wedding suit for men", "a morning suit", "a bow tie for a tuxedo",
    "a cummerbund", "riding boots for horse riding", "a fencing jacket", "a karate gi", "a judo belt",
    "a beekeeping suit", "steel toe work boots", "a hi-vis vest", "a welding apron", "a ski helmet",
    "a bike helmet", "a balaclava for skiing", "snow goggles", "an abaya", "a hijab", "a sombrero",
    "lederhosen", "a dirndl", "a poncho for hiking", "a fur hat with ear flaps", "a maternity swimsuit for surfing",
    "platform crocs", "a mink coat", "snakeskin cowboy boots", "a cashmere tuxedo", "golf gloves",
    "cycling shoes with cleats", "bowling shoes",
]


def _split(text: str) -> str:
    return "held_out" if int(hashlib.sha1(text.encode()).hexdigest(), 16) % 2 else "dev"


def _article_queries(products: list[Product], split: str, rng: random.Random, n: int) -> list[dict]:
    taxonomy = get_taxonomy()
    synonyms: dict[str, list[str]] = {}
    for facet in ("category", "colour", "pattern"):
        for word, value in taxonomy.synonyms[facet].items():
            synonyms.setdefault(f"{facet}:{value}", []).append(word)
    out: list[dict] = []
    for product in rng.sample(products, len(products)):
        if len(out) >= n or product.category == UNKNOWN:
            continue
        category = rng.choice([w for w in synonyms[f"category:{product.category}"] if " " not in w] or
                              [product.category])
        desc = product.description.lower()
        kind = len(out) % 5
        if kind == 0 and product.colour != UNKNOWN:
            text = f"{rng.choice(synonyms[f'colour:{product.colour}'][:2])} {category}"
        elif kind == 1 and (materials := [m for m in MATERIALS if re.search(rf"\b{m}\b", desc)]):
            text = f"{rng.choice(materials)} {category}"
        elif kind == 2 and (features := [f for f in FEATURES if all(w in desc for w in f.split() if w != "a")]):
            text = f"{category} with {rng.choice(features)}"
        elif kind == 3 and product.pattern not in (UNKNOWN, "solid") and product.gender in ("women", "men", "kids"):
            text = f"{rng.choice(synonyms[f'pattern:{product.pattern}'][:3])} {category} for {product.gender}"
        elif kind == 4 and (ptype := str(product.attributes.get("product_type_name", "")).lower()):
            text = ptype.split("/")[0]
        else:
            continue
        out.append({"query": rng.choice(OPENERS) + text, "group": "in_catalog", "source": "catalog", "split": split})
    return out


def build(n_catalog: int = 80) -> list[dict]:
    rng = random.Random(SEED)
    products = [p for p in read_catalog(datasets() / "hm", "hm", CatalogOptions()) if isinstance(p, Product)]
    test_codes = hm_test_product_codes()
    test = [p for p in products if str(p.attributes.get("product_code", "")) in test_codes]
    queries = _article_queries([p for p in products if p not in test], "dev", rng, n_catalog)
    queries += _article_queries(test, "held_out", rng, n_catalog)
    queries += [{"query": q, "group": "in_catalog", "source": "hand", "split": _split(q)} for q in VAGUE_IN]
    for domain, items in OUT_OF_DOMAIN.items():
        for item in items:
            q = rng.choice(OOD_TEMPLATES).format(x=item).replace("a a", "a")
            queries.append({"query": q, "group": "out_of_domain", "domain": domain, "source": "hand",
                            "split": _split(q)})
    queries += [{"query": q, "group": "not_carried", "source": "hand", "split": _split(q)} for q in NOT_CARRIED]
    results = [SearchResult.from_product(p, 0.0, "") for p in products]
    words = [product_stems(p) for p in products]
    for row in queries:
        coverage = cover(request_terms(row["query"]), results, words)
        row["nothing_matches"] = not coverage.complete or row["group"] == "out_of_domain"
        row["unmatched"] = coverage.missing
        if row["group"] == "in_catalog" and row["nothing_matches"]:
            print(f"not in the catalog after all, moved to not_carried: {row['query']!r} (no {coverage.unmatched})")
            row["group"] = "not_carried"
        elif row["group"] == "not_carried" and not row["nothing_matches"]:
            print(f"carried after all, dropped: {row['query']!r}")
            row["drop"] = True
        elif row["group"] == "out_of_domain" and coverage.complete:
            print(f"out of domain, though every word occurs in the catalog: {row['query']!r}")
    return [row for row in queries if not row.pop("drop", False)]


def main() -> None:
    queries = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    header = ("# The honesty benchmark's labelled queries: written by `python -m benchmarks.honesty_set` "
              "(see its docstring).\n# nothing_matches / unmatched: what the full H&M catalog cannot satisfy.\n")
    OUT.write_text(header + yaml.safe_dump({"queries": queries}, sort_keys=False, allow_unicode=True, width=120))
    counts: dict[tuple[str, str], int] = {}
    for row in queries:
        counts[(row["group"], row["split"])] = counts.get((row["group"], row["split"]), 0) + 1
    print(f"wrote {len(queries)} queries to {OUT}: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
