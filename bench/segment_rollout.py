"""UloRL segment-rollout benchmark: real TRL GRPO steps with 1, 2 and 4 segments, same samples.

Each setting trains the tiny reasoner from the same start for the same steps (prompts x group
per step), with ``max_completion_length`` as the global maximum and ``segment_tokens`` =
maximum / segments. Rollouts at temperature 1.0 give the tiny reasoner a long-tailed length
distribution (its p50/p95/max are printed). Reports step wall time and trained samples per second
as ratios against 1 segment from the same run, plus the final reward and held-out accuracy,
to show the speed is not bought with learning.

    python bench/segment_rollout.py [--steps 12] [--prompts 4] [--group 8] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def run(segments: int, args, out: Path) -> dict:
    from ponder.engines.hf import HFEngine
    from ponder.benchmarks.registry import load_problems
    from ponder.rl.evaluate import measure
    from ponder.rl.train import TrainConfig, train

    cfg = TrainConfig(algo="grpo", limit=2000, num_generations=args.group, prompts_per_step=args.prompts,
                      max_steps=args.steps, learning_rate=2e-5, lr_scheduler="constant", temperature=1.0,
                      max_completion_length=args.max_tokens, segment_tokens=args.max_tokens // segments,
                      save_steps=10**6, output_dir=str(out / f"seg{segments}"), seed=0)
    start = time.perf_counter()
    trainer = train(cfg)
    wall = time.perf_counter() - start
    logs = [h for h in trainer.state.log_history if "loss" in h]
    rollout = trainer.rollout_func
    held_out = load_problems("arith", None, args.eval_problems)  # the held-out seed-1 set
    acc = asyncio.run(measure(HFEngine.from_model(trainer.model.eval(), trainer.processing_class), held_out))
    samples = args.steps * args.prompts * args.group
    return {"segments": segments, "wall_s": wall, "step_s": statistics.mean(h["step_time"] for h in logs),
            "samples_per_s": samples / sum(h["step_time"] for h in logs),
            "reward_last": statistics.mean(h["reward"] for h in logs[-max(1, len(logs) // 3):]),
            "carried": sum(h.get("ulorl/carried_samples", 0) for h in logs),
            "sequential": statistics.mean(h["ulorl/sequential_tokens"] for h in logs),
            "lengths": rollout.lengths, **acc}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--eval-problems", type=int, default=128)
    ap.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(k, args, Path(tmp)) for k in (1, 2, 4)]
    base = results[0]
    lengths = sorted(x for r in results for x in r["lengths"])
    q = lambda f: lengths[min(len(lengths) - 1, int(f * len(lengths)))]  # noqa: E731
    table = Table(title=f"GRPO on TRL, {args.steps} steps x {args.prompts} prompts x {args.group} samples "
                        f"(max {args.max_tokens} tokens); lengths p50 {q(0.5)} / p95 {q(0.95)} / max {lengths[-1]}")
    for col in ("segments", "step s", "vs 1 seg", "samples/s", "vs 1 seg", "decode positions/step", "vs 1 seg",
                "carried", "reward (last third)", "greedy acc", "T=0.7 acc"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r["segments"]), f"{r['step_s']:.2f}", f"{base['step_s'] / r['step_s']:.2f}x faster",
                      f"{r['samples_per_s']:.1f}", f"{r['samples_per_s'] / base['samples_per_s']:.2f}x",
                      f"{r['sequential']:.0f}", f"{r['sequential'] / base['sequential']:.2f}x",
                      str(r["carried"]), f"{r['reward_last']:.3f}", f"{r['greedy_accuracy']:.1%}",
                      f"{r['sampled_accuracy']:.1%}")
    Console(width=160).print(table)
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "lengths"} for r in results]
                                        + [{"p50": q(0.5), "p95": q(0.95), "max": lengths[-1]}], indent=2))


if __name__ == "__main__":
    main()
