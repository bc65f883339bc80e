"""A Ray actor pool behind the Engine protocol: one request stream, served by many engines.

    from ponder.engines import make_engine
    pool = make_engine("ray", engine="hf", actors=2)                 # local Ray, two tiny reasoners
    pool = make_engine("ray", engine="vllm", actors=8, num_gpus=1,    # an existing cluster
                       address="auto", model="Qwen/Qwen3-8B")
    ponder solve "Compute 12+34" -c ffs -n 8 --ray --actors 2

Each actor is an *async* Ray actor holding a real engine (`make_engine(engine, ...)`), so a
cancelled request is stopped inside the actor while it runs (a sync actor would finish the task
first). A request goes to the live actor with the fewest open requests, so the n samples of one
controller spread over the actors.

Tokens come back in chunks: one `poll` call per actor returns everything its engine produced
for all of the pool's requests since the last call (not one Ray call per token or per stream).
Closing a stream sends `abort` to its actor, which cancels the engine stream and waits until the
engine has stopped; the pool's `stats` are the actors' own token counts.

If an actor dies mid-request, each of its requests is resubmitted to a live actor as an exact
prefix continuation (prompt + the tokens already streamed, the remaining ``max_tokens``), so the
caller's stream goes on without losing or repeating a token; `resubmissions` records each one.
Dead actors are restarted by Ray up to ``max_restarts`` times and rejoin the pool (while every
actor is down and one is restarting, requests wait for it); with none left the request fails with
a clear error. Continuations restart the sampler's random stream, and a
stop string straddling the cut is not seen.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import urlparse

from ponder.engines.base import EngineStats, request_ids
from ponder.engines.ray_actor import EngineActor
from ponder.types import Chunk, SamplingParams

__all__ = ["RayPool", "EngineActor", "Resubmission", "PoolError"]

class PoolError(RuntimeError):
    """The pool cannot serve: Ray does not start, the cluster is unreachable, or no actor is left."""


@dataclass
class Resubmission:
    """A request moved off a dead actor."""

    request_id: str
    dead_actor: int
    new_actor: int
    tokens_carried: int
    """Tokens already streamed, passed on as prompt so the continuation starts where the stream was."""
    error: str


@dataclass
class _Request:
    """Pool side: one caller's request."""

    rid: str
    prompt_ids: list[int]
    params: SamplingParams
    queue: asyncio.Queue
    received: list[int] = field(default_factory=list)
    attempt: int = 0
    arid: str = ""
    actor: Any = None
    counts: dict[str, int] = field(default_factory=dict)
    finished: bool = False


@dataclass
class _Died:
    arid: str
    actor: int
    error: str


@dataclass
class _Actor:
    index: int
    handle: Any
    alive: bool = True
    requests: dict[str, _Request] = field(default_factory=dict)
    poller: asyncio.Task | None = None
    error: str = ""
    reviving: bool = False
    """Dead, and Ray is restarting it: requests wait for it when no other actor is alive."""


