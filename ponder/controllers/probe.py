"""`probe`: training-free early exit. Peek at the answer while the sample thinks; stop once it has settled.

While a sample decodes, probes fork its exact prefix, force the end of thinking and the answer cue
(the shared exit primitive `force_answer`) and read the trial answer (the verifier's ``extract``)
and its confidence (mean token probability of the answer tokens). Two stopping rules:

- ``rule="consistent"`` (Dynasor-CoT, arXiv 2412.20993): a probe every ``interval`` thinking
  tokens; stop after ``window`` consecutive probes gave the same answer (a probe that hesitates,
  i.e. writes a transition word such as "wait", breaks the run, as in Dynasor's certainty check).
- ``rule="confidence"`` (DEER, arXiv 2504.15895): a probe at each reasoning transition (the text
  reaches a transition word such as "Wait"; the probe's prefix stops before the word); stop when a
  trial answer's mean token probability is >= ``threshold``.

Probes run concurrently with the sample's own decoding (the engine batches them); the sample is
never paused. Once the rule holds, the sample's stream and every probe still running are
cancelled, which aborts them in the engine (like FFS losers), and the deciding probe's answer is
the sample's answer: no extra call. A sample whose thinking ends first keeps its own answer.

Token accounting: probes are part of the sample, so the `Trace`'s ``token_ids`` are the sample's
own tokens followed by every probe's tokens (``total_tokens`` counts them all); its ``text`` is
what the model saw for the answer (prefix + injected cue + the deciding probe's answer);
``info["sequential_tokens"]`` is the sample's own decode steps (probes ran beside them), which
``Trace.sequential`` and thus ``Solution.sequential`` report. ``info["probes"]`` records each
probe: ``at`` (thinking tokens of its prefix), ``answer``, ``confidence``, ``tokens``, ``state``
(done, hesitant, cancelled, or the error its request met); ``info["stop"]`` says why the sample
stopped: consistent, confident, natural (its thinking ended first), or aborted (by an outer
controller).

    from ponder.controllers import Probe, FirstFinish, Majority
    sol = await Probe(rule="confidence").run(problem, engine, verifier=get_verifier("integer"))
    sol.traces[0].info["probes"], sol.traces[0].info["stop"], sol.total_tokens
    FirstFinish(n=8, sample=Probe(interval=16))         # FFS over probed samples
    ponder solve "Compute 035+004" -c probe -o rule=confidence
    ponder eval -c ffs -n 8 -o sample=probe -o rule=consistent --sweep interval=8,16,32 --limit 50

Published settings and what is scaled for the tiny reasoner (~100-token traces, 1-token answers of
2-4 characters): DEER's threshold 0.95 and 20-token trial-answer budget are kept; Dynasor's
64-token interval and window of 3 ("mid" effort) are scaled to an interval of 16 and a window of 2
(64 tokens is most of a tiny trace, leaving no room for 3 probes). Probes decode greedily (DEER's
default; the confidence is then the mean probability of the most likely token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ponder.controllers.base import Sampling, make_context
from ponder.controllers.exit import force_answer
from ponder.controllers.policy import cancel, check, settle
from ponder.controllers.trace import SampleContext, finish_trace, stream_into, thinking_tokens, wasted_after_abort
from ponder.types import Chunk, Problem, SamplingParams, Solution, Trace

__all__ = ["Probe", "answer_confidence"]

RULES = ("consistent", "confidence")


@dataclass(frozen=True)
class Probe:
    """Probe a thinking sample and exit once its answer settles; a controller and a per-sample policy."""

    rule: Literal["consistent", "confidence"] = "confidence"
    """``consistent``: every ``interval`` tokens, stop after ``window`` equal trial answers
    (Dynasor-CoT); ``confidence``: at transition words, stop at a trial answer whose confidence is
    >= ``threshold`` (DEER)."""
    interval: int = 16
    """``consistent``: thinking tokens between probes (Dynasor: 64; scaled to the tiny reasoner)."""
    window: int = 2
    """``consistent``: equal trial answers in a row needed to stop (Dynasor "mid": 3; scaled)."""
    threshold: float = 0.95
    """``confidence``: least mean token probability of a trial answer to stop (DEER: 0.95)."""
    transitions: tuple[str, ...] = ()
    """Words that mark a reasoning transition (``confidence`` probes there; a ``consistent``
    probe that writes one hesitates); empty: the model family's "Wait" word."""
    answer_tokens: int = 20
    """Most tokens a probe may generate for its trial answer (DEER and Dynasor: 20)."""
    sampling: Sampling = Sampling()
    """Decoding settings when run as a controller (as a policy, the outer controller's apply)."""

    name = "probe"

    def __post_init__(self) -> None:
        if isinstance(self.transitions, str):  # -o transitions=Wait from the command line
            object.__setattr__(self, "transitions", (self.transitions,))
        check(isinstance(self.transitions, (list, tuple)), "transitions",
              f"probe: transitions must be a word or a list of words (got {self.transitions!r})")
        object.__setattr__(self, "transitions", tuple(self.transitions))
        check(self.rule in RULES, "rule", f"probe: rule must be one of {', '.join(RULES)} (got {self.rule!r})")
        check(isinstance(self.interval, int) and self.interval >= 1,
              "interval", f"probe: interval must be an integer >= 1 (got {self.interval!r})")
        check(isinstance(self.window, int) and self.window >= 1,
              "window", f"probe: window must be an integer >= 1 (got {self.window!r})")
        check(isinstance(self.threshold, (int, float)) and 0 < self.threshold <= 1,
              "threshold", f"probe: threshold must be a number in (0, 1] (got {self.threshold!r})")
        check(all(isinstance(w, str) and w.strip() for w in self.transitions),
              "transitions", f"probe: transitions must be non-empty words (got {self.transitions!r})")
        check(isinstance(self.answer_tokens, int) and self.answer_tokens >= 1,
              "answer_tokens", f"probe: answer_tokens must be an integer >= 1 (got {self.answer_tokens!r})")

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        trace = await self.sample(ctx, self.sampling.params(), Trace())
        info = {k: trace.info[k] for k in ("stop", "exit_at", "probe_tokens") if k in trace.info}
        info["probes"] = len(trace.info["probes"])
        return Solution(trace.answer, [trace], time.perf_counter() - start, self.name,
                        sequential_tokens=trace.sequential, info=info)

    async def sample(self, ctx: SampleContext, params: SamplingParams, trace: Trace) -> Trace:
        run = _Probing(self, ctx, params, trace)
        try:
            await run.think()
        finally:  # also on cancellation (an FFS loser): the trace shows everything generated so far
            await run.stop_all()
            run.fill()
        return trace


