"""Controller benchmark: accuracy and token accounting of every strategy on the arithmetic set.

The tiny reasoner answers the same held-out `arith` problems under each controller in one run
(hf engine, T=0.7, seeded), and every figure is also printed as a ratio to majority@8 measured in
the same run. The probing controller (both rules, alone and under FFS@8) is checked against its
goals (ratios to single and FFS@8 from the same run), and swept over ``interval`` / ``threshold``
for an accuracy-vs-tokens plot.

    python bench/controllers.py [--problems 200] [--engine hf] [--out bench/results/controllers.md]
    python bench/controllers.py --problems 40 --only "single,FFS@8,probe*"   # a quick subset
    python bench/controllers.py --model tiny-qwen3 --budgets 16,32,48 --out bench/results/controllers_qwen3.md

``--out X.md`` also writes ``X.json`` (every row) and ``X.png`` (accuracy vs mean total tokens).
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
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
    "DeepConf@8": ("deepconf", {"n": 8}),
    "probe consistent": ("probe", {"rule": "consistent"}),
    "probe confidence": ("probe", {"rule": "confidence"}),
    "FFS@8 probe consistent": ("ffs", {"n": 8, "sample": "probe", "rule": "consistent"}),
    "FFS@8 probe confidence": ("ffs", {"n": 8, "sample": "probe", "rule": "confidence"}),
    # adaptive stopping (#25); over probed samples (the probe's defaults: rule consistent, interval 16),
    # as `ponder solve -c adaptive -o sample=probe ...` spells it
    "adaptive beta@8": ("adaptive", {"n": 8, "rule": "beta"}),
    "adaptive beta@8 wave=4": ("adaptive", {"n": 8, "rule": "beta", "wave": 4}),
    "adaptive dirichlet@8 wave=4": ("adaptive", {"n": 8, "rule": "dirichlet", "wave": 4}),
    "adaptive certain@8 wave=4": ("adaptive", {"n": 8, "rule": "certain", "wave": 4}),
    "adaptive window=3@8 wave=3": ("adaptive", {"n": 8, "rule": "window", "window": 3, "wave": 3}),
    "adaptive beta@8 wave=4 probe": ("adaptive", {"n": 8, "rule": "beta", "wave": 4, "sample": "probe"}),
    "adaptive beta=0.9@8 wave=3 probe": ("adaptive", {"n": 8, "rule": "beta", "threshold": 0.9, "wave": 3,
                                                      "sample": "probe"}),
    "adaptive window=3@8 wave=3 probe": ("adaptive", {"n": 8, "rule": "window", "window": 3, "wave": 3,
                                                      "sample": "probe"}),
    "adaptive window=2@8 wave=2 probe": ("adaptive", {"n": 8, "rule": "window", "window": 2, "wave": 2,
                                                      "sample": "probe"}),
}
SWEEPS: dict[str, tuple[str, list]] = {
    "probe consistent": ("interval", [8, 32]),  # with the default row (16): a curve
    "probe confidence": ("threshold", [0.5, 0.99, 0.997, 0.999]),  # with the default row (0.95)
}
"""Extra single-sample probe rows: setting label -> (option, values)."""
GOALS = [  # (row, baseline, least accuracy or None: above the baseline's, most total tokens vs the baseline)
    ("probe consistent", "single", 0.85, 0.8), ("probe confidence", "single", 0.85, 0.8),
    ("FFS@8 probe consistent", "FFS@8", None, 1.0), ("FFS@8 probe confidence", "FFS@8", None, 1.0),
]


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


def settings(budgets: tuple[int, ...] = (64, 96, 128)) -> dict[str, tuple[str, dict]]:
    """Every row: the settings (budget forcing at each of ``budgets``), then the probe sweeps."""
    rows = {}
    for label, setting in SETTINGS.items():
        rows[label] = setting
        if label == "LFS-3@8":
            rows.update({f"budget {b}": ("budget_forcing", {"max_thinking_tokens": b}) for b in budgets})
    for label, (key, values) in SWEEPS.items():
        name, options = SETTINGS[label]
        rows.update({f"{label} {key}={v}": (name, {**options, key: v}) for v in values})
    return rows


async def main_async(args) -> dict[str, dict]:
    engine = make_engine(args.engine, model=args.model)
    if hasattr(engine, "start"):
        await engine.start()
    items = load_problems("arith", None, args.problems)  # the held-out seed-1 set
    rows = {}
    patterns = [p.strip() for p in args.only.split(",")] if args.only else ["*"]
    for label, (name, options) in settings(tuple(int(b) for b in args.budgets.split(","))).items():
        if not any(fnmatch.fnmatch(label, p) for p in patterns):
            continue
        rows[label] = await run_setting(engine, name, options, items, args.concurrency)
        r = rows[label]
        print(f"{label}: accuracy {r['accuracy']:.3f} total {r['total']:.0f} sequential {r['sequential']:.0f} "
              f"wall {r['wall']:.0f}s", flush=True)
    await engine.aclose()
    return rows


def render(rows: dict[str, dict], n: int, model: str = "tiny reasoner") -> tuple[Table, str]:
    base = rows.get("majority@8") or next(iter(rows.values()))
    table = Table(title=f"controllers on {n} arith problems ({model}, T=0.7; ratios vs majority@8)")
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


def goals(rows: dict[str, dict]) -> list[str]:
    """One line per probe goal: met or missed, with the ratios to its baseline from the same run."""
    lines = []
    for label, base_label, least, most in GOALS:
        if label not in rows or base_label not in rows:
            continue
        r, base = rows[label], rows[base_label]
        ratio = r["total"] / base["total"]
        floor = least if least is not None else base["accuracy"]
        acc_ok = r["accuracy"] >= floor if least is not None else r["accuracy"] > floor
        want = f"accuracy {'>=' if least is not None else '>'} {100 * floor:.1f}%, total <= {most:.2f}x {base_label}"
        verdict = "met" if acc_ok and ratio <= most else "missed"
        lines.append(f"- {label}: {100 * r['accuracy']:.1f}% at {ratio:.2f}x {base_label}'s total tokens "
                     f"({r['total']:.0f} vs {base['total']:.0f}); goal {want}: **{verdict}**")
    return lines


ADAPTIVE_GOAL = ("majority@8", 0.01, 0.4)
"""Adaptive rows (#25): accuracy at most 1 point below majority@8's, at <= 0.4x its mean total tokens."""


def adaptive_goals(rows: dict[str, dict]) -> list[str]:
    """One line per adaptive row: the #25 goal met or missed, with ratios to majority@8 from the same run."""
    base_label, slack, most = ADAPTIVE_GOAL
    if base_label not in rows:
        return []
    base, lines = rows[base_label], []
    for label, r in rows.items():
        if not label.startswith("adaptive"):
            continue
        ratio, floor = r["total"] / base["total"], base["accuracy"] - slack
        verdict = "met" if r["accuracy"] >= floor - 1e-9 and ratio <= most else "missed"
        lines.append(f"- {label}: {100 * r['accuracy']:.1f}% at {ratio:.2f}x {base_label}'s total tokens "
                     f"({r['total']:.0f} vs {base['total']:.0f}); goal accuracy >= {100 * floor:.1f}%, "
                     f"total <= {most:.2f}x {base_label}: **{verdict}**")
    return lines


def plot(rows: dict[str, dict], n: int, path: Path, model: str = "tiny reasoner") -> None:
    """Accuracy against mean total tokens: one point per setting, the probe sweeps as curves."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    curves = set()
    palette = matplotlib.colormaps["tab20"].colors
    for i, (label, (key, values)) in enumerate(SWEEPS.items()):
        points = [(label, SETTINGS[label][1].get(key, _default(label, key)))] + [(f"{label} {key}={v}", v) for v in values]
        points = sorted((rows[p]["total"], 100 * rows[p]["accuracy"], v) for p, v in points if p in rows)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{label} ({key} sweep)",
                    color=palette[2 * i])
            names: dict[tuple, list] = {}  # equal points share one label
            for x, y, v in points:
                names.setdefault((round(x, 1), round(y, 1)), []).append(str(v))
            for (x, y), vs in names.items():
                ax.annotate(f"{key}={','.join(vs)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            curves |= {label} | {f"{label} {key}={v}" for v in values}
    colors = iter(palette[2 * len(SWEEPS):] * 2)  # the first ones went to the curves
    for label, r in rows.items():
        if label not in curves:
            ax.plot([r["total"]], [100 * r["accuracy"]], marker="s" if "probe" in label else "^", linestyle="none",
                    color=next(colors), label=label)
    ax.set_xscale("log")
    ax.set_xlabel("mean total tokens per problem (probe tokens included)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"controllers on {n} arith problems ({model}, T=0.7)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _default(label: str, key: str):
    from ponder.controllers import get_controller

    name, options = SETTINGS[label]
    return getattr(get_controller(name, **options), key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--engine", default="hf")
    ap.add_argument("--model", default=None, help="model name or path (default: the tiny reasoner)")
    ap.add_argument("--budgets", default="64,96,128", help="budget forcing rows: thinking caps, comma-separated")
    ap.add_argument("--concurrency", type=int, default=8, help="problems in flight (x8 samples each)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown here (+ .json, .png)")
    ap.add_argument("--only", default=None, help="comma-separated labels or patterns of the settings to run")
    args = ap.parse_args()
    rows = asyncio.run(main_async(args))
    model = args.model or "tiny reasoner"
    table, md = render(rows, args.problems, model)
    Console(width=200).print(table)
    lines = goals(rows) + adaptive_goals(rows)
    print("\n".join(lines))
    if args.out:
        args.out.write_text(md + ("\nGoals (ratios to the baseline measured in the same run):\n\n"
                                  + "\n".join(lines) + "\n" if lines else ""))
        args.out.with_suffix(".json").write_text(json.dumps({"problems": args.problems, "model": model, "engine": args.engine,
                                                             "rows": rows}, indent=1) + "\n")
        plot(rows, args.problems, args.out.with_suffix(".png"), model)


if __name__ == "__main__":
    main()
