"""Ray pool benchmark: the same majority@8 work on a local engine and on 1- and 2-actor pools.

Every setting runs majority@8 (T=0.7) over the same 64 arith problems on the tiny reasoner with
hf engines, in one run: tokens per second (the engines' own counts), the pool's overhead as a
ratio to the local engine, and abort latency across the process boundary (ms from closing a
stream until the actor confirms its engine stopped, and tokens decoded after the abort).

On this 2-core machine the 2-actor pool gives each actor one core while the local engine uses
both, so the 2-actor figure measures the pool's spreading, not a speed-up; on a GPU cluster each
actor holds its own device.

    python bench/ray_pool.py [--problems 64] [--n 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines import abort_latency  # noqa: E402

from ponder.controllers import Majority, Sampling  # noqa: E402
from ponder.engines import make_engine  # noqa: E402
from ponder.benchmarks.registry import load_problems  # noqa: E402
from ponder.prompts import family_for, render  # noqa: E402
from ponder.verifiers import get_verifier  # noqa: E402


async def majority_work(engine, items, n: int) -> tuple[float, int, float]:
    """(seconds, tokens the engine counted, accuracy) for majority@n over ``items``."""
    ctrl = Majority(n=n, sampling=Sampling(temperature=0.7, max_tokens=300, seed=0))
    verifier = get_verifier("integer")
    before = engine.stats.generated_tokens
    start = time.perf_counter()
    sols = await asyncio.gather(*(ctrl.run(p, engine, verifier=verifier) for p in items))
    wall = time.perf_counter() - start
    acc = sum(bool(s.answer is not None and verifier.verify(p.gold, s.answer)) for s, p in zip(sols, items)) / len(items)
    return wall, engine.stats.generated_tokens - before, acc


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    items = load_problems("arith", None, args.problems)  # the held-out seed-1 set
    cores = os.cpu_count() or 2
    settings = [("local hf", lambda: make_engine("hf", threads=cores)),
                ("ray, 1 actor", lambda: make_engine("ray", engine="hf", actors=1, num_cpus=cores)),
                ("ray, 2 actors", lambda: make_engine("ray", engine="hf", actors=2, num_cpus=max(1, cores // 2)))]
    rows = []
    for name, make in settings:
        start = time.perf_counter()
        engine = make()
        ready = time.perf_counter() - start
        ids = render(engine.tokenizer, items[0].prompt, family_for(engine.tokenizer, engine.model_name))
        await majority_work(engine, items[:4], args.n)  # warm-up
        wall, tokens, acc = await majority_work(engine, items, args.n)
        abort_ms, after = await abort_latency(engine, ids)
        rows.append((name, ready, wall, tokens, acc, abort_ms, after))
        await engine.aclose()
        print(f"{name}: {tokens / wall:.0f} tok/s, {wall:.1f}s, abort {abort_ms:.1f} ms", flush=True)
    base = rows[0][3] / rows[0][2]
    table = Table(title=f"majority@{args.n} over {args.problems} arith problems, tiny reasoner, hf engines, {cores} cores")
    for col in ("engine", "start s", "wall s", "tokens", "tok/s", "vs local", "accuracy", "abort ms", "tokens after abort"):
        table.add_column(col, justify="right")
    for name, ready, wall, tokens, acc, abort_ms, after in rows:
        table.add_row(name, f"{ready:.1f}", f"{wall:.1f}", str(tokens), f"{tokens / wall:.0f}",
                      f"{tokens / wall / base:.2f}x", f"{acc:.1%}", f"{abort_ms:.1f}", f"{after:.1f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    asyncio.run(main())