def answer_confidence(ctx: SampleContext, ids: list[int], logprobs: list[float] | None) -> float | None:
    """Mean token probability of the answer in a forced answer's tokens (None: no answer tokens).

    The answer tokens are those before the box opened by the family's cue closes (or, for a cue
    without a brace, before the first line break or special token).
    """
    if not logprobs:
        return None
    cue = ctx.family.answer_cue
    depth = cue.count("{") - cue.count("}")
    boxed = depth > 0
    probs: list[float] = []
    for token, lp in zip(ids, logprobs):
        piece = ctx.engine.tokenizer.decode([token], skip_special_tokens=True)
        if not piece:  # EOS or another special token
            break
        kept, closed = "", False
        for ch in piece:
            depth += (ch == "{") - (ch == "}")
            if (boxed and depth <= 0) or (not boxed and ch == "\n" and (probs or kept.strip())):
                closed = True
                break
            kept += ch
        if kept.strip():
            probs.append(math.exp(lp))
        if closed:
            break
    return sum(probs) / len(probs) if probs else None


@dataclass
class _ProbeRun:
    """One probe: a fork of the sample's prefix at ``at`` thinking tokens."""

    at: int
    trace: Trace = field(default_factory=Trace)
    task: asyncio.Task | None = None
    answer: str | None = None
    confidence: float | None = None
    state: str = "running"

    def record(self) -> dict[str, Any]:
        conf = None if self.confidence is None else round(self.confidence, 4)
        return {"at": self.at, "answer": self.answer, "confidence": conf, "tokens": self.trace.tokens,
                "state": self.state}


