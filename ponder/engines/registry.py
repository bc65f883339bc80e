"""Engine kinds by name: one line per kind, naming the class that implements it.

The classes are imported only when an engine of that kind is made, so importing this module
(and the controllers above it) loads no torch, vLLM or Ray. Adding an engine kind is its module
plus one line in `ENGINES`; the CLI's ``--engine`` choices are read from here.

    from ponder.engines import open_engine
    engine = await open_engine("vllm", model="Qwen/Qwen3-8B")          # made and started
    engine = await open_engine("hf", ray={"actors": 4, "address": "auto"})  # a Ray pool of hf engines
    engine = make_engine("hf")                                        # made; start() is the caller's
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Mapping

__all__ = ["ENGINES", "POOLS", "engine_class", "make_engine", "open_engine", "single_engine_kinds"]

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


async def open_engine(kind: str = "hf", ray: Mapping[str, Any] | None = None, family: str | None = None,
                      **options: Any) -> Any:
    """Make an engine and await its ``start()``, so that a bad model or server fails here, before
    any request; the one way the CLI, the SDK, eval and serve open engines.

    Args:
        kind: an `ENGINES` kind that serves a model itself (hf, vllm, openai) or ``module:Class``.
        ray: serve ``kind`` engines from a Ray actor pool with these pool options (``actors``,
            ``address``, ``num_gpus``, ...; see `ponder.engines.ray.RayPool`); None: in-process.
        family: the model family (`ponder.prompts.FAMILIES`: thinking delimiters, answer cue) that
            controllers use with this engine, set as ``engine.family``; None: read from its tokenizer.
        options: the engine's own options (``model``, ``base_url``, ``max_model_len``, ...).

    Raises:
        EngineError: the engine could not start (one line: engine, model, cause); anything the
            constructor raises for bad options. A half-started engine is closed first.
    """
    if family is not None:
        from ponder.prompts import check_family

        check_family(family)  # an unknown name fails before a model loads
    engine = make_engine("ray", engine=kind, **dict(ray), **options) if ray else make_engine(kind, **options)
    if not callable(getattr(engine, "start", None)):  # an engine written before start() joined the protocol
        await engine.aclose()
        raise TypeError(f"engine {kind!r} has no start(); the Engine protocol needs `async def start(self)` "
                        f"(return at once when the engine is ready when made)")
    try:
        await engine.start()
    except BaseException:
        with contextlib.suppress(Exception):  # the start's own error is the one to see
            await engine.aclose()
        raise
    if family is not None:
        engine.family = family
    return engine
