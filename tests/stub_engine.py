"""An engine that takes any options and serves nothing: for testing where a Ray pool puts its actors.

Its ``name`` says the tensor-parallel options it was given (``stub-ray-tp2``), so a pool's
``infos`` show what reached the engine. Import path for pools: ``stub_engine:StubEngine`` (with
``tests/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio

from ponder.engines import TINY_REASONER
from ponder.engines.base import EngineStats


class StubEngine:
    def __init__(self, **options) -> None:
        self.name = f"stub-{options.get('distributed_executor_backend')}-tp{options.get('tensor_parallel_size', 1)}"
        self.model_name, self.tokenizer, self.stats = TINY_REASONER, None, EngineStats()

    async def stream(self, prompt_ids, params, *, request_id=None):
        await asyncio.Event().wait()  # never produces a token; leaving the stream is the only end
        yield  # pragma: no cover

    def unfinished(self) -> int:
        return 0

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
