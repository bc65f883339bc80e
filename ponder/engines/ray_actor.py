"""The actor side of the Ray pool (`ponder.engines.ray.RayPool`): a real engine plus buffers.

Runs inside an async Ray actor: `open` starts a request on the actor's engine, `poll` hands back
everything buffered for all open requests (merged into one chunk each) with the engine's own
token counts, and `abort` cancels a request and returns once the engine has stopped it.
Nothing here imports Ray at module level; the pool wraps `EngineActor` with ``ray.remote``.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from typing import Any

from ponder.types import Chunk, SamplingParams

__all__ = ["EngineActor", "POLL_WAIT_S"]

POLL_WAIT_S = 1.0
"""How long an actor's `poll` waits for tokens before returning empty (lets idle pollers exit)."""


class _Stream:
    """Actor side: one request's buffered chunks."""

    def __init__(self) -> None:
        self.buffer: list[Chunk] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task | None = None


class EngineActor:
    """The actor: a real engine plus buffers the pool drains with `poll` (use via `RayPool`)."""

    def __init__(self, engine: str, engine_kwargs: dict[str, Any]) -> None:
        from ponder.engines.registry import make_engine  # a leaf module: no import cycle with ray.py

        self.engine = make_engine(engine, **engine_kwargs)
        self.streams: dict[str, _Stream] = {}
        self.wake = asyncio.Event()

    async def ready(self) -> dict[str, Any]:
        start = getattr(self.engine, "start", None)
        if start is not None:  # vLLM starts its engine core lazily
            await start()
        import ray

        return {"model_name": self.engine.model_name, "engine": self.engine.name, "pid": os.getpid(),
                "node": ray.util.get_node_ip_address()}

    async def open(self, rid: str, prompt_ids: list[int], params: SamplingParams) -> None:
        stream = self.streams[rid] = _Stream()
        stream.task = asyncio.get_running_loop().create_task(self._pump(rid, stream, prompt_ids, params))

    async def _pump(self, rid: str, stream: _Stream, prompt_ids: list[int], params: SamplingParams) -> None:
        try:
            async with aclosing(self.engine.stream(prompt_ids, params, request_id=rid)) as chunks:
                async for chunk in chunks:
                    stream.buffer.append(chunk)
                    self.wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reaches the caller's stream as the same exception
            stream.error = exc
            self.wake.set()

    async def poll(self) -> dict[str, tuple[Chunk | None, BaseException | None, int]]:
        """Everything buffered since the last call: {request: (merged chunk, error, tokens the
        engine has decoded for it so far)}; waits up to `POLL_WAIT_S` for the first token."""
        if not any(s.buffer or s.error for s in self.streams.values()):
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), POLL_WAIT_S)
            except asyncio.TimeoutError:
                return {}
        out = {}
        for rid, s in list(self.streams.items()):
            if not (s.buffer or s.error):
                continue
            chunk = _merge(s.buffer) if s.buffer else None
            s.buffer = []
            out[rid] = (chunk, s.error, self.engine.stats.per_request.get(rid, 0))
            if s.error is not None or (chunk is not None and chunk.finish_reason is not None):
                del self.streams[rid]
        return out

    async def abort(self, rid: str) -> tuple[int, int]:
        """Stop a request; returns (tokens decoded for it in all, of which after the abort)."""
        at_abort = self.engine.stats.per_request.get(rid, 0)
        stream = self.streams.pop(rid, None)
        if stream is not None and stream.task is not None:
            stream.task.cancel()
            await asyncio.gather(stream.task, return_exceptions=True)
        settle = getattr(self.engine, "settle", None)
        if settle is not None:  # hf: the step that was running when the abort came has landed
            await settle()
        final = self.engine.stats.per_request.get(rid, 0)
        return final, final - at_abort

    async def close(self) -> None:
        for s in self.streams.values():
            if s.task is not None:
                s.task.cancel()
        await self.engine.aclose()
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()


def _merge(chunks: list[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    last = chunks[-1]
    lps = None if any(c.logprobs is None for c in chunks) else tuple(x for c in chunks for x in c.logprobs)
    tops = None if any(c.top_logprobs is None for c in chunks) else tuple(x for c in chunks for x in c.top_logprobs)
    return Chunk(tuple(t for c in chunks for t in c.token_ids), lps, tops, last.finish_reason, last.stop_reason)
