"""Running one sample: stream it from the engine into a `Trace`, and read what it cost.

`stream_into` and `finish_trace` are what every per-sample policy (policy.py) and the exit
primitive (exit.py) are built from; `wasted_after_abort` reads the engine's own count of what an
aborted sample really decoded.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Callable

from ponder.engines.base import request_ids
from ponder.prompts import ModelFamily, split_thinking
from ponder.types import Chunk, SamplingParams, Trace

__all__ = ["SampleContext", "stream_into", "finish_trace", "thinking_tokens", "wasted_after_abort"]


@dataclass
class SampleContext:
    """What a sample needs besides its sampling parameters."""

    engine: Any
    prompt_ids: list[int]
    family: ModelFamily
    verifier: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    on_chunk: Callable[[Trace, Chunk], None] | None = None
    """Called by `stream_into` with every chunk a sample receives (DeepConf watches confidence
    here, under any sample policy); raising from it aborts that sample's request."""

    def decode(self, ids: list[int]) -> str:
        return self.engine.tokenizer.decode(ids, skip_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        return list(self.engine.tokenizer.encode(text, add_special_tokens=False))


def thinking_tokens(ctx: SampleContext, ids: list[int]) -> int:
    """How many of ``ids`` (a completion) lie inside the thinking section."""
    end_ids = ctx.encode(ctx.family.think_end)
    if len(end_ids) == 1:
        return ids.index(end_ids[0]) if end_ids[0] in ids else len(ids)
    thinking, _, closed = split_thinking(ctx.decode(ids), ctx.family)
    if not closed:
        return len(ids)
    lo, hi = 0, len(ids)  # the shortest prefix whose text covers the thinking
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if len(ctx.decode(ids[:mid])) < len(thinking) else (lo, mid)
    return lo


async def stream_into(ctx: SampleContext, trace: Trace, prefix: list[int], params: SamplingParams) -> list[int]:
    """Continue ``prefix`` (prompt + trace so far) and append what the engine generates to ``trace``.

    The engine request id is recorded in ``trace.info['request_ids']`` so that, after an abort,
    `wasted_after_abort` can read what the engine really decoded for this sample.
    """
    new: list[int] = []
    rid = next(request_ids)
    trace.info.setdefault("request_ids", []).append(rid)
    async with aclosing(ctx.engine.stream(prefix, params, request_id=rid)) as chunks:
        async for chunk in chunks:
            new.extend(chunk.token_ids)
            trace.token_ids.extend(chunk.token_ids)
            if chunk.logprobs is not None:  # extend in place: copying per chunk is quadratic
                trace.logprobs = trace.logprobs if trace.logprobs is not None else []
                trace.logprobs.extend(chunk.logprobs)
            if chunk.finish_reason:
                trace.finish_reason = chunk.finish_reason
            if ctx.on_chunk is not None:
                ctx.on_chunk(trace, chunk)
    n = len(ctx.prompt_ids)
    if len(prefix) > n and prefix[:n] == ctx.prompt_ids:  # a continuation of this sample: record what the model saw
        seen = prefix[n:] + new
        trace.context_ids = None if seen == trace.token_ids else seen
    return new


def wasted_after_abort(engine: Any, trace: Trace) -> int:
    """Tokens the engine decoded for ``trace`` beyond what reached it (the in-flight step of an abort)."""
    decoded = sum(engine.stats.per_request.get(rid, 0) for rid in trace.info.get("request_ids", []))
    return max(decoded - len(trace.token_ids), 0)


def finish_trace(ctx: SampleContext, trace: Trace, text: str) -> Trace:
    """Fill in the decoded text, thinking length and extracted answer."""
    trace.text = text
    trace.thinking_tokens = thinking_tokens(ctx, trace.token_ids) if trace.token_ids else 0
    if ctx.verifier is not None:
        _, answer_part, closed = split_thinking(text, ctx.family)
        # Only the part after the thinking counts as an answer: a model that never closed its
        # thinking has not answered yet.
        trace.answer = ctx.verifier.extract(answer_part) if closed else None
    return trace
