"""`single`: one sample, its answer is the answer."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.controllers.base import Sampling, make_context
from ponder.controllers.sample import run_sample
from ponder.types import Problem, Solution

__all__ = ["Single"]


@dataclass(frozen=True)
class Single:
    """Draw one sample."""

    sampling: Sampling = Sampling()
    """How the sample is decoded."""

    name = "single"

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        trace = await run_sample(ctx, self.sampling.params())
        return Solution(trace.answer, [trace], time.perf_counter() - start, self.name)
