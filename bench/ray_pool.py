"""Ray pool benchmark: FFS waste and majority throughput on a local engine and on 1- and 2-actor pools.

Every setting holds hf engines with the tiny reasoner and runs, in its own process (a fresh Ray):

- FFS@8 (T=0.6, top_p=0.95) over the same held-out arith problems, one at a time: wasted tokens
  per aborted sample from the engines' own counts (median, p95, max over problems; bench/waste.py);
- majority@8 (T=0.7) over the same problems all at once: tokens per second (the engines' counts),
  and tokens per CPU-second of the processes doing the work (driver and actors): on a machine
  shared with other jobs the wall clock swings by 2x between runs, the CPU cost per token does not;
- abort latency: ms from closing a stream until the engine (the actor's, for a pool) holds no
  request, and tokens decoded after it (bench/engines.py).

``--baseline REF`` also runs the pools of an earlier commit (exported with ``git archive``), in
the same run and interleaved with the current ones, so "no loss of throughput" is a ratio
measured under the same load. Throughput is the median over ``--rounds`` rounds.

On this 2-core machine the 2-actor pool gives each actor one core while the local engine uses
both, so the 2-actor figure measures the pool's spreading, not a speed-up; on a GPU cluster each
actor holds its own device.

    python bench/ray_pool.py [--problems 50] [--n 8] [--rounds 2] [--baseline f7df794]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETTINGS = ("local hf", "ray, 1 actor", "ray, 2 actors")


def cpu_seconds(engine) -> float:
    """CPU time used so far by this process and, for a pool, its actors' processes."""
    import psutil

    pids = [os.getpid()]
    if hasattr(engine, "_actors"):
        import ray

        pids += [info["pid"] for info in ray.get([a.handle.ready.remote() for a in engine._actors])]
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


async def majority_work(engine, items, n: int) -> tuple[float, int, float]:
    """(seconds, tokens the engine counted, accuracy) for majority@n over ``items``, all at once."""
    from ponder.controllers import Majority, Sampling
    from ponder.verifiers import get_verifier

    ctrl = Majority(n=n, sampling=Sampling(temperature=0.7, max_tokens=300, seed=0))
    verifier = get_verifier("integer")
    before = engine.stats.generated_tokens
    start = time.perf_counter()
    sols = await asyncio.gather(*(ctrl.run(p, engine, verifier=verifier) for p in items))
    wall = time.perf_counter() - start
    acc = sum(bool(s.answer is not None and verifier.verify(p.gold, s.answer)) for s, p in zip(sols, items)) / len(items)
    return wall, engine.stats.generated_tokens - before, acc


def make(setting: str):
    from ponder.engines import make_engine

    cores = os.cpu_count() or 2
    if setting == "local hf":
        return make_engine("hf", threads=cores)
    if setting == "ray, 1 actor":
        return make_engine("ray", engine="hf", actors=1, num_cpus=cores)
    return make_engine("ray", engine="hf", actors=2, num_cpus=max(1, cores // 2))


async def worker(setting: str, problems: int, n: int, waste: bool) -> dict:
    """One setting in this process: its figures as a dict."""
    sys.path.insert(0, str(HERE))
    from engines import abort_latency
    from waste import ffs_waste

    from ponder.benchmarks.registry import load_problems
    from ponder.prompts import family_for, render

    items = load_problems("arith", None, problems)  # the held-out seed-1 set
    start = time.perf_counter()
    engine = make(setting)
    row: dict = {"ready_s": time.perf_counter() - start}
    await majority_work(engine, items[:4], n)  # warm-up
    if waste:
        row["ffs"] = await ffs_waste(engine, items, n)
    cpu = cpu_seconds(engine)
    row["wall_s"], row["tokens"], row["accuracy"] = await majority_work(engine, items, n)
    row["cpu_s"] = cpu_seconds(engine) - cpu
    ids = render(engine.tokenizer, items[0].prompt, family_for(engine.tokenizer, engine.model_name))
    row["abort_ms"], row["abort_tokens"] = await abort_latency(engine, ids)
    await engine.aclose()
    return row


def run_worker(setting: str, tree: Path, args, waste: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "RAY_ADDRESS": ""}
    cmd = [sys.executable, __file__, "--worker", setting, "--problems", str(args.problems), "--n", str(args.n)]
    out = subprocess.run(cmd + (["--waste"] if waste else []), env=env, cwd=str(tree), capture_output=True, text=True,
                         timeout=3600)  # cwd: Ray puts the driver's working directory on its workers' path
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{setting} ({tree}) failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def export(ref: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ponder-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def report(results: dict[tuple[str, str], list[dict]], args) -> str:
    local = statistics.median(r["tokens"] / r["wall_s"] for r in results[("current", "local hf")])
    lines = [f"FFS@{args.n} over {args.problems} arith problems (one at a time) and majority@{args.n} over the same "
             f"problems (all at once); tiny reasoner, hf engines, {os.cpu_count()} cores; throughput: median of "
             f"{args.rounds} rounds", "",
             "| code | engine | wasted per aborted sample: median | p95 | max | majority tok/s | vs local | "
             "vs baseline | tok per CPU-s | vs baseline | abort ms (engine holds no request) | tokens after abort |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (code, setting), rows in results.items():
        ffs = rows[0]["ffs"]
        tps = statistics.median(r["tokens"] / r["wall_s"] for r in rows)
        tpc = statistics.median(r["tokens"] / r["cpu_s"] for r in rows)
        base = results.get(("baseline", setting)) if code == "current" else None
        vs_tps = f"{tps / statistics.median(r['tokens'] / r['wall_s'] for r in base):.2f}x" if base else ""
        vs_tpc = f"{tpc / statistics.median(r['tokens'] / r['cpu_s'] for r in base):.2f}x" if base else ""
        lines.append(f"| {code} | {setting} | {ffs['median']:.2f} | {ffs['p95']:.2f} | {ffs['max']:.2f} | {tps:.0f} | "
                     f"{tps / local:.2f}x | {vs_tps} | {tpc:.0f} | {vs_tpc} | {rows[0]['abort_ms']:.1f} | "
                     f"{rows[0]['abort_tokens']:.1f} |")
    tokens = sorted({r["tokens"] for rows in results.values() for r in rows})
    lines += ["", f"majority tokens per run: {tokens} (the same in every setting: seeded sampling)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", default=None, help="a git ref whose pools run alongside (e.g. the commit before)")
    ap.add_argument("--out", default=str(HERE / "results" / "ray_pool"))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--waste", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.worker, args.problems, args.n, args.waste))))
        return
    trees = {"current": ROOT}
    if args.baseline:
        trees["baseline"] = export(args.baseline)
    plan = [("current", "local hf")] + [(code, s) for s in SETTINGS[1:] for code in trees]
    results: dict[tuple[str, str], list[dict]] = {key: [] for key in plan}
    for round_ in range(args.rounds):
        for code, setting in plan:
            row = run_worker(setting, trees[code], args, waste=round_ == 0)
            results[(code, setting)].append(row)
            print(f"round {round_ + 1}: {code} {setting}: {row['tokens'] / row['wall_s']:.0f} tok/s, "
                  f"{row['tokens'] / row['cpu_s']:.0f} tok/CPU-s"
                  + (f", FFS waste median {row['ffs']['median']:.2f} p95 {row['ffs']['p95']:.2f}" if "ffs" in row else ""),
                  flush=True)
    text = report(results, args)
    print(text)
    Path(args.out + ".md").write_text(text + "\n")
    Path(args.out + ".json").write_text(json.dumps({f"{c} | {s}": rows for (c, s), rows in results.items()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
