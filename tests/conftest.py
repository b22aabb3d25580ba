"""Shared fixtures: a real H&M sample ingested once per encoder version and reused across runs.

The sample is every H&M product whose ``product_code`` is divisible by 6 (all its colour variants
included, so composed-search pairs exist): about 1,100 products / 2,000 articles.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import pytest

from atelier.tools.settings import apply_offline_defaults

apply_offline_defaults()

REPO = Path(__file__).resolve().parent.parent
MODEL_CACHE = REPO / ".atelier" / "cache"
os.environ.setdefault("ATELIER_CACHE", str(MODEL_CACHE))
DATASETS = Path(os.environ.get("ATELIER_DATASETS", REPO.parent / "shared" / "datasets"))
HM = DATASETS / "hm"
FPI = DATASETS / "fashion-product-images-small"


def hm_sample_ids(modulo: int = 6) -> frozenset[str]:
    with (HM / "articles.csv").open(newline="") as handle:
        return frozenset(r["article_id"] for r in csv.DictReader(handle) if int(r["product_code"]) % modulo == 0)


def encoder_version() -> str:
    digest = hashlib.sha1()
    weights = REPO / "tools" / "encoders" / "weights"
    for path in sorted(weights.glob("*")) if weights.is_dir() else []:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def hm_sample() -> frozenset[str]:
    return hm_sample_ids()


@pytest.fixture(scope="session")
def hm_store_settings(tmp_path_factory: pytest.TempPathFactory, hm_sample: frozenset[str]):
    """Settings pointing at a store holding the H&M sample (compact encoder); built once, then reused."""
    from atelier.tools.catalogs import CatalogOptions
    from atelier.tools.ingest import ingest
    from atelier.tools.settings import override_settings

    cache = REPO / ".atelier" / "test-stores" / f"hm-sample-{encoder_version()}"
    home = tmp_path_factory.mktemp("atelier-home")
    settings = override_settings(home=home, store=cache, db=home / "atelier.db", encoder="compact",
                                 datasets=DATASETS)
    from filelock import FileLock

    cache.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache) + ".lock"):
        report = ingest(HM, "hm", options=CatalogOptions(only_ids=hm_sample), settings=settings,
                        progress=False, batch_size=128)
    assert report.store_count == len(hm_sample), report
    return settings


@pytest.fixture()
def hm_settings(hm_store_settings):
    """Activate the H&M sample settings for one test (other tests may have overridden them)."""
    from atelier.tools.settings import override_settings

    return override_settings(**hm_store_settings.model_dump())


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory: pytest.TempPathFactory):
    """URL of a Chroma server on loopback: the one .ci/run started, or one started here for the session."""
    import socket
    import subprocess
    import time
    import urllib.request

    url = os.environ.get("ATELIER_TEST_CHROMA_URL")
    process = None
    if not url:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        path = tmp_path_factory.mktemp("chroma-server")
        chroma = Path(os.sys.executable).parent / "chroma"
        process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port",
                                    str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2).read()
            break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"Chroma server at {url} did not start")
            time.sleep(0.3)
    yield url
    if process is not None:
        process.terminate()
        process.wait(timeout=20)
