"""Per-sample policies, and running many samples at once with real aborts.

A sampling controller (majority, first_finish, deepconf) decides *which* samples to draw, keep or
abort; a `SamplePolicy` decides *how one sample is generated*. `Plain` streams one completion;
`BudgetForcing` (budget_forcing.py) steers the thinking length. Any controller with a ``sample``
option takes any policy, so FFS over budget-forced samples is one line:

    from ponder.controllers import FirstFinish, BudgetForcing
    ctrl = FirstFinish(n=8, sample=BudgetForcing(max_thinking_tokens=512))

A policy fills the `Trace` it is given *in place*, so a sample whose task is cancelled keeps what
it generated (its tokens still count in ``total_tokens``). Cancelling the task closes its engine
stream, which aborts the request inside the engine.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from ponder.controllers.trace import SampleContext, finish_trace, stream_into, wasted_after_abort
from ponder.types import OptionError, SamplingParams, Trace

__all__ = ["SamplePolicy", "Plain", "launch", "run_all", "cancel", "settle", "mark_aborted", "check"]


@runtime_checkable
class SamplePolicy(Protocol):
    """How one sample is generated."""

    name: str

    async def sample(self, ctx: SampleContext, params: SamplingParams, trace: Trace) -> Trace:
        """Generate one sample into ``trace`` (filled in place, text set even when cancelled); return it."""
        ...


@dataclass(frozen=True)
class Plain:
    """One completion from the prompt to EOS or ``max_tokens``, nothing injected."""

    name = "plain"

    async def sample(self, ctx: SampleContext, params: SamplingParams, trace: Trace) -> Trace:
        try:
            await stream_into(ctx, trace, ctx.prompt_ids, params)
        finally:  # also on cancellation: an aborted sample still shows what it had written
            finish_trace(ctx, trace, ctx.decode(trace.token_ids))
        return trace


def check(ok: bool, option: str, message: str) -> None:
    """Raise the one-line `OptionError` about ``option`` that the CLI and serve say for a bad value."""
    if not ok:
        raise OptionError(option, message)


def launch(
    policy: SamplePolicy, ctx: SampleContext, params: Sequence[SamplingParams]
) -> tuple[list[Trace], list[asyncio.Task]]:
    """Start one task per sample now, so the engine batches them; traces fill as tokens arrive."""
    traces = [Trace() for _ in params]
    tasks = [asyncio.create_task(policy.sample(ctx, p, t)) for p, t in zip(params, traces)]
    return traces, tasks


async def cancel(tasks: Sequence[asyncio.Task]) -> list[int]:
    """Cancel the unfinished tasks and wait until their streams are closed (= aborted in the engine).

    Returns the indices of the tasks that were cancelled.
    """
    stopped = [i for i, t in enumerate(tasks) if not t.done()]
    for i in stopped:
        tasks[i].cancel()
    await asyncio.gather(*(tasks[i] for i in stopped), return_exceptions=True)
    for t in tasks:  # the caller re-raises the first failure; the others (one dead engine fails every
        if not t.cancelled():  # sample) would be logged as "Task exception was never retrieved"
            t.exception()
    return stopped


async def run_all(policy: SamplePolicy, ctx: SampleContext, params: Sequence[SamplingParams]) -> list[Trace]:
    """Run every sample to its end, concurrently; if one fails, abort the others and re-raise."""
    traces, tasks = launch(policy, ctx, params)
    try:
        await asyncio.gather(*tasks)
    finally:
        await cancel(tasks)
    return traces


async def settle(engine: Any, traces: Sequence[Trace], step_s: float, max_s: float = 0.5) -> None:
    """Wait until the engine has stopped decoding for ``traces`` after their abort.

    An abort takes effect at the engine's next step; the step already in flight may still count
    one token per aborted request. An engine may offer ``async settle()`` to say exactly when
    that happened; otherwise wait until the engine's own counts for these requests have been
    still for 1.5 decode steps (``step_s``, measured by the caller), at most ``max_s`` seconds.
    """
    if hasattr(engine, "settle"):
        await engine.settle()
        return
    rids = [rid for t in traces for rid in t.info.get("request_ids", [])]
    counts = engine.stats.per_request
    quiet = min(max(1.5 * step_s, 0.01), max_s)
    last, still_since, deadline = None, time.perf_counter(), time.perf_counter() + max_s
    while time.perf_counter() < deadline:
        now = [counts.get(r, 0) for r in rids]
        if now != last:
            last, still_since = now, time.perf_counter()
        elif time.perf_counter() - still_since >= quiet:
            return
        await asyncio.sleep(min(0.005, quiet / 2))


async def mark_aborted(engine: Any, traces: Sequence[Trace], step_s: float) -> None:
    """Flag ``traces`` as aborted and, once the aborts took effect, record their wasted tokens.

    An aborted sample has no answer, even if it was cut inside one (a partial number is not one).
    """
    for t in traces:
        t.aborted, t.finish_reason, t.answer = True, "abort", None
    await settle(engine, traces, step_s)
    for t in traces:
        t.wasted_tokens = wasted_after_abort(engine, t)
