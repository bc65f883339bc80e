"""`majority` (self-consistency): draw n samples at once, vote over their extracted answers.

    from ponder.controllers import Majority
    sol = await Majority(n=8).run(problem, engine, verifier=get_verifier("integer"))
    sol.answer, sol.info["votes"]

Ties go to the answer of the earliest-launched sample among the tied ones. With
``weight="logprob"`` each vote counts the sample's geometric-mean token probability
(exp of the mean token log-probability), so confident samples weigh more.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from ponder.controllers.base import Sampling, check_n, make_context
from ponder.controllers.policy import Plain, SamplePolicy, check, run_all
from ponder.controllers.vote import vote
from ponder.types import Problem, Solution, Trace

__all__ = ["Majority"]

WEIGHTS = ("count", "logprob")


@dataclass(frozen=True)
class Majority:
    """Self-consistency: n concurrent samples, majority vote."""

    n: int = 8
    """Number of samples, all decoded together."""
    weight: Literal["count", "logprob"] = "count"
    """``count``: one vote per sample; ``logprob``: exp(mean token log-prob) per sample."""
    sample: SamplePolicy = Plain()
    """How each sample is generated (e.g. ``BudgetForcing(max_thinking_tokens=512)``)."""
    sampling: Sampling = Sampling()
    """Decoding settings; sample i uses seed + i."""

    name = "majority"

    def __post_init__(self) -> None:
        check_n("majority", self.n)
        check(self.weight in WEIGHTS, "weight",
              f"majority: weight must be one of {', '.join(WEIGHTS)} (got {self.weight!r})")

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        extra = {"logprobs": 0} if self.weight == "logprob" else {}
        traces = await run_all(self.sample, ctx, [self.sampling.params(i, **extra) for i in range(self.n)])
        weights = [_weight(t, self.weight) for t in traces]
        answer, tally = vote([t.answer for t in traces], weights)
        for t, w in zip(traces, weights):
            t.info["won"] = answer is not None and t.answer == answer
            if self.weight == "logprob":
                t.info["weight"] = round(w, 6)
        winner = next((i for i, t in enumerate(traces) if t.info["won"]), None)
        info = {"votes": tally, "winner": winner, **({} if answer is not None else {"no_answer": True})}
        return Solution(answer, traces, time.perf_counter() - start, self.name, info=info)


def _weight(trace: Trace, kind: str) -> float:
    if kind == "count":
        return 1.0
    lps = trace.logprobs or []
    return math.exp(sum(lps) / len(lps)) if lps else 0.0
