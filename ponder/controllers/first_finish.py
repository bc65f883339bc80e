"""`ffs` / `first_finish`: First Finish Search (arXiv 2505.18149), live, with real aborts.

n samples are launched together (the engine batches them, so they decode at the same pace). The
first sample that finishes *with an extractable answer* wins, and the others are aborted at once:
their tasks are cancelled, which closes their engine streams, which aborts them inside the engine.
That is what saves compute, not only time. ``k > 1`` is FFS-k (majority vote over the first k
answered samples); ``mode="last"`` is LFS-k for contrast (wait for all, vote over the k longest).

    from ponder.controllers import FirstFinish, BudgetForcing
    sol = await FirstFinish(n=8).run(problem, engine, verifier=get_verifier("integer"))
    sol.answer, sol.info["winner"], sol.total_tokens, sol.wasted_tokens
    FirstFinish(n=8, k=3)                                           # FFS-3
    FirstFinish(n=8, sample=BudgetForcing(max_thinking_tokens=512))  # FFS over budget-forced samples

Samples finishing in the same decode step are ordered by length, then launch order. A sample
that ends without an answer never wins; if none answers, ``answer`` is None and
``info["no_answer"]`` is True. ``sequential_tokens`` is what the user waited for: the winner's
length (FFS-k: the longest of the k voters; LFS or no answer: the longest sample).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from ponder.controllers.base import Sampling, check_n, make_context
from ponder.controllers.policy import Plain, SamplePolicy, cancel, check, launch, mark_aborted
from ponder.controllers.vote import vote
from ponder.types import Problem, Solution, Trace

__all__ = ["FirstFinish"]

MODES = ("first", "last")


@dataclass(frozen=True)
class FirstFinish:
    """First (or last) Finish Search over n concurrent samples."""

    n: int = 8
    """Samples launched together (published setting: 8, with temperature 0.6 and top_p 0.95)."""
    k: int = 1
    """How many answered samples are voted over: 1 is plain FFS, k > 1 is FFS-k / LFS-k."""
    mode: Literal["first", "last"] = "first"
    """``first``: the first k to finish win and the rest are aborted; ``last``: every sample runs
    to its end and the k longest answered ones are voted over (LFS-k)."""
    sample: SamplePolicy = Plain()
    """How each sample is generated (e.g. ``BudgetForcing(max_thinking_tokens=512)``)."""
    sampling: Sampling = Sampling()
    """Decoding settings; sample i uses seed + i."""

    name = "ffs"

    def __post_init__(self) -> None:
        check_n("ffs", self.n)
        check(isinstance(self.k, int) and 1 <= self.k <= self.n,
              "k", f"ffs: k must be an integer in 1..n={self.n} (got {self.k!r})")
        check(self.mode in MODES, "mode", f"ffs: mode must be one of {', '.join(MODES)} (got {self.mode!r})")

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        traces, tasks = launch(self.sample, ctx, [self.sampling.params(i) for i in range(self.n)])
        order: list[int] = []  # finishing order
        try:
            pending = set(tasks)
            while pending and not (self.mode == "first" and _answered(traces, order) >= self.k):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                # samples finishing in the same step: the shorter one was faster, then launch order
                for i in sorted((tasks.index(t) for t in done), key=lambda i: (traces[i].tokens, i)):
                    tasks[i].result()  # re-raise an engine error here rather than hide it
                    order.append(i)
        finally:
            aborted = await cancel(tasks)  # abort the losers now, before any bookkeeping
        if aborted:
            # one decode step of the run so far, to know how long an in-flight step may take
            step_s = (time.perf_counter() - start) / max(max(t.tokens for t in traces), 1)
            await mark_aborted(engine, [traces[i] for i in aborted], step_s)
        voters = self._voters(traces, order)
        answer, tally = vote([traces[i].answer for i in voters])
        for i, t in enumerate(traces):
            t.info["won"] = i in voters and t.answer == answer
        winner = next((i for i in voters if traces[i].answer == answer), None) if answer is not None else None
        info = {"winner": winner, "voters": voters, "votes": tally, "finish_order": order,
                "aborted": len(aborted), **({} if answer is not None else {"no_answer": True})}
        # FFS: the user waited for the k-th voter; LFS or too few answers: for every sample (the default)
        full = self.mode == "first" and len(voters) == self.k
        sequential = max(traces[i].sequential for i in voters) if full else None
        return Solution(answer, traces, time.perf_counter() - start, self.name, sequential_tokens=sequential, info=info)

    def _voters(self, traces: list[Trace], order: list[int]) -> list[int]:
        """The samples whose answers are voted over, in tie-break order."""
        answered = [i for i in order if traces[i].answer is not None]
        if self.mode == "first":
            return answered[: self.k]
        return sorted(answered, key=lambda i: (-traces[i].tokens, i))[: self.k]


def _answered(traces: list[Trace], order: list[int]) -> int:
    return sum(traces[i].answer is not None for i in order)