class _Probing:
    """The state of one probed sample: its own stream, its probes, and the decision."""

    def __init__(self, policy: Probe, ctx: SampleContext, params: SamplingParams, trace: Trace) -> None:
        self.policy, self.ctx, self.params, self.trace = policy, ctx, params, trace
        self.own = Trace()
        self.probes: list[_ProbeRun] = []
        self.exit: _ProbeRun | None = None
        self.stop = "aborted"  # until decided otherwise
        self.decided: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed_at: int | None = None  # thinking tokens once the sample closed its thinking
        self.next_at = policy.interval
        self.last_cut = -1  # the last transition probed
        self.start = time.perf_counter()
        fam = ctx.family
        words = policy.transitions or (fam.wait.strip().rstrip(",.:;").strip(),)
        self.words = re.compile("|".join(rf"(?<![A-Za-z]){re.escape(w)}" for w in words), re.IGNORECASE)
        self.width = max(len(ctx.encode(w)) for w in words) + 2  # tokens that can hold a word
        self.end_ids = ctx.encode(fam.think_end)
        self.probe_ctx = dataclasses.replace(ctx, on_chunk=None)  # outer watchers see the sample only
        self.probe_params = params.replace(temperature=0.0, logprobs=0, stop=(), stop_token_ids=(), ignore_eos=False)
        self.own_task: asyncio.Task | None = None

    async def think(self) -> None:
        """Stream the sample; return once it ended or a probe settled it."""
        own_ctx = dataclasses.replace(self.ctx, on_chunk=self.on_chunk)
        self.own_task = asyncio.create_task(stream_into(own_ctx, self.own, self.ctx.prompt_ids, self.params))
        await asyncio.wait({self.own_task, self.decided}, return_when=asyncio.FIRST_COMPLETED)
        if self.own_task.done() and self.own_task.exception() is not None:
            raise self.own_task.exception()  # an engine error (or an outer watcher's stop) propagates
        if self.decided.done():
            self.exit = self.decided.result()
            self.stop = "consistent" if self.policy.rule == "consistent" else "confident"
        else:
            self.stop = "natural"
        stopped = await self.stop_all()
        if stopped:  # record what the engine decoded after the aborts (at most the step in flight)
            step_s = (time.perf_counter() - self.start) / max(len(self.own.token_ids), 1)
            await settle(self.ctx.engine, stopped, step_s)
            self.trace.wasted_tokens = sum(wasted_after_abort(self.ctx.engine, t) for t in stopped)

    async def stop_all(self) -> list[Trace]:
        """Cancel the sample's stream and every running probe (= abort them in the engine); returns
        the traces of every request stopped so far."""
        own = [self.own_task] if self.own_task is not None else []
        cut = await cancel(own)
        for p in self.probes:
            if p.task is not None and not p.task.done():
                p.state = "cancelled"
        await cancel([p.task for p in self.probes if p.task is not None])
        return ([self.own] if cut else []) + [p.trace for p in self.probes if p.state == "cancelled"]

    # -- probe points (called by the sample's stream with every chunk) ----------------------
    def on_chunk(self, own: Trace, chunk: Chunk) -> None:
        if self.ctx.on_chunk is not None:  # e.g. DeepConf watching the sample's confidence
            self.ctx.on_chunk(self.trace, chunk)
        if self.closed_at is not None or self.decided.done():
            return
        new = len(chunk.token_ids)
        end = self._thinking_end(new)
        if end is not None:  # the sample answers by itself now: probes can no longer help
            self.closed_at = end
            for p in self.probes:
                if p.task is not None and not p.task.done():
                    p.state = "cancelled"
                    p.task.cancel()
        elif self.policy.rule == "consistent":
            while self.next_at <= len(own.token_ids):
                self._launch(self.next_at)
                self.next_at += self.policy.interval
        else:
            for at in self._transitions(new):
                self._launch(at)

    def _thinking_end(self, new: int) -> int | None:
        """Where the thinking ended, if the sample's newest tokens close it."""
        ids = self.own.token_ids
        if len(self.end_ids) == 1:
            return next((i for i in range(len(ids) - new, len(ids)) if ids[i] == self.end_ids[0]), None)
        text = self.ctx.decode(ids[-(new + len(self.end_ids) + 2):])
        return thinking_tokens(self.ctx, ids) if self.ctx.family.think_end in text else None

    def _transitions(self, new: int) -> list[int]:
        """Prefix lengths just before each transition word that the ``new`` tokens completed."""
        ids, found = self.own.token_ids, []
        lo = max(len(ids) - new - self.width, 0)
        tail = ids[lo:]
        for m in self.words.finditer(self.ctx.decode(tail)):
            cut = lo + _tokens_before(self.ctx, tail, m.start())
            if cut > self.last_cut:
                found.append(cut)
                self.last_cut = cut
        return found

    def _launch(self, at: int) -> None:
        probe = _ProbeRun(at)
        self.probes.append(probe)
        probe.task = asyncio.create_task(self._probe(probe))

    async def _probe(self, probe: _ProbeRun) -> None:
        prefix = self.ctx.prompt_ids + self.own.token_ids[: probe.at]
        try:
            await force_answer(self.probe_ctx, probe.trace, prefix, self.policy.answer_tokens, self.probe_params)
        except Exception as exc:  # noqa: BLE001 - e.g. a prefix past the context: no trial answer here
            probe.state = f"error: {type(exc).__name__}: {str(exc)[:200]}"
            return
        text = self.ctx.decode(probe.trace.token_ids)
        verifier = self.ctx.verifier
        probe.answer = verifier.extract(self.ctx.family.answer_cue + text) if verifier is not None else None
        probe.confidence = answer_confidence(self.ctx, probe.trace.token_ids, probe.trace.logprobs)
        hesitant = self.policy.rule == "consistent" and self.words.search(text) is not None
        probe.state = "hesitant" if hesitant else "done"
        self._judge()

    def _judge(self) -> None:
        if self.decided.done() or self.closed_at is not None:
            return
        settled = _consistent(self.probes, self.policy.window) if self.policy.rule == "consistent" else next(
            (p for p in self.probes if p.state == "done" and p.answer is not None and p.confidence is not None
             and p.confidence >= self.policy.threshold), None)
        if settled is not None:
            self.decided.set_result(settled)

    # -- the trace ----------------------------------------------------------------------------
    def fill(self) -> None:
        """Write the sample's trace: own tokens then every probe's, the answer, the records."""
        t, own, ctx = self.trace, self.own, self.ctx
        t.token_ids[:] = own.token_ids + [tok for p in self.probes for tok in p.trace.token_ids]
        if own.logprobs is not None:
            t.logprobs = own.logprobs + [lp for p in self.probes for lp in (p.trace.logprobs or [])]
        t.info["request_ids"] = own.info.get("request_ids", []) + [
            r for p in self.probes for r in p.trace.info.get("request_ids", [])]
        if self.exit is not None:
            suffix = ctx.family.force_suffix()
            finish_trace(ctx, t, ctx.decode(own.token_ids[: self.exit.at]) + suffix + ctx.decode(self.exit.trace.token_ids))
            t.thinking_tokens, t.finish_reason = self.exit.at, self.exit.trace.finish_reason
            t.info.update(injected=[suffix], exit_at=self.exit.at)
        else:
            finish_trace(ctx, t, ctx.decode(own.token_ids))
            t.thinking_tokens = thinking_tokens(ctx, own.token_ids) if own.token_ids else 0
            t.finish_reason = own.finish_reason
        t.info.update(stop=self.stop, probes=[p.record() for p in self.probes],
                      probe_tokens=sum(p.trace.tokens for p in self.probes), sequential_tokens=len(own.token_ids))


def _consistent(probes: list[_ProbeRun], window: int) -> _ProbeRun | None:
    """The probe completing the first run of ``window`` consecutive equal trial answers."""
    run: list[_ProbeRun] = []
    for p in probes:
        if p.state != "done" or p.answer is None:
            run = []
            continue
        run = run + [p] if run and run[-1].answer == p.answer else [p]
        if len(run) >= window:
            return p
    return None


def _tokens_before(ctx: SampleContext, ids: list[int], chars: int) -> int:
    """How many of ``ids`` decode to at most ``chars`` characters (where a word starting there begins)."""
    k = 0
    while k < len(ids) and len(ctx.decode(ids[: k + 1])) <= chars:
        k += 1
    return k
