"""`deepconf`: DeepConf online (Fu et al. 2025, "Deep Think with Confidence", arXiv 2508.15260).

Token confidence is the negative mean log-probability of the top-k candidates (high = the model
was sure); a trace's group confidence is the mean over a sliding window of tokens. Warm-up traces
run to the end; the threshold is a percentile of their *lowest* group confidence. The remaining
traces are then launched together and each is aborted in the engine as soon as a full window's
mean drops below the threshold. The answer is a vote weighted by each trace's lowest group
confidence, over every trace (warm-up included) whose lowest group confidence reaches the
threshold -- the rule of the authors' `deepconf-online.py`.

    from ponder.controllers import DeepConf
    sol = await DeepConf(n=8, warmup=4).run(problem, engine, verifier=get_verifier("integer"))
    sol.info["threshold"], sol.info["stopped"], sol.info["votes"]

Published setting: 16 warm-up traces of a 512-trace budget, window 2048, top-20 logprobs,
percentile 90 ("DeepConf-low": keep the top 10%) or 10 ("DeepConf-high"). Defaults here are
scaled for the tiny reasoner's ~100-token traces: 4 warm-up of 8, window 32. The paper's adaptive
sampling (stop launching traces once the vote is settled) is not implemented: all n launch.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from ponder.controllers.base import Sampling, check_n, make_context
from ponder.controllers.policy import Plain, SamplePolicy, check, mark_aborted, run_all
from ponder.controllers.trace import SampleContext
from ponder.controllers.vote import vote
from ponder.types import Chunk, Problem, SamplingParams, Solution, Trace

__all__ = ["DeepConf", "percentile"]


@dataclass(frozen=True)
class DeepConf:
    """Online confidence-filtered, confidence-weighted voting with early stopping."""

    n: int = 8
    """Total traces, warm-up included."""
    warmup: int = 4
    """Traces run to the end first to set the threshold (paper: 16)."""
    window: int = 32
    """Tokens per sliding window of group confidence (paper: 2048)."""
    top_k: int = 20
    """Candidates per token in the token confidence (paper: 20; vLLM serves at most 20)."""
    percentile: float = 90.0
    """Threshold = this percentile of the warm-up traces' lowest group confidence: 90 keeps about
    the top 10% (DeepConf-low), 10 about the top 90% (DeepConf-high)."""
    sample: SamplePolicy = Plain()
    """How each trace is generated (e.g. ``BudgetForcing(max_thinking_tokens=512)``)."""
    sampling: Sampling = Sampling()
    """Decoding settings; trace i uses seed + i."""

    name = "deepconf"

    def __post_init__(self) -> None:
        check_n("deepconf", self.n)
        check(isinstance(self.warmup, int) and 1 <= self.warmup <= self.n,
              "warmup", f"deepconf: warmup must be an integer in 1..n={self.n} (got {self.warmup!r})")
        check(isinstance(self.window, int) and self.window >= 1,
              "window", f"deepconf: window must be an integer >= 1 (got {self.window!r})")
        check(isinstance(self.top_k, int) and self.top_k >= 1,
              "top_k", f"deepconf: top_k must be an integer >= 1 (got {self.top_k!r})")
        check(isinstance(self.percentile, (int, float)) and 0 <= self.percentile <= 100,
              "percentile", f"deepconf: percentile must be a number in 0..100 (got {self.percentile!r})")

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        watch = _Watch(self.window)
        ctx.on_chunk = watch.on_chunk
        params = [self.sampling.params(i, logprobs=self.top_k) for i in range(self.n)]
        warm = await run_all(self.sample, ctx, params[: self.warmup])
        watch.threshold = threshold = percentile([watch.lowest(t) for t in warm], self.percentile)
        rest = await run_all(_Guarded(self.sample), ctx, params[self.warmup:])
        traces = warm + rest
        stopped = [t for t in rest if t.info.get("low_confidence")]
        if stopped:
            steps = max(t.tokens for t in warm) + max(t.tokens for t in rest)
            step_s = (time.perf_counter() - start) / max(steps, 1)
            await mark_aborted(engine, stopped, step_s)
        for i, t in enumerate(traces):
            t.info.update(warmup=i < self.warmup, confidence=round(watch.lowest(t), 4))
        keep = [i for i, t in enumerate(traces) if t.answer is not None and watch.lowest(t) >= threshold]
        fallback = not keep  # nobody passed with an answer: weigh every answered trace instead
        if fallback:
            keep = [i for i, t in enumerate(traces) if t.answer is not None]
        answer, tally = vote([traces[i].answer for i in keep], [watch.lowest(traces[i]) for i in keep])
        for i, t in enumerate(traces):
            t.info["won"] = i in keep and t.answer == answer
        info = {"threshold": round(threshold, 4), "stopped": len(stopped), "voters": keep,
                "votes": {a: round(w, 4) for a, w in tally.items()},
                "winner": next((i for i in keep if traces[i].answer == answer), None) if answer is not None else None,
                **({"fallback": True} if fallback and keep else {}), **({} if answer is not None else {"no_answer": True})}
        # the warm-up ran before the rest, one after the other
        sequential = max(t.sequential for t in warm) + max((t.sequential for t in rest), default=0)
        return Solution(answer, traces, time.perf_counter() - start, self.name, sequential_tokens=sequential, info=info)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile with linear interpolation (numpy's default method)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class _LowConfidence(Exception):
    """Raised from inside a trace's stream: leaving the stream aborts the request in the engine."""


