"""The actor side of the Ray pool (`ponder.engines.ray.RayPool`): a real engine plus buffers.

Runs inside an async Ray actor. `open` starts a request on the actor's engine. Whatever the engine
produces is buffered per request and pushed to the pool as soon as there is something, merged into
one chunk per request with the engine's own token counts, so a finished sample reaches the pool at
once, without the pool asking: over the direct stream of `ponder.engines.ray.channel` when the pool
is connected to it, else through `push`, a Ray streaming generator. An abort cancels a batch of
requests (all the losers of an FFS on this actor in one message) and is answered once the engine
has stopped them, with what each really cost. Nothing here imports Ray at module level; the pool
wraps `EngineActor` with ``ray.remote``.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from typing import Any, AsyncIterator

from ponder.engines.base import EngineError
from ponder.engines.ray.channel import Listener, frame, merge_chunks, read_frame
from ponder.types import Chunk, SamplingParams

__all__ = ["EngineActor", "WINDOW"]

WINDOW = 2
"""Frames of tokens in flight to the pool before the actor waits for its acknowledgement: a pool
that keeps up gets every decode step at once; one that falls behind gets the steps merged, fewer
and larger frames, instead of a growing backlog of small ones (as a poll would)."""

class _Stream:
    """Actor side: one request's buffered chunks."""

    def __init__(self) -> None:
        self.buffer: list[Chunk] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task | None = None


class EngineActor:
    """The actor: a real engine plus buffers the pool reads through `push` (use via `RayPool`)."""

    def __init__(self, engine: str, engine_kwargs: dict[str, Any]) -> None:
        from ponder.engines.registry import make_engine  # a leaf module: no import cycle with ray.py

        self.engine = make_engine(engine, **engine_kwargs)
        self.streams: dict[str, _Stream] = {}
        self.wake = asyncio.Event()
        self.reader = 0  # the newest reader (stream or `push` call); an older one stops
        self.listener = Listener(self._serve)
        self.closed = asyncio.Event()
        self.died: Exception | None = None
        """The engine's death (`EngineError`), once a request met it: the pool kills this actor."""

    async def ready(self) -> dict[str, Any]:
        if self.died is not None:  # asked before the pool's kill took effect: not ready, ever
            raise self.died
        await self.engine.start()  # vLLM's engine core starts here, in the actor's loop
        import ray

        group = ray.util.get_current_placement_group()
        node = ray.util.get_node_ip_address()
        return {"model_name": self.engine.model_name, "engine": self.engine.name, "pid": os.getpid(),
                "node": node, "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "placement_group": group.id.hex() if group is not None else None,
                "channel": await self.listener.start(node)}

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
            if isinstance(exc, EngineError):
                self.died = exc
            self.wake.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The pool's direct stream: tokens out as they come, aborts in (the newest stream wins)."""
        self.reader += 1
        me = self.reader
        self.wake.set()  # an older reader wakes up and stops
        credit = asyncio.Semaphore(WINDOW)
        sender = asyncio.get_running_loop().create_task(self._send(writer, me, credit))
        try:
            while True:
                kind, ticket, rids = await read_frame(reader)
                if kind == "ack":
                    credit.release()
                elif kind == "abort":
                    asyncio.get_running_loop().create_task(self._abort_and_answer(writer, ticket, rids))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, me: int, credit: asyncio.Semaphore) -> None:
        while me == self.reader:
            if not any(s.buffer or s.error for s in self.streams.values()):
                self.wake.clear()
                await self.wake.wait()
                continue
            await credit.acquire()  # at most WINDOW frames the pool has not read yet
            writer.write(frame(("tokens", self._drain())))
            await writer.drain()

    async def _abort_and_answer(self, writer: asyncio.StreamWriter, ticket: int, rids: list[str]) -> None:
        costs = await self.abort(rids)
        if not writer.is_closing():
            writer.write(frame(("aborted", ticket, costs)))

    async def watch(self) -> None:
        """Returns when the actor closes; the pool keeps one call open to learn of its death."""
        await self.closed.wait()

    async def push(self) -> AsyncIterator[dict[str, tuple[Chunk | None, BaseException | None, int]]]:
        """Yield ``{request: (merged chunk, error, tokens the engine decoded for it so far)}`` each
        time something was buffered, until a newer `push` call takes over."""
        self.reader += 1
        me = self.reader
        while me == self.reader:
            if not any(s.buffer or s.error for s in self.streams.values()):
                self.wake.clear()
                await self.wake.wait()
                continue
            yield self._drain()

    def _drain(self) -> dict[str, tuple[Chunk | None, BaseException | None, int]]:
        out = {}
        for rid, s in list(self.streams.items()):
            if not (s.buffer or s.error):
                continue
            chunk = merge_chunks(s.buffer) if s.buffer else None
            s.buffer = []
            out[rid] = (chunk, s.error, self.engine.stats.per_request.get(rid, 0))
            if s.error is not None or (chunk is not None and chunk.finish_reason is not None):
                del self.streams[rid]
        return out

    async def abort(self, rids: list[str]) -> dict[str, tuple[int, int]]:
        """Stop requests; returns {request: (tokens decoded for it in all, of which after the abort)}."""
        counts = self.engine.stats.per_request
        at_abort = {rid: counts.get(rid, 0) for rid in rids}
        tasks = [s.task for s in (self.streams.pop(rid, None) for rid in rids) if s is not None and s.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        settle = getattr(self.engine, "settle", None)
        if settle is not None:  # the step that was running when the abort came has landed
            await settle()
        return {rid: (counts.get(rid, 0), counts.get(rid, 0) - at_abort[rid]) for rid in rids}

    async def close(self) -> None:
        self.reader += 1
        self.wake.set()
        self.closed.set()
        self.listener.close()
        for s in self.streams.values():
            if s.task is not None:
                s.task.cancel()
        await self.engine.aclose()
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
