"""One typed settings object for the whole of Atelier: the bottom layer, importing nothing of the project.

Every knob is an ``ATELIER_*`` environment variable (or a ``.env`` file entry); code asks
``get_settings()`` instead of reading the environment itself, so tests can swap a whole
configuration with ``override_settings``. Importing this module changes nothing: entry points (the CLI,
the API app, the Streamlit app, benchmarks) call ``apply_offline_defaults()`` explicitly.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFFLINE_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
}

PROMPTS_DIR = Path(str(resources.files("atelier.prompts")))
"""Prompts, taxonomy, vocabulary and templates: package data, found the same way in a checkout and a wheel."""


def apply_offline_defaults() -> None:
    """Fail fast instead of retrying a model hub that cannot be reached (a user's own setting wins).

    Called by every entry point, never at import: importing a library must not change the environment.
    """
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def default_datasets() -> Path:
    """``../shared/datasets`` beside the working folder (the layout of a checkout), or ``ATELIER_DATASETS``."""
    return Path.cwd().parent / "shared" / "datasets"


class Settings(BaseSettings):
    """Atelier configuration (env prefix ``ATELIER_``)."""

    model_config = SettingsConfigDict(env_prefix="ATELIER_", env_file=".env", extra="ignore")

    home: Path = Field(Path(".atelier"), description="Folder for the store, sessions DB and caches.")
    store: Path | None = Field(None, description="Chroma persistent folder (default HOME/store).")
    chroma_url: str | None = Field(None, description="http://host:port of a Chroma server; overrides store.")
    server_url: str | None = Field(None, description="http://host:port of a running `atelier serve`: `atelier ask` "
                                                     "sends its turns there when it answers (else runs them "
                                                     "in-process).")
    collection_prefix: str = Field("atelier", description="Prefix of the Chroma collection names.")
    cache: Path | None = Field(None, description="Model and feature cache (default HOME/cache).")
    db: str | None = Field(None, description="Sessions database (memories, turn logs, tokens, rate limits): a SQLite "
                                         "file (default HOME/atelier.db) or a postgresql:// URL that every worker "
                                         "and host shares.")
    uploads: Path | None = Field(None, description="Folder of uploaded photos, shared by every worker "
                                                   "(default HOME/uploads).")
    upload_max_side: int = Field(1024, description="Uploaded photos are downscaled to this longest side before "
                                                   "they are stored.")
    upload_retention_days: float = Field(30.0, description="Stored uploads older than this are deleted.")
    upload_retention_mb: float = Field(512.0, description="Stored uploads beyond this total are deleted, oldest "
                                                          "first.")
    hnsw_ef_search: int = Field(200, description="HNSW search breadth of the store's collections, set when "
                                                 "ingestion opens them (Chroma's 100 returned 94.5% of the exact "
                                                 "top 10 at 1M products; 200: 99.7%).")
    hnsw_m: int = Field(32, description="HNSW graph degree (Chroma's max_neighbors) of collections ingestion "
                                        "creates; existing stores keep theirs. At 1M vectors 32 returned 99.95% of "
                                        "the exact top 10 at ef_search 200, Chroma's 16: 98.3% "
                                        "(`python -m benchmarks hnsw`).")
    turn_workers: int = Field(0, description="Turns run at once per process (0: one per CPU core).")
    global_turn_lock: bool = Field(False, description="Serve one turn at a time per process (the pre-pool "
                                                      "behaviour, kept as the load-test baseline).")
    encoder: str = Field("compact", description="Encoder name: 'compact' or 'open_clip:<model>[:<pretrained>]'.")
    llm: str = Field("none", description="LLM backend: none | local | openai.")
    llm_base_url: str = Field("http://127.0.0.1:11434/v1", description="OpenAI-compatible endpoint.")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the OpenAI-compatible endpoint.")
    llm_api_key: SecretStr = Field(SecretStr("not-needed"),
                                   description="API key for the OpenAI-compatible endpoint (masked when shown).")
    llm_max_tokens: int = 256
    parser: str = Field("rules", description="Turn parser: rules | llm (the LLM fills the TurnIntent as structured "
                                             "output; needs ATELIER_LLM=openai; any error falls back to the rules).")
    datasets: Path = Field(default_factory=default_datasets, description="Folder of the shared datasets.")
    relevance_threshold: float = Field(
        0.285, description="Relevance gate fallback for encoders without a calibration (tools/relevance_gate.json): "
                          "below this best dense similarity (and no keyword match) a search returns nothing rather "
                          "than junk; 0 disables the gate.")
    max_upload_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    rate_limit_per_minute: int = 120
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses whose X-Forwarded-For / X-Forwarded-Proto are believed "
                                          "(the reverse proxy in front); none by default, so a client cannot "
                                          "pick its own rate-limit key.")
    session_token_days: float = Field(30.0, description="A session token expires this many days after its last "
                                                        "use; 0 keeps tokens forever.")
    device: str = "cpu"

    @property
    def store_path(self) -> Path:
        return self.store if self.store is not None else self.home / "store"

    @field_validator("db", mode="before")
    @classmethod
    def _db_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

    @property
    def db_url(self) -> str:
        """The sessions database as given: a SQLite file path or a ``postgresql://`` URL."""
        return self.db if self.db else str(self.home / "atelier.db")

    @property
    def db_path(self) -> Path:
        """The SQLite file of the sessions database (meaningless when ``db`` is a PostgreSQL URL)."""
        return Path(self.db_url)

    @property
    def uploads_dir(self) -> Path:
        return self.uploads if self.uploads is not None else self.home / "uploads"

    @property
    def cache_dir(self) -> Path:
        return self.cache if self.cache is not None else self.home / "cache"


_current: Settings | None = None


def get_settings() -> Settings:
    """The active settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings()
    return _current


def override_settings(**values: object) -> Settings:
    """Replace the active settings with the environment's plus ``values`` (CLI flags, tests)."""
    global _current
    _current = Settings(**values)
    return _current


def reset_settings() -> None:
    """Forget the active settings so the next call re-reads the environment."""
    global _current
    _current = None