@dataclass
class _Conf:
    window: deque = field(default_factory=deque)
    total: int = 0  # sum over the window (micro-units)
    count: int = 0  # tokens seen
    grand: int = 0  # sum over all tokens (the group confidence of a trace shorter than a window)
    lowest: float = math.inf  # lowest full-window mean


class _Watch:
    """Per-trace sliding-window confidence, fed by `stream_into` through ``ctx.on_chunk``."""

    def __init__(self, window: int) -> None:
        self.size, self.threshold = window, None
        self.state: dict[int, _Conf] = {}

    def on_chunk(self, trace: Trace, chunk: Chunk) -> None:
        c = self.state.setdefault(id(trace), _Conf())
        tops = chunk.top_logprobs or [None] * len(chunk.token_ids)
        lps = chunk.logprobs or [0.0] * len(chunk.token_ids)
        for top, lp in zip(tops, lps):
            # integer micro-units: exact running sums, so equal windows score exactly equal
            conf = round(1e6 * (-sum(top.values()) / len(top) if top else -lp))
            c.window.append(conf)
            c.total += conf
            c.grand += conf
            c.count += 1
            if len(c.window) > self.size:
                c.total -= c.window.popleft()
            if len(c.window) == self.size:
                mean = c.total / self.size / 1e6
                c.lowest = min(c.lowest, mean)
                # a trace that has just finished is not aborted; its low score keeps it out of the vote
                if self.threshold is not None and mean < self.threshold and not chunk.finish_reason:
                    trace.info["low_confidence"] = True
                    raise _LowConfidence

    def lowest(self, trace: Trace) -> float:
        """The trace's lowest group confidence (its mean confidence when shorter than a window)."""
        c = self.state.get(id(trace))
        if c is None or c.count == 0:
            return 0.0
        return c.lowest if c.count >= self.size else c.grand / c.count / 1e6


@dataclass(frozen=True)
class _Guarded:
    """A policy whose samples end quietly when their confidence drops (the rest keep running)."""

    inner: SamplePolicy
    name = "guarded"

    async def sample(self, ctx: SampleContext, params: SamplingParams, trace: Trace) -> Trace:
        try:
            return await self.inner.sample(ctx, params, trace)
        except _LowConfidence:
            return trace
