"""The Ray actor pool: an Engine whose samples are served by engines in Ray actors on many GPUs and machines.

    pool.py      `RayPool`, the Engine: placement of requests, resubmission when an actor dies
    actor.py     `EngineActor`, the actor side: a real engine plus per-request buffers
    channel.py   the direct socket per actor that streams token chunks as they are made
    cluster.py   joining or starting Ray, placement groups for tensor-parallel actors, errors in one line

Nothing here imports ray at module level: it loads when a pool starts.
"""

from ponder.engines.ray.cluster import PoolError
from ponder.engines.ray.pool import EngineActor, RayPool, Resubmission, _probe_grpc

__all__ = ["RayPool", "EngineActor", "Resubmission", "PoolError"]
