"""Reports: a run's summary (rich table, summary.md, summary.json) and side-by-side comparisons with plots.

``compare`` takes run directories (a sweep directory stands for its runs, in sweep order), prints
one table, writes ``compare.md`` / ``compare.json`` and ``accuracy_vs_tokens.png``: accuracy
against mean total tokens (left) and mean sequential tokens (right), one point per run, with the
runs of one sweep joined into a curve.

    ponder eval report runs/single runs/maj8 runs/ffs8      # or: python -m ponder.cli eval report ...

Besides accuracy and token means, the table scores accuracy per token the way efficient-reasoning
benchmarks do (definitions in metrics.py and docs/scores.md): ``OckScore`` (OckBench: 100 x accuracy
- 10 ln(mean total tokens / 10,000)) and ``acc<=T`` (OptimalThinkingBench-style: correct *and* at
most T total tokens). T is the same for every run of one table: ``token_threshold`` if given, else
the smallest power of two at or above the cheapest run's mean total tokens.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from ponder.eval.metrics import accuracy_within_tokens, summarize
from ponder.eval.store import CONFIG, RunDir, RunDirError, read_results, to_json, write_atomic

__all__ = ["summarize_run", "finish_run", "expand_runs", "compare", "wide_console", "rich_table", "markdown_table", "plot",
           "default_threshold", "within", "PLOT_NAME"]

PLOT_NAME = "accuracy_vs_tokens.png"
"""File name of the comparison plot."""


def summarize_run(path: str | Path) -> dict[str, Any]:
    """Metrics of a run directory, with what was run (benchmark, controller, options, model)."""
    rundir = RunDir(path)
    config = rundir.read_config()
    if config is None:
        raise RunDirError(f"{path}: no {CONFIG}; not a ponder eval run directory")
    rows, _ = read_results(rundir.results_path)
    ident = config["identity"]
    summary = {"run": str(path), "label": config.get("label", ident.get("controller")),
               **{k: ident.get(k) for k in ("benchmark", "controller", "options", "model", "engine")},
               **({"sweep": config["sweep"]} if config.get("sweep") else {})}
    summary.update(summarize(rows, ident.get("problems")))
    old = Path(path) / "summary.json"
    if old.exists():  # keep timing facts recorded by the run itself
        try:
            summary.update({k: v for k, v in json.loads(old.read_text()).items() if k in ("wall_s", "engine_tokens",
                                                                                          "tokens_per_s")})
        except ValueError:
            pass
    return summary


def finish_run(path: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summarise a run and write ``summary.json`` and ``summary.md`` into its directory."""
    summary = summarize_run(path)
    if extra:
        summary.update(extra)
        if extra.get("wall_s"):
            summary["tokens_per_s"] = extra.get("engine_tokens", 0) / extra["wall_s"]
    write_atomic(Path(path) / "summary.json", to_json(summary, indent=2) + "\n")
    write_atomic(Path(path) / "summary.md", _run_markdown(summary))
    return summary


def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: a run itself, or a sweep (or any folder) holding runs."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / CONFIG).exists():
            runs.append(p)
            continue
        order = None
        if (p / "sweep.json").exists():
            try:
                order = [p / name for name in json.loads((p / "sweep.json").read_text())["runs"]]
            except (ValueError, KeyError, TypeError):
                order = None
        if order is None:
            order = sorted(p.iterdir()) if p.is_dir() else []
        children = [c for c in order if (c / CONFIG).exists()]
        if not children:
            raise RunDirError(f"{p}: not a run directory (no {CONFIG}) and holds no runs")
        runs.extend(children)
    return runs


