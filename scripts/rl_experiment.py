"""RL experiments with a result file behind every claim: S-GRPO vs GRPO over seeds, per-run files.

For each algorithm and seed it trains ``--model`` with ``recipes/tiny-sgrpo.yaml`` (or ``--recipe``) (seed, model and
any ``key=value`` overrides applied; both algorithms get the same steps, batch, group size, learning
rate and temperature), then measures the final policy and the untrained model on held-out arith
problems, which share no problem with the training set (`ponder.benchmarks.arith.training_problems`,
asserted here): greedy and one T=0.7 sample per problem. Every model is sampled with its own
evaluation seeds, so equal figures cannot come from shared sampling noise. For each run it writes
``bench/results/rl/<name>/<run>/``:

- ``config.json``: the training config, seed, overrides and training wall time;
- ``log.jsonl``: the per-step training log (reward, loss, S-GRPO exit statistics, ``step_time``);
- ``eval.jsonl``: the held-out evaluations made during training;
- ``heldout.jsonl``: one row per problem and mode (greedy / sampled): answer, correct, thinking tokens;
- ``summary.json``: the aggregates of ``heldout.jsonl``;
- with ``--shared-seed S``: ``heldout_shared.jsonl`` and ``summary_shared.json``, the same
  measurement with seeds every model shares (the first demonstration's setting).

A run whose ``summary.json`` exists is skipped, so an interrupted experiment continues; ``--jobs 2``
trains two runs at a time.
``scripts/rl_report.py`` turns these files into the tables and plots of docs/rl.md.

    python scripts/rl_experiment.py --name verbose --model tiny-reasoner-verbose --seeds 0,1,2
    python scripts/rl_experiment.py --name tiny --seeds 0 eval_steps=25     # the default organism
    python scripts/rl_experiment.py --name ulorl-vllm --recipe recipes/tiny-ulorl.yaml --algos grpo --seeds 0 engine=vllm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "rl"
RECIPE = ROOT / "recipes" / "tiny-sgrpo.yaml"


def eval_seed(run: str) -> int:
    """A per-model base seed for sampled evaluations (problem i uses base + i)."""
    return 1_000_000 + (zlib.crc32(run.encode()) % 1000) * 1000


def held_out(n: int, model: str, overrides: list[str], recipe: Path) -> list:
    """The held-out problems, checked against the training set the recipe would use."""
    from ponder.benchmarks.registry import load_problems
    from ponder.rl.train import load_config, load_training_problems

    problems = load_problems("arith", None, n)
    train = load_training_problems(load_config(recipe, overrides, model=model))
    shared = {p.prompt for p in problems} & {p.prompt for p in train}
    if shared:
        raise SystemExit(f"held-out problems occur in the training set: {sorted(shared)[:5]}")
    return problems


def train_all(jobs: list[tuple[str, int, Path]], args) -> dict[Path, float]:
    """Train every (algo, seed, output dir), ``args.jobs`` at a time; returns the wall time of each.

    With more than one job each process gets one thread: the tiny model's decode loop is bound by
    Python, so two one-thread trainings do nearly twice the work of one two-thread training."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if args.jobs > 1 else None
    pending, running, walls = list(jobs), {}, {}
    while pending or running:
        while pending and len(running) < args.jobs:
            algo, seed, out = pending.pop(0)
            cmd = [sys.executable, "-m", "ponder.cli", "train", algo, "--config", str(args.recipe), f"model={args.model}",
                   f"seed={seed}", f"output_dir={out}", *args.overrides]
            print("$", " ".join(cmd), flush=True)
            out.mkdir(parents=True, exist_ok=True)
            log = (out / "train.log").open("w")
            running[out] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), time.perf_counter(), log)
        time.sleep(2)
        for out, (proc, start, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[out]
                if proc.returncode:
                    raise SystemExit(f"training failed (exit {proc.returncode}): see {out / 'train.log'}")
                walls[out] = round(time.perf_counter() - start, 1)
                print(f"trained {out} in {walls[out]:.0f}s", flush=True)
    return walls


def measure(model_path: str, run: str, problems: list, dest: Path, seed: int | None = None) -> dict:
    """Measure one model; with ``seed`` (shared by every model) write ``*_shared`` files instead."""
    from ponder.engines.hf import HFEngine
    from ponder.rl.evaluate import measure_rows, summarize

    base = eval_seed(run) if seed is None else seed
    suffix = "" if seed is None else "_shared"

    async def run_all() -> list[dict]:
        engine = HFEngine(model_path, max_batch=64)
        try:
            return await measure_rows(engine, problems, temperature=0.7, seed=base)
        finally:
            await engine.aclose()

    rows = asyncio.run(run_all())
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / f"heldout{suffix}.jsonl").open("w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    summary = {"run": run, "eval_seed": base, **summarize(rows)}
    (dest / f"summary{suffix}.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{run}{suffix}: {json.dumps(summary)}", flush=True)
    return summary


def measure_both(model_path: str, run: str, problems: list, dest: Path, args) -> None:
    """Own evaluation seeds, and (with ``--shared-seed``) the seeds every model shares."""
    if args.shared_seed is not None:
        measure(model_path, run, problems, dest, seed=args.shared_seed)
    measure(model_path, run, problems, dest)


def record(algo: str, seed: int, args, problems: list, wall: float | None) -> None:
    """Copy the run's logs, write its config, and measure its final model."""
    from ponder.rl.train import load_config

    run = f"{algo}-s{seed}"
    dest, out = RESULTS / args.name / run, Path(args.runs) / args.name / run
    cfg = load_config(args.recipe, [*args.overrides, f"algo={algo}", f"seed={seed}", f"output_dir={out}"], model=args.model)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("log.jsonl", "eval.jsonl"):
        if (out / name).exists():
            shutil.copy(out / name, dest / name)
    (dest / "config.json").write_text(json.dumps({"algo": algo, "seed": seed, "model": args.model, "recipe": str(args.recipe.relative_to(ROOT)),
                                                  "overrides": args.overrides, "train_wall_s": wall,
                                                  "config": vars(cfg)}, indent=1, default=str) + "\n")
    measure_both(str(out / "final"), f"{args.name}/{run}", problems, dest, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="Experiment name: bench/results/rl/<name>/.")
    ap.add_argument("--model", default="tiny-reasoner", help="Starting model (tiny-reasoner, tiny-reasoner-verbose, a path).")
    ap.add_argument("--algos", default="sgrpo,grpo")
    ap.add_argument("--recipe", type=Path, default=RECIPE, help="Training recipe (e.g. recipes/tiny-ulorl.yaml).")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--problems", type=int, default=500, help="Held-out problems of the final measurement.")
    ap.add_argument("--runs", default="runs/rl", help="Where the trainings write checkpoints (not committed).")
    ap.add_argument("--skip-train", action="store_true", help="Measure runs already under --runs.")
    ap.add_argument("--shared-seed", type=int, default=None,
                    help="Also measure every model with these evaluation seeds (summary_shared.json): "
                         "the demonstration's setting, to see what shared sampling noise does.")
    ap.add_argument("--jobs", type=int, default=1, help="Trainings at a time (each gets one thread when > 1).")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the recipe, for every run.")
    args = ap.parse_args()
    args.recipe = args.recipe.resolve()
    from ponder.engines import resolve_model

    problems = held_out(args.problems, args.model, args.overrides, args.recipe)
    base = RESULTS / args.name / "before"
    if not (base / "summary.json").exists():
        measure_both(resolve_model(args.model), f"{args.name}/before", problems, base, args)
    todo = [(algo, int(seed)) for seed in args.seeds.split(",") if seed.strip()
            for algo in (a.strip() for a in args.algos.split(",")) if algo]
    todo = [(a, s) for a, s in todo if not (RESULTS / args.name / f"{a}-s{s}" / "summary.json").exists()]
    outs = {(a, s): Path(args.runs) / args.name / f"{a}-s{s}" for a, s in todo}
    walls = {} if args.skip_train else train_all([(a, s, outs[a, s]) for a, s in todo], args)
    for a, s in todo:
        record(a, s, args, problems, walls.get(outs[a, s]))


if __name__ == "__main__":
    main()
