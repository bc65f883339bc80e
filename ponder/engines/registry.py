"""Engine kinds by name: one line per kind, naming the class that implements it.

The classes are imported only when an engine of that kind is made, so importing this module
(and the controllers above it) loads no torch, vLLM or Ray. Adding an engine kind is its module
plus one line in `ENGINES`; the CLI's ``--engine`` choices are read from here.

    from ponder.engines.registry import make_engine
    engine = make_engine("hf")
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ENGINES", "POOLS", "engine_class", "make_engine", "single_engine_kinds"]

ENGINES: dict[str, str] = {
    "hf": "ponder.engines.hf:HFEngine",
    "vllm": "ponder.engines.vllm:VLLMEngine",
    "openai": "ponder.engines.openai:OpenAIEngine",
    "ray": "ponder.engines.ray:RayPool",
}
"""Engine kind -> ``module:Class`` of its implementation."""

POOLS = frozenset({"ray"})
"""Kinds that hold other engines (chosen on the CLI with ``--ray``, not ``--engine``)."""


def single_engine_kinds() -> tuple[str, ...]:
    """The kinds that serve a model themselves (``--engine`` choices, and what a pool can hold)."""
    return tuple(k for k in ENGINES if k not in POOLS)


def engine_class(kind: str) -> type:
    """The class registered for ``kind`` (imported now); ``package.module:Class`` names any other
    class implementing the protocol (e.g. in a Ray pool: ``make_engine("ray", engine="my.mod:Engine")``)."""
    target = ENGINES.get(kind) or (kind if ":" in kind else None)
    if target is None:
        raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def make_engine(kind: str = "hf", **kwargs: Any) -> Any:
    """Build an engine by name; options go to its constructor."""
    return engine_class(kind)(**kwargs)