def _fmt(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


_COLUMNS = ("run", "setting", "problems", "accuracy", "95% CI", "tokens", "p95", "sequential", "tok/correct",
            "wasted", "OckScore", "acc<=T", "latency p50", "pass@k", "maj@k")
"""Table columns; token columns are means per problem unless named p95. Empty pass@k/maj@k are dropped;
``acc<=T`` is named with its threshold."""


def default_threshold(summaries: Sequence[dict[str, Any]]) -> int | None:
    """The smallest power of two at or above the lowest mean total tokens of the runs (None: no tokens)."""
    means = [s["total_tokens"]["mean"] for s in summaries
             if s.get("scored") and not math.isnan(s["total_tokens"]["mean"])]
    if not means or min(means) <= 0:
        return None
    return 2 ** math.ceil(math.log2(max(min(means), 1)))


def within(s: dict[str, Any], threshold: int | None) -> float | None:
    """A summary's accuracy within ``threshold`` total tokens, read off its recorded curve
    (power-of-two thresholds; another one is recomputed from the run's rows)."""
    curve = s.get("accuracy_within_tokens") or {}
    if threshold is None or not curve:
        return None
    if str(threshold) in curve:
        return curve[str(threshold)]
    keys = sorted(int(k) for k in curve)
    if threshold >= keys[-1]:
        return curve[str(keys[-1])]  # the last threshold already covers every problem
    if threshold < keys[0]:
        return 0.0  # below the cheapest problem
    rundir = RunDir(s["run"])
    rows = [r for r in read_results(rundir.results_path)[0] if not r.get("skipped") and not r.get("verifier_error")]
    return accuracy_within_tokens(rows, threshold)


def _cells(s: dict[str, Any], threshold: int | None = None) -> list[str]:
    acc = s["accuracy"]
    lo, hi = s["ci95"]
    nan = acc is None or (isinstance(acc, float) and math.isnan(acc))
    problems = f"{s['scored']}/{s['problems']}" + (f" ({len(s['skipped'])} skipped)" if s["skipped"] else "") + \
        (f" ({len(s['errors'])} errors)" if s["errors"] else "") + \
        (f" ({len(s['verifier_errors'])} verifier errors)" if s.get("verifier_errors") else "")

    def at_k(name: str) -> str:
        ks = s.get(name) or {}
        if not ks:
            return "-"
        k = max(ks, key=int)
        return f"@{k} {100 * ks[k]:.1f}%"
    return [Path(s["run"]).name, s["label"], problems, "-" if nan else f"{100 * acc:.1f}%",
            "-" if nan else f"{100 * lo:.1f}-{100 * hi:.1f}%", _fmt(s["total_tokens"]["mean"], 1),
            _fmt(s["total_tokens"]["p95"]), _fmt(s["sequential_tokens"]["mean"], 1), _fmt(s["tokens_per_correct"]),
            _fmt(s["wasted_tokens"]["mean"], 1), _fmt(s.get("ock_score"), 1), _pct(within(s, threshold)),
            _fmt(s["latency_s"]["p50"], 2) + "s", at_k("pass@k"), at_k("maj@k")]


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def _grid(summaries: Sequence[dict[str, Any]], threshold: int | None = None) -> tuple[list[str], list[list[str]]]:
    threshold = threshold if threshold is not None else default_threshold(summaries)
    rows = [_cells(s, threshold) for s in summaries]
    keep = [i for i, col in enumerate(_COLUMNS) if col not in ("pass@k", "maj@k") or any(r[i] != "-" for r in rows)]
    names = [f"acc<={threshold}" if c == "acc<=T" and threshold is not None else c for c in _COLUMNS]
    return [names[i] for i in keep], [[r[i] for i in keep] for r in rows]


def rich_table(summaries: Sequence[dict[str, Any]], title: str = "ponder eval", threshold: int | None = None) -> Any:
    """The comparison as a rich Table (token columns: means per problem; ``threshold``: of acc<=T)."""
    from rich.table import Table

    columns, rows = _grid(summaries, threshold)
    table = Table(title=title)
    for col in columns:  # the setting is what a reader looks for: never wrapped; figures shrink first
        name = col in ("run", "setting")
        table.add_column(col, justify="left" if name else "right", no_wrap=col == "setting",
                         min_width=max((len(r[columns.index(col)]) for r in rows), default=0) if col == "setting" else None)
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(summaries: Sequence[dict[str, Any]], threshold: int | None = None) -> str:
    """The comparison as a GitHub markdown table (token columns: means per problem; ``threshold``: of acc<=T)."""
    columns, rows = _grid(summaries, threshold)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _run_markdown(s: dict[str, Any]) -> str:
    out = [f"# {s['label']} on {s['benchmark']}\n", f"model `{s['model']}`, engine `{s['engine']}`, "
           f"options `{json.dumps(s['options'])}`\n"]
    if s.get("stopped"):
        out.append(f"**Stopped early**: {s['stopped']}. The rows written are kept; after a fix, "
                   f"`ponder eval ... --resume --out {s['run']}` continues.\n")
    out.append(markdown_table([s]))
    for name in ("pass@k", "maj@k"):
        if s.get(name):
            out.append(f"- {name}: " + ", ".join(f"@{k} {100 * v:.1f}%" for k, v in s[name].items()))
    out.append(f"- finish reasons: {json.dumps(s['finish_reasons'])}")
    if s.get("tokens_per_s"):
        out.append(f"- engine throughput: {s['tokens_per_s']:.0f} tokens/s over {s['wall_s']:.1f} s")
    if s["skipped"]:
        out.append(f"- skipped (gold answer not parseable): {', '.join(map(str, s['skipped']))}")
    if s["errors"]:
        out.append(f"- errors (retried by --resume): {', '.join(map(str, s['errors']))}")
    if s.get("verifier_errors"):
        out.append(f"- verifier errors (not scored; redone by --resume): {', '.join(map(str, s['verifier_errors']))}")
    return "\n".join(out) + "\n"


def plot(summaries: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Accuracy against mean total and mean sequential tokens, one point per run; sweeps as curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups: dict[str, list[dict[str, Any]]] = {}
    for s in summaries:
        sweep = s.get("sweep")
        key = f"{sweep['group']}:{sweep['key']}" if sweep and sweep["key"] != "controller" else s["run"]
        groups.setdefault(key, []).append(s)
    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, xlabel in zip(axes, ("total_tokens", "sequential_tokens"),
                                  ("mean total tokens per problem", "mean sequential tokens per problem")):
        xs_all = []
        for members in groups.values():
            members = [m for m in members if m["scored"] and not math.isnan(m[metric]["mean"])]
            if not members:
                continue
            members.sort(key=lambda m: m[metric]["mean"])
            xs = [m[metric]["mean"] for m in members]
            ys = [100 * m["accuracy"] for m in members]
            err = [[y - 100 * m["ci95"][0] for y, m in zip(ys, members)], [100 * m["ci95"][1] - y
                                                                           for y, m in zip(ys, members)]]
            sweep = members[0].get("sweep") if len(members) > 1 else None
            name = f"{members[0]['controller']} ({sweep['key']} sweep)" if sweep else members[0]["label"]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, linestyle="-" if len(members) > 1 else "none",
                        label=name)
            for x, y, m in zip(xs, ys, members) if sweep else ():  # single runs are named by the legend
                ax.annotate(str(m["sweep"]["value"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            xs_all += xs
        if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%), 95% CI")
    benchmarks = sorted({str(s["benchmark"]) for s in summaries})
    fig.suptitle(f"accuracy per token on {', '.join(benchmarks)}")
    axes[0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def wide_console() -> Any:
    """A rich Console for tables: the terminal's width, or 160 columns when output is not a terminal."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def compare(paths: Sequence[str | Path], out: str | Path | None = None, console: Any = None,
            token_threshold: int | None = None) -> dict[str, Any]:
    """Summarise runs side by side: print the table, write compare.md, compare.json and the plot.

    Args:
        paths: run directories and/or sweep directories.
        out: where the files go (default: the one directory given, else the runs' common parent).
        console: a rich Console to print to (default: stdout).
        token_threshold: T of the ``acc<=T`` column (default: `default_threshold` of the runs).

    Returns:
        ``{"summaries": [...], "markdown": path, "json": path, "plot": path}``.
    """
    runs = expand_runs(paths)
    summaries = [summarize_run(r) for r in runs]
    if out is None:
        out = Path(paths[0]) if len(paths) == 1 else Path(os.path.commonpath([str(r.resolve()) for r in runs]))
        if (out / CONFIG).exists() and len(runs) > 1:
            out = out.parent
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "compare.md", out / "compare.json"
    write_atomic(md, "# ponder eval comparison\n\n" + markdown_table(summaries, token_threshold))
    write_atomic(js, to_json(summaries, indent=2) + "\n")
    png = plot(summaries, out / PLOT_NAME)
    console = console or wide_console()
    console.print(rich_table(summaries, threshold=token_threshold))
    console.print(f"table: {md}\nplot: {png}")
    return {"summaries": summaries, "markdown": md, "json": js, "plot": png}
