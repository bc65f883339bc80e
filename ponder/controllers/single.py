"""`single`: one sample, its answer is the answer.

    Single()                                              # one plain sample
    Single(sample=BudgetForcing(max_thinking_tokens=64))  # one budget-forced sample
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ponder.controllers.base import Sampling, make_context
from ponder.controllers.policy import Plain, SamplePolicy
from ponder.types import Problem, Solution, Trace

__all__ = ["Single"]


@dataclass(frozen=True)
class Single:
    """Draw one sample."""

    sampling: Sampling = Sampling()
    """How the sample is decoded."""
    sample: SamplePolicy = field(default_factory=Plain)
    """How the sample is generated (plain, or budget-forced)."""

    name = "single"

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        trace = await self.sample.sample(ctx, self.sampling.params(), Trace())
        return Solution(trace.answer, [trace], time.perf_counter() - start, self.name)
