"""The Engine protocol: token ids in, streamed token ids out, cancellation = abort in the engine.

Every token source (transformers, vLLM in-process, an OpenAI-compatible server, the Ray pool)
implements `Engine.stream`. Closing the stream's iterator, or cancelling the task that reads it,
aborts the request inside the engine: no tokens are generated for it after the abort takes
effect. `EngineStats` counts what each engine really generated, so tests and benchmarks can check
abort claims from the engine's own numbers rather than from what the caller happened to read.
Engines are opened with `ponder.engines.open_engine`, which awaits ``start()``.
An engine may also offer ``async settle()``: return once every requested abort has taken effect.
An engine that cannot start, or dies, raises `EngineError` from ``start``/``stream``: one line
naming the engine, the model and the root cause, for every request from then on.
"""

from __future__ import annotations

import itertools
import re
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, runtime_checkable

from ponder.types import Chunk, FinishReason, SamplingParams

__all__ = ["Engine", "EngineError", "EngineStats", "Completion", "complete", "request_ids"]

request_ids = (f"ponder-{i}" for i in itertools.count())
"""Process-wide unique request ids."""


class EngineError(RuntimeError):
    """The engine could not start, or died while running; no request can be served by it any more.

    The message is one line: the engine kind, the model and the root cause (for vLLM, the first
    exception its engine-core or worker processes logged). The engine's own processes are already
    stopped when this is raised. ``details`` keeps the engine's error output (tracebacks) for
    ``--verbose``.
    """

    def __init__(self, kind: str, model: str, cause: str, *, started: bool = False, details: str = "") -> None:
        lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
        self.kind, self.model, self.started, self.details = kind, model, started, details
        self.cause = lines[0] if lines else "unknown cause"
        # a child process that raised one of these (a script re-run by multiprocessing's spawn): its cause
        nested = _NESTED.match(self.cause)
        self.cause = nested.group(1) if nested else self.cause
        super().__init__(f"{kind} engine {'died' if started else 'could not start'} (model {model}): {self.cause}")

    def __reduce__(self):
        # rebuilt from its fields, not from ``args`` (the message): a Ray actor sends it over a pickle channel
        return (_rebuild_engine_error, (self.kind, self.model, self.cause, self.started, self.details))


_NESTED = re.compile(r"(?:[\w.]*EngineError: )?\S+ engine (?:died|could not start) \(model .*?\): (.+)")


def _rebuild_engine_error(kind: str, model: str, cause: str, started: bool, details: str) -> EngineError:
    return EngineError(kind, model, cause, started=started, details=details)


@runtime_checkable
class Engine(Protocol):
    """What controllers need from a token source."""

    tokenizer: Any
    """A Hugging Face tokenizer (encode/decode/apply_chat_template)."""
    name: str
    """Short engine kind: ``hf``, ``vllm``, ``openai``, ``ray``."""
    model_name: str
    """The model path or id the engine serves (used to pick the model family)."""
    stats: EngineStats
    # Optional: ``family``, the model family's name when it was given rather than read from the
    # tokenizer (`open_engine(..., family=...)`); controllers render prompts with it.

    async def start(self) -> Any:
        """Get ready to serve: load or connect (vLLM's engine core, a server's model list); at once
        for an engine that is ready when made. `ponder.engines.open_engine` awaits it, so a bad model
        fails before any request. Raises `EngineError` when the engine cannot start."""
        ...

    def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        """Generate from exact prompt token ids. Ends with a chunk whose finish_reason is set.

        ``request_id`` (unique, default: generated) keys the engine's own token count in
        ``stats.per_request``, so a caller can see what an aborted request really cost.
        """
        ...

    def unfinished(self) -> int:
        """Requests still running inside the engine (0 once every abort has taken effect)."""
        ...

    async def aclose(self) -> None:
        """Release the model and any background workers."""
        ...


@dataclass
class EngineStats:
    """Counters kept by the engine itself (not by its callers)."""

    requests: int = 0
    """Requests started."""
    generated_tokens: int = 0
    """Every token the engine decoded, including ones dropped because their request was aborted."""
    aborted_requests: int = 0
    """Requests that ended by abort."""
    tokens_after_abort: int = 0
    """Tokens decoded for aborted requests that their readers never received: the decode step in
    flight when the abort took effect, and tokens still on their way to the reader."""
    per_request: dict[str, int] = field(default_factory=dict)
    """Tokens decoded per request id, including those never received (last 4096 requests)."""
    engine_side: bool = True
    """True when these counts come from the engine itself (its decode loop, vLLM's stat loggers,
    a server's ``/metrics``); False when they are only what the client received (a server
    without metrics), which cannot show tokens decoded after an abort."""

    def count(self, request_id: str, n: int = 1, *, total: bool = True) -> None:
        """Add ``n`` tokens to a request (and to ``generated_tokens`` unless ``total`` is False:
        an engine whose total is counted elsewhere, e.g. by vLLM's engine core)."""
        if total:
            self.generated_tokens += n
        self.per_request[request_id] = self.per_request.get(request_id, 0) + n
        if len(self.per_request) > 4096:  # bound memory on long runs; oldest first
            self.per_request.pop(next(iter(self.per_request)))


@dataclass
class Completion:
    """A finished request, gathered from its chunks."""

    token_ids: list[int]
    logprobs: list[float] | None
    top_logprobs: list[dict[int, float]] | None
    finish_reason: FinishReason
    stop_reason: str | int | None


async def complete(
    engine: Engine, prompt_ids: list[int], params: SamplingParams, request_id: str | None = None
) -> Completion:
    """Run one request to its end and gather its chunks."""
    ids: list[int] = []
    lps: list[float] | None = [] if params.logprobs is not None else None
    tops: list[dict[int, float]] | None = [] if params.logprobs else None
    last: Chunk | None = None
    async with aclosing(engine.stream(prompt_ids, params, request_id=request_id)) as chunks:
        async for chunk in chunks:
            ids.extend(chunk.token_ids)
            if lps is not None and chunk.logprobs is not None:
                lps.extend(chunk.logprobs)
            if tops is not None and chunk.top_logprobs is not None:
                tops.extend(chunk.top_logprobs)
            last = chunk
    if last is None or last.finish_reason is None:
        raise RuntimeError(f"engine {engine.name} ended a stream without a finish reason")
    return Completion(ids, lps, tops, last.finish_reason, last.stop_reason)
