"""Liveness and readiness: is the process up, and can it serve a shopper right now?

``/healthz`` (liveness) only says the process answers, so an orchestrator does not restart a server
whose store is merely being rebuilt. ``/readyz`` (readiness) checks what a turn needs: the product store
(it exists, holds products, and its encoder loads) and the sessions database (a real committed write, so
a read-only folder or a full disk shows up here before shoppers see it). Reasons name the setting to fix,
never a server path.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Column, Float, Integer, Table

from atelier.memory.database import METADATA, database_problem
from atelier.tools.settings import Settings

log = logging.getLogger("atelier.api")

HEALTH = Table("ui_health", METADATA, Column("id", Integer, primary_key=True),
               Column("checked_at", Float, nullable=False))


class Check(BaseModel):
    ok: bool
    detail: str = ""


class StoreCheck(Check):
    products: int = 0
    encoder: str = ""


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    store: StoreCheck
    database: Check


def check_database(settings: Settings) -> Check:
    """One committed write to the sessions database (a one-row table), or why it failed."""
    from atelier.memory.database import Database

    try:
        database = Database(settings.db_url)
        database.ensure([HEALTH])
        with database.engine.begin() as conn:
            conn.execute(HEALTH.delete())
            conn.execute(HEALTH.insert().values(id=1, checked_at=time.time()))
    except Exception as exc:  # noqa: BLE001 - a readiness probe reports every failure instead of raising
        log.warning("readiness: sessions database failed: %s", exc)
        return Check(ok=False, detail=f"{database_problem(exc) or 'the sessions database failed'} (ATELIER_DB)")
    return Check(ok=True)


def check_store(settings: Settings, store: Any | None = None) -> StoreCheck:
    """The product store opens with the configured encoder and holds products."""
    from atelier.tools.encoders import EncoderError

    try:
        if store is None:
            from atelier.tools.store import open_store

            store = open_store(settings)
        if not settings.chroma_url and not (settings.store_path / "chroma.sqlite3").is_file():
            return StoreCheck(ok=False, detail="the product store is gone (ATELIER_STORE)")
        count = store.count()
    except Exception as exc:  # noqa: BLE001 - a readiness probe reports every failure instead of raising
        log.warning("readiness: product store failed: %s", exc)
        detail = ("the encoder cannot be loaded (ATELIER_ENCODER)" if isinstance(exc, EncoderError)
                  else "the product store cannot be opened (ATELIER_STORE / ATELIER_CHROMA_URL)")
        return StoreCheck(ok=False, detail=detail)
    if count == 0:
        return StoreCheck(ok=False, detail="the product store holds no products; run `atelier ingest`",
                          encoder=store.encoder_name)
    return StoreCheck(ok=True, products=count, encoder=store.encoder_name)


def readiness(settings: Settings, store: Any | None = None) -> Readiness:
    store_check, database = check_store(settings, store), check_database(settings)
    ok = store_check.ok and database.ok
    return Readiness(status="ready" if ok else "unavailable", store=store_check, database=database)


def startup_problems(settings: Settings) -> list[str]:
    """What stops ``atelier serve`` from starting, worded for the operator (paths and settings included).

    Serving never creates a store: only ``atelier ingest`` does, so a typo in ``ATELIER_STORE`` fails here
    instead of answering every shopper "nothing matches" from a new empty store.
    """
    from atelier.tools.store import open_store

    problems = []
    try:
        count = open_store(settings).count()
        if count == 0:
            problems.append(f"the product store at ATELIER_STORE={settings.store_path} holds no products; "
                            "run `atelier ingest CATALOG` first")
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line for the operator
        problems.append(str(exc))
    database = check_database(settings)
    if not database.ok:
        problems.append(f"{database.detail.removesuffix(' (ATELIER_DB)')} (ATELIER_DB={settings.db_path})")
    return problems