class RayPool:
    """An Engine whose requests are served by a pool of Ray actors, each holding a real engine.

    Args:
        engine: the engine every actor holds (``hf``, ``vllm``, ``openai``).
        actors: how many actors.
        address: an existing cluster (``auto``, ``host:port`` or ``ray://host:port``); None starts
            a local one (or joins the one this process is already connected to).
        num_cpus: CPUs each actor reserves (the hf engine uses as many threads).
        num_gpus: GPUs each actor reserves; with ``tensor_parallel_size`` > 1 each actor gets a
            placement group of that many GPUs on one node.
        max_restarts: how often Ray restarts a dead actor (it rejoins the pool once ready).
        startup_timeout: seconds to wait for the actors' engines to load.
        **engine_kwargs: passed to every actor's engine (``model``, ``max_model_len``, ...).
    """

    name = "ray"
    in_transit_tokens = 8
    """Tokens a reader can be behind its actor's engine (one poll round trip at CPU decode speed):
    an aborted request may have decoded this many that never reached its reader. The tokens
    decoded *after* the actor received the abort are counted in ``stats.tokens_after_abort``."""

    def __init__(self, engine: str = "hf", *, actors: int = 2, address: str | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, max_restarts: int = 0, startup_timeout: float = 600, **engine_kwargs: Any) -> None:
        if engine == "ray" or not isinstance(actors, int) or actors < 1:
            raise ValueError(f"ray pool: needs actors >= 1 of a non-ray engine (got engine={engine!r}, actors={actors!r})")
        import ray

        if engine in ("hf", "vllm"):  # a missing local model fails here, not inside every actor
            from ponder.engines.models import resolve_model

            resolve_model(engine_kwargs.get("model"))
        _connect(address, local_cpus=int(actors * num_cpus + 0.999))
        if engine == "hf" and "threads" not in engine_kwargs:
            engine_kwargs["threads"] = max(1, int(num_cpus))  # keep actors from oversubscribing their cores
        _check_room(actors, num_cpus, num_gpus * max(1, int(engine_kwargs.get("tensor_parallel_size", 1) or 1)),
                    wait_s=min(10.0, startup_timeout))
        self.max_restarts, self.startup_timeout = max_restarts, startup_timeout
        self._actors = [_Actor(i, self._spawn(engine, engine_kwargs, num_cpus, num_gpus)) for i in range(actors)]
        try:
            infos = ray.get([a.handle.ready.remote() for a in self._actors], timeout=startup_timeout)
        except Exception as exc:
            self.shutdown()
            raise PoolError(f"ray pool: the {engine} actors did not start: {_first_line(exc)}") from None
        self.nodes = [info["node"] for info in infos]
        self.model_name = infos[0]["model_name"]
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
        self.resubmissions: list[Resubmission] = []
        self.restarts = 0
        self.routed: dict[str, int] = {}
        """request id -> the actor that served it last (kept for the last 4096 requests)."""
        self._stats = EngineStats()
        self._aborting: list[tuple[_Request, str, Any]] = []
        self._turn = 0

    def _spawn(self, engine: str, kwargs: dict[str, Any], num_cpus: float, num_gpus: float) -> Any:
        import ray

        options: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": self.max_restarts,
                                   "max_task_retries": 0, "max_concurrency": 1000}
        tp = int(kwargs.get("tensor_parallel_size", 1) or 1)
        if tp > 1:  # one bundle holding all of an actor's GPUs keeps them on one node
            from ray.util.placement_group import placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            pg = placement_group([{"CPU": num_cpus, "GPU": tp}], strategy="STRICT_PACK")
            options.update(num_gpus=tp, scheduling_strategy=PlacementGroupSchedulingStrategy(pg))
        return ray.remote(EngineActor).options(**options).remote(engine, kwargs)

    # -- protocol ---------------------------------------------------------------------------
    @property
    def stats(self) -> EngineStats:
        """The actors' own counts (every token their engines decoded for this pool's requests)."""
        self._fold_aborts()
        return self._stats

    def unfinished(self) -> int:
        """Requests open on an actor, or aborted and not yet confirmed stopped by it."""
        self._fold_aborts()
        return sum(len(a.requests) for a in self._actors) + len(self._aborting)

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        if not prompt_ids:
            raise ValueError("prompt_ids is empty")
        req = _Request(request_id or next(request_ids), [int(t) for t in prompt_ids], params, asyncio.Queue())
        self._stats.requests += 1
        try:
            await self._submit(req)
            while True:
                item = await req.queue.get()
                if isinstance(item, _Died):
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

    async def aclose(self) -> None:
        """Stop every request and the actors."""
        for actor in self._actors:
            for req in list(actor.requests.values()):
                self._abort(req)
        live = [a.handle.close.remote() for a in self._actors if a.alive]
        if live:
            await asyncio.gather(*live, return_exceptions=True)
        self.shutdown()

    def shutdown(self) -> None:
        """Kill the actors (a local Ray started for the pool keeps running for the process)."""
        import ray

        for actor in self._actors:
            try:
                ray.kill(actor.handle, no_restart=True)
            except Exception:  # already dead
                pass
            actor.alive = actor.reviving = False

    # -- routing ----------------------------------------------------------------------------
    def _pick(self) -> _Actor:
        live = [a for a in self._actors if a.alive]
        if not live:
            reasons = "; ".join(f"actor {a.index}: {a.error or 'dead'}" for a in self._actors)
            raise PoolError(f"ray pool: no live actor left ({reasons})")
        self._turn += 1
        n = len(self._actors)
        return min(live, key=lambda a: (len(a.requests), (a.index - self._turn) % n))

    async def _submit(self, req: _Request) -> None:
        from ray.exceptions import RayActorError

        while True:
            while not any(a.alive for a in self._actors) and any(a.reviving for a in self._actors):
                await asyncio.sleep(0.1)  # the only actors are restarting (e.g. a 1-actor pool): wait
            actor = self._pick()
            req.arid = req.rid if req.attempt == 0 else f"{req.rid}~{req.attempt}"
            req.actor = actor
            actor.requests[req.arid] = req
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
            self._ensure_poller(actor)
            return

    async def _resubmit(self, req: _Request, died: _Died) -> None:
        req.attempt += 1
        await self._submit(req)
        self.resubmissions.append(Resubmission(req.rid, died.actor, req.actor.index, len(req.received), died.error))

    def _abort(self, req: _Request) -> None:
        req.finished = True
        actor = req.actor
        if actor is None:
            return
        actor.requests.pop(req.arid, None)
        self._stats.aborted_requests += 1
        if actor.alive:
            self._aborting.append((req, req.arid, actor.handle.abort.remote(req.arid)))

    def _fold_aborts(self) -> None:
        if not self._aborting:
            return
        import ray

        refs = [ref for _, _, ref in self._aborting]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        for req, arid, ref in [x for x in self._aborting if x[2] in done]:
            try:
                final, after = ray.get(ref)
            except Exception:  # the actor died meanwhile: its engine stopped with it
                continue
            self._count(req, arid, final)
            self._stats.tokens_after_abort += after
        self._aborting = [x for x in self._aborting if x[2] not in done]

    def _count(self, req: _Request, arid: str, count: int) -> None:
        delta = count - req.counts.get(arid, 0)
        if delta > 0:
            req.counts[arid] = count
            self._stats.count(req.rid, delta)

    # -- the per-actor poller ---------------------------------------------------------------
    def _ensure_poller(self, actor: _Actor) -> None:
        loop = asyncio.get_running_loop()
        if actor.poller is None or actor.poller.done() or actor.poller.get_loop() is not loop:
            actor.poller = loop.create_task(self._poll(actor))

    async def _poll(self, actor: _Actor) -> None:
        from ray.exceptions import RayActorError

        while actor.requests and actor.alive:
            try:
                data = await actor.handle.poll.remote()
            except RayActorError as exc:
                self._actor_down(actor, exc)
                return
            for arid, (chunk, error, count) in data.items():
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

    def _actor_down(self, actor: _Actor, exc: BaseException) -> None:
        if not actor.alive:
            return
        actor.alive, actor.error = False, _first_line(exc)
        for arid, req in actor.requests.items():
            req.queue.put_nowait(_Died(arid, actor.index, actor.error))
        actor.requests.clear()
        if self.max_restarts > 0:
            actor.reviving = True
            asyncio.get_running_loop().create_task(self._revive(actor))

    async def _revive(self, actor: _Actor) -> None:
        """Wait for Ray to restart the actor (its engine reloads), then route to it again."""
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                try:  # calls made while Ray still marks the actor dead fail: retry until it is back
                    await asyncio.wait_for(actor.handle.ready.remote(), max(1.0, deadline - time.monotonic()))
                    break
                except Exception as exc:
                    if time.monotonic() > deadline or _gone_for_good(exc):
                        actor.error = f"not restarted: {_first_line(exc)}"
                        return
                    await asyncio.sleep(0.5)
            actor.alive, actor.error = True, ""
            self.restarts += 1
        finally:
            actor.reviving = False


