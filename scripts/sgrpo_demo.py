"""The S-GRPO demonstration: train the tiny reasoner with S-GRPO and, on the same budget, plain GRPO;
measure both (and the untrained model) on 500 held-out arith problems, greedy and at T=0.7.

    python scripts/sgrpo_demo.py                      # both trainings, then the measurement (~45 min on 2 cores)
    python scripts/sgrpo_demo.py --skip-train         # re-measure and re-plot existing runs
    python scripts/sgrpo_demo.py --algos sgrpo --out runs/sgrpo-demo-vllm engine=vllm   # S-GRPO rollouts in vLLM

Writes ``<out>/results.json``, ``<out>/results.md`` (the before/after table) and
``<out>/curves.png`` (held-out accuracy and thinking tokens over training steps, from each run's
``eval.jsonl``). Training settings come from ``recipes/tiny-sgrpo.yaml``; both algorithms get the
same steps, prompts per step, group size, learning rate and temperature.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train(algo: str, out: Path, overrides: list[str]) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "ponder.cli", "train", algo, "--config", str(ROOT / "recipes/tiny-sgrpo.yaml"),
           f"output_dir={out}", *overrides]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def measure_all(models: dict[str, str], n: int) -> dict[str, dict]:
    from ponder.engines.hf import HFEngine
    from ponder.benchmarks.registry import load_problems
    from ponder.rl.evaluate import measure

    held_out = load_problems("arith", None, n)  # the held-out seed-1 set
    results = {}
    for name, path in models.items():
        start = time.perf_counter()
        engine = HFEngine(path, max_batch=64)
        results[name] = asyncio.run(measure(engine, held_out, temperature=0.7, seed=10_000))
        print(f"{name}: {json.dumps(results[name])} ({time.perf_counter() - start:.0f}s)", flush=True)
    return results


def table(results: dict[str, dict], base: str = "before") -> str:
    b = results[base]
    lines = ["| model | greedy accuracy | greedy thinking tokens | T=0.7 accuracy | T=0.7 thinking tokens |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        def cell(key: str, pct: bool) -> str:
            value = f"{r[key]:.1%}" if pct else f"{r[key]:.1f}"
            if name == base:
                return value
            delta = r[key] - b[key]
            return (f"{value} ({delta * 100:+.1f} pts)" if pct else f"{value} ({delta / b[key]:+.1%})")
        lines.append(f"| {name} | {cell('greedy_accuracy', True)} | {cell('greedy_thinking_tokens', False)} | "
                     f"{cell('sampled_accuracy', True)} | {cell('sampled_thinking_tokens', False)} |")
    return "\n".join(lines)


def plot(runs: dict[str, Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ponder.rl.evaluate import read_eval_log

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in runs.items():
        rows = read_eval_log(run / "eval.jsonl")
        steps = [r["step"] for r in rows]
        for kind, style in (("greedy", "-"), ("sampled", "--")):
            label = f"{name} {'greedy' if kind == 'greedy' else 'T=0.7'}"
            axes[0].plot(steps, [100 * r[f"{kind}_accuracy"] for r in rows], style, marker="o", ms=3, label=label)
            axes[1].plot(steps, [r[f"{kind}_thinking_tokens"] for r in rows], style, marker="o", ms=3, label=label)
    axes[0].set(xlabel="training step", ylabel="held-out accuracy (%)", title="accuracy")
    axes[1].set(xlabel="training step", ylabel="mean thinking tokens", title="thinking length")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("tiny reasoner: S-GRPO vs GRPO (held-out arith, evaluated during training)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/sgrpo-demo", help="Directory of the two runs and the results.")
    ap.add_argument("--problems", type=int, default=500, help="Held-out problems of the final measurement.")
    ap.add_argument("--skip-train", action="store_true", help="Use the runs already in --out.")
    ap.add_argument("--algos", default="sgrpo,grpo", help="Comma-separated algorithms to train and measure.")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the recipe, for both algorithms.")
    args = ap.parse_args()
    out = Path(args.out)
    names = {"sgrpo": "S-GRPO", "grpo": "GRPO"}
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    if not algos or any(a not in names for a in algos):
        ap.error(f"--algos: choose from {sorted(names)} (got {args.algos!r})")
    runs = {names[a]: out / a for a in algos}
    walls = {}
    if not args.skip_train:
        for (name, run), algo in zip(runs.items(), algos):
            walls[name] = round(train(algo, run, args.overrides), 1)
    from ponder.engines import TINY_REASONER

    results = measure_all({"before": TINY_REASONER, **{k: str(v / "final") for k, v in runs.items()}}, args.problems)
    md = table(results)
    print(md)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"results": results, "train_wall_s": walls,
                                                  "overrides": args.overrides}, indent=2))
    (out / "results.md").write_text(md + "\n")
    plot(runs, out / "curves.png")
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'curves.png'}")


if __name__ == "__main__":
    main()
