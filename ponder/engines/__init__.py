"""Token sources behind one protocol (`Engine`): transformers, vLLM in-process, OpenAI-compatible HTTP,
and a Ray actor pool of any of them.

`open_engine(kind, ray=None, **options)` makes one and awaits its ``start()``; heavy libraries
(torch, vllm, ray) are imported only when an engine of that kind is made, so controllers import in
milliseconds.

    from ponder.engines import open_engine
    engine = await open_engine("hf")                          # embedded tiny reasoner, CPU
    engine = await open_engine("vllm", model="Qwen/Qwen3-8B")
    engine = await open_engine("openai", base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen3-8B")
    engine = await open_engine("hf", ray={"actors": 2})       # a pool of Ray actors, each with an hf engine
"""

from __future__ import annotations

from ponder.engines.base import Completion, Engine, EngineError, EngineStats, complete
from ponder.engines.models import TINY_REASONER, TINY_REASONER_HARMLESS, TINY_REASONER_VERBOSE, resolve_model
from ponder.engines.registry import ENGINES, make_engine, open_engine

__all__ = ["Engine", "EngineError", "EngineStats", "Completion", "complete", "make_engine", "open_engine",
           "resolve_model", "ENGINES", "TINY_REASONER", "TINY_REASONER_VERBOSE", "TINY_REASONER_HARMLESS"]