def _gone_for_good(exc: BaseException) -> bool:
    """Ray says the actor will not come back (out of restarts, or killed with no_restart);
    a restarting actor answers ActorUnavailableError instead."""
    from ray.exceptions import ActorDiedError

    return isinstance(exc, ActorDiedError)


def _check_room(actors: int, num_cpus: float, num_gpus: float, wait_s: float = 10.0) -> None:
    """Fail soon when the cluster cannot place the actors (Ray would wait for them forever).

    Waits up to ``wait_s`` first: resources of actors killed a moment ago come back asynchronously.
    """
    import ray

    deadline = time.monotonic() + wait_s
    while True:
        free = ray.available_resources()
        short = [(name, each) for name, each in (("CPU", num_cpus), ("GPU", num_gpus))
                 if each and actors * each > free.get(name, 0) + 1e-9]
        if not short:
            return
        if time.monotonic() > deadline:
            name, each = short[0]
            raise PoolError(f"ray pool: {actors} actors need {actors * each:g} {name}s, the cluster has "
                            f"{free.get(name, 0):g} free of {ray.cluster_resources().get(name, 0):g} "
                            f"(lower num_cpus/num_gpus per actor, or add nodes)")
        time.sleep(0.2)


def _first_line(exc: BaseException) -> str:
    """One line naming the error; for an actor that died of an exception, that exception's line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    if causes and type(exc).__name__.startswith(("Actor", "Ray")):
        return f"{type(exc).__name__}: {causes[-1]}"
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _connect(address: str | None, local_cpus: int, timeout: float = 10.0) -> None:
    """Join ``address`` (or start a local Ray); a clear error when that is not possible."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "auto":
        url = urlparse(address if "://" in address else f"ray://{address}")
        host, port = url.hostname, url.port or (10001 if address.startswith("ray://") else 6379)
        _probe_grpc(address, host, port, timeout)  # Ray itself retries a wrong address for a long time
    if ray.is_initialized():  # this process already joined a cluster: every pool shares it
        return
    start = time.perf_counter()
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, local_cpus), include_dashboard=False, log_to_driver=False)
    except Exception as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise PoolError(f"ray pool: cannot start or join {where} after {time.perf_counter() - start:.0f}s: "
                           f"{_first_line(exc)}") from None
    _cluster_messages_to_stderr()


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The HTTP/2 client preface and an empty SETTINGS frame: any gRPC server (a Ray head's GCS or its
client server) answers with a SETTINGS frame of its own at once."""


def _probe_grpc(address: str, host: str | None, port: int, timeout: float) -> None:
    """Fail fast unless ``host:port`` speaks gRPC: a closed port, or an open one that is not a Ray
    head (``ray.init`` would retry it for ever), is one PoolError naming the address."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise PoolError(f"ray pool: cannot reach the Ray cluster at {address!r} ({host}:{port}): {exc}") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        sock.close()  # a TLS head answers a plain preface with an alert: only reachability can be checked
        return
    try:
        sock.settimeout(min(timeout, 5.0))  # a gRPC server answers in milliseconds
        sock.sendall(HTTP2_PREFACE)
        head = b""
        while len(head) < 9:
            data = sock.recv(9 - len(head))
            if not data:
                break
            head += data
    except OSError as exc:
        head = b""
        timed_out = isinstance(exc, socket.timeout)
        why = f"no answer to a gRPC handshake within {sock.gettimeout():g}s" if timed_out else str(exc)
    else:
        why = "it closed the connection" if len(head) < 9 else f"it answered {head[:9]!r}"
    finally:
        sock.close()
    if len(head) == 9 and head[3] == 0x04 and head[5:9] == b"\x00\x00\x00\x00":  # a SETTINGS frame
        return
    raise PoolError(f"ray pool: {address!r} ({host}:{port}) is not a Ray head: {why} (expected the GCS port, "
                    f"default 6379, or ray://HOST:10001)")


def _cluster_messages_to_stderr() -> None:
    """Send Ray's own notices ("(raylet) A worker died ...") to stderr instead of stdout.

    Ray prints the cluster's error messages on the driver's stdout (``is_err: False``) even with
    ``log_to_driver=False``, which broke ``--json`` output when an actor died. The printing
    function is looked up at each message, so replacing it here covers the running listener;
    a Ray without it (another version) is left alone."""
    try:
        from ray._private import worker as ray_worker
    except ImportError:  # pragma: no cover - Ray's private layout changed
        return
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None or getattr(original, "_ponder_stderr", False):
        return

    def to_stderr(data: dict, *args: Any, **kwargs: Any) -> Any:
        return original(dict(data, is_err=True), *args, **kwargs)

    to_stderr._ponder_stderr = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = to_stderr
