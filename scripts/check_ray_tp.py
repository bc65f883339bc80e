"""GPU check: a Ray pool of tensor-parallel vLLM actors starts, serves FFS, and removes its groups.

For a machine with at least ``--actors x --tp`` NVIDIA GPUs and CUDA vLLM (``pip install -e '.[gpu]'``).
For each executor (``ray``: a placement group of one-GPU bundles per actor and vLLM's Ray executor;
``mp``: the actor holds its GPUs and vLLM's multiprocessing executor), it starts the pool, runs
FFS@8 on a few arith problems, prints what each actor reported (GPU ids, placement group), the
waste per aborted sample from the actors' counts, and checks that every placement group is
removed at shutdown. Exits 1 if any check fails.

    python scripts/check_ray_tp.py                                   # tiny reasoner, 1 actor, TP=2
    python scripts/check_ray_tp.py --model Qwen/Qwen3-0.6B --actors 2 --tp 2 --executors ray,mp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time


async def check(executor: str, args) -> bool:
    import ray
    from ray.util import placement_group_table

    from ponder.benchmarks.registry import load_problems
    from ponder.controllers import FirstFinish, Sampling
    from ponder.engines import make_engine
    from ponder.verifiers import get_verifier

    start = time.perf_counter()
    pool = make_engine("ray", engine="vllm", model=args.model, actors=args.actors, num_gpus=1,
                       tensor_parallel_size=args.tp, tp_executor=executor, max_model_len=args.max_model_len)
    print(f"[{executor}] ready in {time.perf_counter() - start:.0f}s:", json.dumps(
        [{k: i[k] for k in ("pid", "node", "gpu_ids", "placement_group")} for i in pool.infos]), flush=True)
    groups = [a.group for a in pool._actors if a.group is not None]
    ok = len(groups) == (args.actors if executor == "ray" and args.tp > 1 else 0)
    wasted = aborted = 0
    for i, problem in enumerate(load_problems("arith", None, args.problems)):
        ctrl = FirstFinish(n=8, sampling=Sampling(temperature=0.6, top_p=0.95, max_tokens=512, seed=i))
        sol = await ctrl.run(problem, pool, verifier=get_verifier("integer"))
        await pool.settle()
        for t in sol.traces:
            if t.aborted:
                aborted += 1
                wasted += sum(pool.stats.per_request.get(r, 0) for r in t.info["request_ids"]) - t.tokens
        print(f"[{executor}] {problem.prompt}: answer {sol.answer} (gold {problem.gold}), "
              f"{sol.total_tokens} tokens", flush=True)
    print(f"[{executor}] wasted tokens per aborted sample: {wasted / max(aborted, 1):.2f} over {aborted} aborted samples")
    await pool.aclose()
    time.sleep(1)
    states = [placement_group_table(g)["state"] for g in groups]
    print(f"[{executor}] placement groups after shutdown: {states}")
    ok = ok and all(s == "REMOVED" for s in states)
    ray.shutdown()
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the embedded tiny reasoner")
    ap.add_argument("--actors", type=int, default=1)
    ap.add_argument("--tp", type=int, default=2)
    ap.add_argument("--executors", default="ray,mp")
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--max-model-len", type=int, default=None, help="default: the model's")
    args = ap.parse_args()
    results = {ex: asyncio.run(check(ex, args)) for ex in args.executors.split(",")}
    print("RESULT", json.dumps(results))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
