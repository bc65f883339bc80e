"""Token sources behind one protocol (`Engine`): transformers, vLLM in-process, OpenAI-compatible HTTP,
and a Ray actor pool of any of them.

`make_engine("hf" | "vllm" | "openai", model=...)` builds one; heavy libraries (torch, vllm)
are imported only when an engine of that kind is made, so controllers import in milliseconds.

    from ponder.engines import make_engine
    engine = make_engine("hf")                          # embedded tiny reasoner, CPU
    engine = make_engine("vllm", model="Qwen/Qwen3-8B")
    engine = make_engine("openai", base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen3-8B")
    engine = make_engine("ray", engine="hf", actors=2)  # a pool of Ray actors, each with an hf engine
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ponder.engines.base import Completion, Engine, EngineStats, complete

__all__ = ["Engine", "EngineStats", "Completion", "complete", "make_engine", "resolve_model", "ENGINES", "TINY_REASONER"]

TINY_REASONER = str(Path(__file__).resolve().parents[1] / "assets" / "tiny-reasoner")
"""Path of the embedded tiny reasoner (the default model everywhere)."""


def resolve_model(model: str | None) -> str:
    """The default model when none is given; a clear error for a missing local path."""
    if model is None or model in ("tiny", "tiny-reasoner"):
        return TINY_REASONER
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not (path / "config.json").exists():
        raise FileNotFoundError(f"model directory {model!r} has no config.json (expected a Hugging Face model folder)")
    return str(path) if looks_local else model


def _hf(**kw: Any) -> Engine:
    from ponder.engines.hf import HFEngine

    return HFEngine(**kw)


def _vllm(**kw: Any) -> Engine:
    from ponder.engines.vllm import VLLMEngine

    return VLLMEngine(**kw)


def _openai(**kw: Any) -> Engine:
    from ponder.engines.openai import OpenAIEngine

    return OpenAIEngine(**kw)


def _ray(**kw: Any) -> Engine:
    from ponder.engines.ray import RayPool

    return RayPool(**kw)


ENGINES: dict[str, Callable[..., Engine]] = {"hf": _hf, "vllm": _vllm, "openai": _openai, "ray": _ray}


def make_engine(kind: str = "hf", **kwargs: Any) -> Engine:
    """Build an engine by name; options go to its constructor."""
    if kind not in ENGINES:
        raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[kind](**kwargs)
