"""`budget_forcing` (s1, arXiv 2501.19393): control how long the model thinks.

- Maximum (``max_thinking_tokens``): thinking is generated with at most that many tokens; at the
  cap the shared exit primitive `force_answer` appends the family's end-of-thinking delimiter and
  answer cue, and the answer gets its own ``answer_tokens`` budget.
- Minimum (``extend`` / ``min_thinking_tokens``): when the model closes its thinking early, the
  delimiter is stripped, the family's "Wait" is appended and generation continues.

Generation is a chain of engine calls, each continuing the exact token prefix (prompt + what was
generated + what was injected); thinking calls stop on the end-of-thinking delimiter. The trace's
``token_ids`` are the generated tokens only (a stripped delimiter stays counted: the engine paid
for it); its ``text`` is the continuation as the model saw it, injected strings included.

    from ponder.controllers import BudgetForcing
    sol = await BudgetForcing(max_thinking_tokens=64).run(problem, engine, verifier=verifier)
    sol.traces[0].thinking_tokens <= 64, sol.info["forced"], sol.info["waits"]
    FirstFinish(n=8, sample=BudgetForcing(extend=2))   # also a per-sample policy

Edge cases: a cap of 0 (or one already used up) never sends ``max_tokens <= 0``, it forces the
answer at once; a model that never closes its thinking is cut at the cap; a model that ends its
thinking at once gets its Waits all the same; EOS inside the thinking forces the answer; an answer
that does not parse leaves ``answer`` None (``info["forced"]`` still says the exit was forced).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.controllers.base import Sampling, make_context
from ponder.controllers.policy import check
from ponder.controllers.exit import force_answer
from ponder.controllers.trace import SampleContext, finish_trace, stream_into
from ponder.types import Problem, SamplingParams, Solution, Trace

__all__ = ["BudgetForcing"]


@dataclass(frozen=True)
class BudgetForcing:
    """s1 budget forcing; a controller with one sample, and a per-sample policy for the others."""

    max_thinking_tokens: int | None = None
    """Most generated thinking tokens (None: only the sample's ``max_tokens``); at the cap the
    answer is forced. 0 skips thinking."""
    min_thinking_tokens: int = 0
    """While fewer thinking tokens were generated, an end of thinking is replaced by "Wait"."""
    extend: int = 0
    """Replace the model's end of thinking by "Wait" this many times (s1's "ignore N times")."""
    answer_tokens: int = 64
    """Answer budget after a forced end of thinking (the cue has opened the box; a number and its
    closing need a few tokens). After a natural end, the answer may use the rest of ``max_tokens``,
    and at least this many."""
    sampling: Sampling = Sampling()
    """Decoding settings when run as a controller (as a policy, the outer controller's apply)."""

    name = "budget_forcing"

    def __post_init__(self) -> None:
        cap, least = self.max_thinking_tokens, self.min_thinking_tokens
        check(cap is None or (isinstance(cap, int) and cap >= 0), "max_thinking_tokens",
              f"budget_forcing: max_thinking_tokens must be None or an integer >= 0 (got {cap!r})")
        check(isinstance(least, int) and least >= 0, "min_thinking_tokens",
              f"budget_forcing: min_thinking_tokens must be an integer >= 0 (got {least!r})")
        check(cap is None or least <= cap, "min_thinking_tokens",
              f"budget_forcing: min_thinking_tokens must be <= max_thinking_tokens={cap} (got {least})")
        check(isinstance(self.extend, int) and self.extend >= 0, "extend",
              f"budget_forcing: extend must be an integer >= 0 (got {self.extend!r})")
        check(isinstance(self.answer_tokens, int) and self.answer_tokens >= 1, "answer_tokens",
              f"budget_forcing: answer_tokens must be an integer >= 1 (got {self.answer_tokens!r})")

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        trace = await self.sample(ctx, self.sampling.params(), Trace())
        info = {"waits": trace.info["waits"], "forced": trace.info["forced"]}
        return Solution(trace.answer, [trace], time.perf_counter() - start, self.name, info=info)

    async def sample(self, ctx: SampleContext, params: SamplingParams, trace: Trace) -> Trace:
        run = _Forcing(self, ctx, params, trace)
        try:
            await run.thinking()
        finally:  # also on cancellation (FFS abort): the trace shows what was generated so far
            trace.info.update(waits=run.waits, forced=run.forced)
            finish_trace(ctx, trace, run.text())
            trace.thinking_tokens = run.thinking_tokens()
        return trace


class _Forcing:
    """The state of one budget-forced sample."""

    def __init__(self, policy: BudgetForcing, ctx: SampleContext, params: SamplingParams, trace: Trace) -> None:
        self.policy, self.ctx, self.params, self.trace = policy, ctx, params, trace
        self.cont: list[int] = []  # the continuation the model sees: generated + injected - stripped
        self.live: tuple[list[int], int] | None = None  # (injected ids, trace length) while a call streams
        self.waits, self.forced = 0, False
        self.answer_from: int | None = None  # generated tokens when the answer phase began
        self.closing = 0  # tokens of the model's own closing delimiter (not thinking)

    def text(self) -> str:
        ids = self.cont
        if self.live is not None:  # cancelled mid-call: add what this call had streamed
            injected, mark = self.live
            ids = ids + injected + self.trace.token_ids[mark:]
        return self.ctx.decode(ids)

    def thinking_tokens(self) -> int:
        end = len(self.trace.token_ids) if self.answer_from is None else self.answer_from
        return end - self.closing

    async def call(self, injected: list[int], params: SamplingParams, forced: bool = False) -> list[int]:
        """Inject ``injected`` after the continuation and generate; returns the new token ids."""
        mark = len(self.trace.token_ids)
        self.live = (injected, mark)
        if forced:  # the shared exit primitive appends exactly `injected` (the force suffix)
            await force_answer(self.ctx, self.trace, self.ctx.prompt_ids + self.cont, params.max_tokens, params)
        else:
            await stream_into(self.ctx, self.trace, self.ctx.prompt_ids + self.cont + injected, params)
        new = self.trace.token_ids[mark:]
        self.cont += injected + new
        self.live = None
        return new

    async def thinking(self) -> None:
        ctx, p, params = self.ctx, self.policy, self.params
        fam = ctx.family
        cap = params.max_tokens if p.max_thinking_tokens is None else min(p.max_thinking_tokens, params.max_tokens)
        end_ids = ctx.encode(fam.think_end)
        # stop on the delimiter so the thinking can be measured, extended or cut before the answer
        stop = (dict(stop_token_ids=params.stop_token_ids + (end_ids[0],)) if len(end_ids) == 1
                else dict(stop=params.stop + (fam.think_end,)))
        injected: list[int] = []
        while True:
            used = len(self.trace.token_ids)
            if cap - used <= 0:  # never ask the engine for max_tokens <= 0: force the answer
                return await self.force()
            new = await self.call(injected, params.replace(max_tokens=cap - used, **stop))
            injected = []
            reason = self.trace.finish_reason
            if reason == "abort":
                return
            closed = reason == "stop" and fam.think_end in ctx.decode(new)
            if not closed:  # the cap (length), or EOS inside the thinking: force the answer
                last = self.cont[-1:]
                if reason == "stop" and last and not ctx.engine.tokenizer.decode(last, skip_special_tokens=True):
                    self.cont.pop()  # an EOS-like special token: the answer must not follow it
                return await self.force()
            self.closing = self._closing(len(new))
            thought = len(self.trace.token_ids) - self.closing
            wants_more = self.waits < p.extend or thought < p.min_thinking_tokens
            if wants_more and len(self.trace.token_ids) < cap:
                # s1: suppress the end of thinking (strip the delimiter) and append "Wait"
                del self.cont[len(self.cont) - self.closing:]
                injected, self.closing = ctx.encode(fam.wait), 0
                self.waits += 1
                self.trace.info.setdefault("injected", []).append(fam.wait)
                continue
            # the model ended its thinking itself (or no budget is left to extend it): answer
            return await self.answer(max(params.max_tokens - len(self.trace.token_ids), p.answer_tokens))

    def _closing(self, new_count: int) -> int:
        """How many of the last ``new_count`` generated tokens form the end-of-thinking delimiter."""
        delim, tail = self.ctx.family.think_end, self.cont[len(self.cont) - new_count:]
        kept = len(tail)
        while kept > 0 and delim in self.ctx.decode(tail[:kept]):
            kept -= 1
        return len(tail) - kept

    async def force(self) -> None:
        self.forced = True
        self.answer_from = len(self.trace.token_ids)
        suffix = self.ctx.encode(self.ctx.family.force_suffix())
        await self.call(suffix, self.params.replace(max_tokens=self.policy.answer_tokens), forced=True)

    async def answer(self, budget: int) -> None:
        self.answer_from = len(self.trace.token_ids)
        await self.call([], self.params.replace(max_tokens=budget))
