"""Controller benchmark: accuracy and token accounting of every strategy on the arithmetic set.

The tiny reasoner answers the same held-out `arith` problems under each controller in one run
(hf engine, T=0.7, seeded), and every figure is also printed as a ratio to majority@8 measured in
the same run.

    python bench/controllers.py [--problems 200] [--engine hf] [--out bench/controllers.md]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ponder.controllers import get_controller
from ponder.engines import make_engine
from ponder.benchmarks.registry import load_problems
from ponder.verifiers import judge
from ponder.types import Problem
from ponder.verifiers import get_verifier

SETTINGS: dict[str, tuple[str, dict]] = {
    "single": ("single", {}),
    "majority@8": ("majority", {"n": 8}),
    "FFS@8": ("ffs", {"n": 8}),
    "FFS-3@8": ("ffs", {"n": 8, "k": 3}),
    "LFS-3@8": ("ffs", {"n": 8, "k": 3, "mode": "last"}),
    "budget 64": ("budget_forcing", {"max_thinking_tokens": 64}),
    "budget 96": ("budget_forcing", {"max_thinking_tokens": 96}),
    "budget 128": ("budget_forcing", {"max_thinking_tokens": 128}),
    "DeepConf@8": ("deepconf", {"n": 8}),
}


async def run_setting(engine, name: str, options: dict, items: list[Problem], concurrency: int) -> dict:
    verifier = get_verifier("integer")
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, problem: Problem):
        controller = get_controller(name, temperature=0.7, top_p=1.0, max_tokens=400, seed=1000 * i, **options)
        async with gate:
            sol = await controller.run(problem, engine, verifier=verifier)
        return sol, judge(sol, problem.gold, verifier)

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i, p) for i, p in enumerate(items)))
    wall = time.perf_counter() - start
    return {
        "accuracy": statistics.mean(bool(ok) for _, ok in results),
        "total": statistics.mean(s.total_tokens for s, _ in results),
        "sequential": statistics.mean(s.sequential for s, _ in results),
        "wasted": statistics.mean(s.wasted_tokens for s, _ in results),
        "wall": wall,
    }


async def main_async(args) -> dict[str, dict]:
    engine = make_engine(args.engine)
    items = load_problems("arith", None, args.problems)  # the held-out seed-1 set
    rows = {}
    for label, (name, options) in SETTINGS.items():
        rows[label] = await run_setting(engine, name, options, items, args.concurrency)
        r = rows[label]
        print(f"{label}: accuracy {r['accuracy']:.3f} total {r['total']:.0f} sequential {r['sequential']:.0f} "
              f"wall {r['wall']:.0f}s", flush=True)
    await engine.aclose()
    return rows


def render(rows: dict[str, dict], n: int) -> tuple[Table, str]:
    base = rows["majority@8"]
    table = Table(title=f"controllers on {n} arith problems (tiny reasoner, T=0.7; ratios vs majority@8)")
    cols = ("controller", "accuracy", "mean total tokens", "mean sequential tokens", "mean wasted", "wall s")
    for col in cols:
        table.add_column(col, justify="right")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for label, r in rows.items():
        cells = [label, f"{100 * r['accuracy']:.1f}% ({r['accuracy'] / max(base['accuracy'], 1e-9):.2f}x)",
                 f"{r['total']:.0f} ({r['total'] / base['total']:.2f}x)",
                 f"{r['sequential']:.0f} ({r['sequential'] / base['sequential']:.2f}x)",
                 f"{r['wasted']:.1f}", f"{r['wall']:.0f} ({r['wall'] / base['wall']:.2f}x)"]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    return table, "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--engine", default="hf")
    ap.add_argument("--concurrency", type=int, default=8, help="problems in flight (x8 samples each)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = ap.parse_args()
    rows = asyncio.run(main_async(args))
    table, md = render(rows, args.problems)
    Console(width=200).print(table)
    if args.out:
        args.out.write_text(md)


if __name__ == "__main__":
    main()
