"""Rollout benchmark: tokens generated and wall time per training step, S-GRPO versus GRPO.

Both build groups of the same size for the same prompts on the tiny reasoner (hf engine, one run):
GRPO samples G independent completions per prompt; S-GRPO samples one reasoning path and G-1 early
exits that share its thinking, so it should generate far fewer tokens per group.

    python bench/rollout.py [--prompts 8] [--group 8] [--steps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from rich.console import Console
from rich.table import Table

from ponder.engines import complete
from ponder.engines.hf import HFEngine
from ponder.benchmarks.arith import problems
from ponder.prompts import FAMILIES, render
from ponder.rl.sgrpo import SGRPOConfig, serial_group
from ponder.types import SamplingParams
from ponder.verifiers import get_verifier


async def grpo_step(engine, prompts, group: int, seed: int) -> None:
    params = [SamplingParams(max_tokens=400, temperature=1.0, seed=seed + j, logprobs=0) for j in range(group)]
    await asyncio.gather(*(complete(engine, ids, p) for ids in prompts for p in params))


async def sgrpo_step(engine, prompts, golds, group: int, seed: int) -> None:
    verifier, fam = get_verifier("integer"), FAMILIES["tiny"]
    await asyncio.gather(*(
        serial_group(engine, ids, fam, verifier, gold, SGRPOConfig(m=group - 1, seed=seed + i, max_tokens=400))
        for i, (ids, gold) in enumerate(zip(prompts, golds))))


async def measure(args) -> dict[str, tuple[float, float]]:
    engine = HFEngine(logprobs_mode="processed")
    out = {}
    for algo in ("grpo", "sgrpo"):
        tokens, wall = 0, 0.0
        for step in range(args.steps):
            items = problems(args.prompts * args.steps, seed=7)[step * args.prompts:(step + 1) * args.prompts]
            prompts = [render(engine.tokenizer, p.prompt, FAMILIES["tiny"]) for p in items]
            before, start = engine.stats.generated_tokens, time.perf_counter()
            if algo == "grpo":
                await grpo_step(engine, prompts, args.group, 100 * step)
            else:
                await sgrpo_step(engine, prompts, [str(p.answer) for p in items], args.group, 100 * step)
            wall += time.perf_counter() - start
            tokens += engine.stats.generated_tokens - before
        out[algo] = (tokens / args.steps, wall / args.steps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="completions per prompt (S-GRPO: m + 1)")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    res = asyncio.run(measure(args))
    base_tokens, base_wall = res["grpo"]
    table = Table(title=f"rollout per step: {args.prompts} prompts x group {args.group} (ratios vs GRPO)")
    for col in ("algorithm", "tokens generated per step", "rollout wall s per step"):
        table.add_column(col, justify="right")
    for algo, (tokens, wall) in res.items():
        table.add_row(algo, f"{tokens:.0f} ({tokens / base_tokens:.2f}x)", f"{wall:.2f} ({wall / base_wall:.2f}x)")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
