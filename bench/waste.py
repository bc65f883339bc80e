"""FFS waste benchmark: tokens each engine decodes for a First Finish Search loser after its abort.

FFS@8 (T=0.6, top_p=0.95, the paper's setting) runs over the same held-out arith problems on the
tiny reasoner, one problem at a time, on each engine in one run. Waste is read from the engine's
own counts (``stats.per_request``: what hf's decode loop, vLLM's engine core, the vLLM server or
the Ray actors decoded for each aborted sample) minus the tokens the controller received, and
reported per aborted sample: the mean over each problem's aborted samples, then the median, p95
and max over problems. The physical limit is 0; one decode step is 1.

    python bench/waste.py [--engines hf,vllm,openai,ray] [--problems 50] [--n 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from ponder.benchmarks.registry import load_problems
from ponder.controllers import FirstFinish, Sampling
from ponder.engines import make_engine
from ponder.verifiers import get_verifier

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, int(round(q / 100 * len(ranked) + 0.5)) - 1))]


def decoded(engine, trace) -> int:
    """What the engine decoded for a sample, over all of its requests."""
    return sum(engine.stats.per_request.get(rid, 0) for rid in trace.info.get("request_ids", []))


async def quiet(engine, timeout_s: float = 10.0) -> None:
    """Wait until the engine has confirmed every abort (its counts are final)."""
    if hasattr(engine, "settle"):
        await engine.settle()
    deadline = time.perf_counter() + timeout_s
    while engine.unfinished() and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)


async def ffs_waste(engine, items, n: int = 8) -> dict:
    """Run FFS@n on each problem in turn; waste per aborted sample, from the engine's counts."""
    verifier = get_verifier("integer")
    per_problem, aborted_total, wasted_total, correct = [], 0, 0, 0
    start = time.perf_counter()
    for i, problem in enumerate(items):
        ctrl = FirstFinish(n=n, sampling=Sampling(temperature=0.6, top_p=0.95, max_tokens=300, seed=1000 * i))
        sol = await ctrl.run(problem, engine, verifier=verifier)
        await quiet(engine)
        losers = [t for t in sol.traces if t.aborted]
        if losers:  # read the engine's final counts here, whatever the controller saw
            wasted = sum(max(0, decoded(engine, t) - t.tokens) for t in losers)
            per_problem.append(wasted / len(losers))
            aborted_total += len(losers)
            wasted_total += wasted
        correct += bool(sol.answer is not None and verifier.verify(problem.gold, sol.answer))
    return {"problems": len(items), "aborted": aborted_total, "wasted": wasted_total,
            "per_aborted": per_problem, "median": statistics.median(per_problem) if per_problem else 0.0,
            "p95": percentile(per_problem, 95) if per_problem else 0.0, "max": max(per_problem, default=0.0),
            "mean": wasted_total / max(aborted_total, 1), "accuracy": correct / len(items),
            "wall_s": time.perf_counter() - start}


def make(kind: str, server_url: str | None):
    if kind == "openai":
        return make_engine("openai", base_url=server_url)
    if kind == "ray":
        return make_engine("ray", engine="hf", actors=2, num_cpus=1)
    return make_engine(kind, **({"max_model_len": 512} if kind == "vllm" else {}))


async def bench(kind: str, items, n: int, server_url: str | None) -> dict:
    engine = make(kind, server_url)
    if hasattr(engine, "start"):
        await engine.start()
    await ffs_waste(engine, items[:2], n)  # warm-up
    row = await ffs_waste(engine, items, n)
    row["engine_side"] = engine.stats.engine_side
    await engine.aclose()
    if hasattr(engine, "shutdown"):
        engine.shutdown()
    return row


def table(rows: dict[str, dict], n: int, problems: int) -> str:
    lines = [f"FFS@{n} over {problems} arith problems, tiny reasoner: wasted tokens per aborted sample "
             f"(engine-side counts)", "",
             "| engine | median | p95 | max | mean | aborted samples | accuracy | engine-side |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, r in rows.items():
        lines.append(f"| {kind} | {r['median']:.2f} | {r['p95']:.2f} | {r['max']:.2f} | {r['mean']:.2f} | "
                     f"{r['aborted']} | {r['accuracy']:.0%} | {r['engine_side']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="hf,vllm,openai,ray")
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", default=str(RESULTS / "waste"))
    args = ap.parse_args()
    kinds = args.engines.split(",")
    items = load_problems("arith", None, args.problems)
    server = None
    if "openai" in kinds:
        from ponder.engines.server import VLLMServer

        server = VLLMServer().start()
    rows = {}
    try:
        for kind in kinds:
            rows[kind] = asyncio.run(bench(kind, items, args.n, server and server.base_url))
            print(f"{kind}: median {rows[kind]['median']:.2f}, p95 {rows[kind]['p95']:.2f}", flush=True)
    finally:
        if server:
            server.stop()
    text = table(rows, args.n, args.problems)
    print(text)
    Path(args.out + ".md").write_text(text + "\n")
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
