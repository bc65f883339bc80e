"""The RL tables and plots of docs/rl.md, generated from the per-run files of `scripts/rl_experiment.py`.

Reads ``bench/results/rl/<name>/<run>/{summary,config}.json``, ``log.jsonl`` and ``eval.jsonl`` and
writes ``bench/results/rl/<name>/report.md`` (the table: mean and min-max over seeds, changes
against the untrained model, the goal verdict, one row per seed) and ``curves.png`` (held-out
accuracy and thinking over training steps, every seed). With ``--docs`` it also replaces the
block between ``<!-- rl-report:<name> -->`` and ``<!-- /rl-report:<name> -->`` in docs/rl.md
(``--readme`` is an old name for it; the tables moved out of the README).

    python scripts/rl_report.py verbose tiny --docs
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rl"
DOC = ROOT / "docs" / "rl.md"
"""The page whose ``<!-- rl-report:NAME -->`` blocks ``--docs`` rewrites."""
NAMES = {"sgrpo": "S-GRPO", "grpo": "GRPO"}
METRICS = ("greedy_accuracy", "greedy_thinking_tokens", "sampled_accuracy", "sampled_thinking_tokens")


def load(name: str) -> dict[str, dict]:
    """Every run of the experiment: summary, config, training log and mean step time."""
    runs = {}
    for d in sorted((RESULTS / name).iterdir()):
        if not (d / "summary.json").exists():
            continue
        run = {"summary": json.loads((d / "summary.json").read_text())}
        if (d / "summary_shared.json").exists():
            run["shared"] = json.loads((d / "summary_shared.json").read_text())
        if (d / "config.json").exists():
            run["config"] = json.loads((d / "config.json").read_text())
        log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()] if (d / "log.jsonl").exists() else []
        steps = [r for r in log if "step_time" in r]
        run["step_s"] = statistics.mean(r["step_time"] for r in steps) if steps else None
        run["thirds"] = [steps[i * len(steps) // 3:(i + 1) * len(steps) // 3] for i in range(3)]
        tail = steps[-max(len(steps) // 3, 1):]
        run["exit_correct"] = statistics.mean(r["sgrpo/exit_correct"] for r in tail) if tail and "sgrpo/exit_correct" in tail[0] else None
        run["evals"] = [json.loads(x) for x in (d / "eval.jsonl").read_text().splitlines()] if (d / "eval.jsonl").exists() else []
        runs[d.name] = run
    if "before" not in runs:
        raise SystemExit(f"{RESULTS / name}: no before/summary.json (run scripts/rl_experiment.py --name {name})")
    return runs


def by_algo(runs: dict[str, dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for key, run in runs.items():
        m = re.fullmatch(r"(\w+)-s(\d+)", key)
        if m:
            groups.setdefault(m.group(1), []).append(run)
    return groups


def cell(values: list[float], base: float, pct: bool) -> str:
    mean = statistics.mean(values)
    spread = f" [{min(values):.1%}–{max(values):.1%}]" if pct else f" [{min(values):.1f}–{max(values):.1f}]"
    spread = spread if len(values) > 1 else ""
    if pct:
        return f"{mean:.1%} ({(mean - base) * 100:+.1f} pts){spread}"
    return f"{mean:.1f} ({(mean - base) / base:+.1%}){spread}"


def verdict(groups: dict[str, list[dict]], before: dict) -> str:
    """The experiment's goal: S-GRPO cuts sampled thinking >= 30% within 2 points of accuracy; GRPO < 10%."""
    def cut(algo: str) -> tuple[float, float]:
        rs = [r["summary"] for r in groups[algo]]
        think = statistics.mean(r["sampled_thinking_tokens"] for r in rs)
        acc = statistics.mean(r["sampled_accuracy"] for r in rs)
        return 1 - think / before["sampled_thinking_tokens"], (acc - before["sampled_accuracy"]) * 100
    if "sgrpo" not in groups or "grpo" not in groups:
        return "Goal: not judged (needs both algorithms)."
    (s_cut, s_acc), (g_cut, _) = cut("sgrpo"), cut("grpo")
    ok = s_cut >= 0.30 and s_acc >= -2 and g_cut < 0.10
    return (f"Goal (S-GRPO cuts T=0.7 thinking by >= 30% within 2 points of accuracy, GRPO by < 10%): "
            f"{'met' if ok else 'not met'}. S-GRPO {s_cut:.1%} shorter ({s_acc:+.1f} pts), GRPO {g_cut:.1%} shorter.")


def table(name: str, runs: dict[str, dict], goal: bool) -> str:
    before = runs["before"]["summary"]
    groups = by_algo(runs)
    head = ["| model | seeds | greedy accuracy | greedy thinking | T=0.7 accuracy | T=0.7 thinking | s/step |",
            "|---|---|---|---|---|---|---|"]
    rows = [f"| before | – | {before['greedy_accuracy']:.1%} | {before['greedy_thinking_tokens']:.1f} | "
            f"{before['sampled_accuracy']:.1%} | {before['sampled_thinking_tokens']:.1f} | – |"]
    for algo, rs in groups.items():
        cells = [cell([r["summary"][m] for r in rs], before[m], m.endswith("accuracy")) for m in METRICS]
        steps = [r["step_s"] for r in rs if r["step_s"]]
        step_s = f"{statistics.mean(steps):.1f}" if steps else "–"
        rows.append(f"| {NAMES.get(algo, algo)} | {len(rs)} | " + " | ".join(cells) + f" | {step_s} |")
    seeds = ["", "Per seed (evaluation seed differs per model; `heldout.jsonl` has every answer):", "",
             "| run | greedy | T=0.7 | T=0.7 thinking | T=0.7 with shared seeds: accuracy, thinking | exits right (last third) |",
             "|---|---|---|---|---|---|"]
    for key, run in runs.items():
        s, sh = run["summary"], run.get("shared")
        exits = f"{run['exit_correct']:.1%}" if run.get("exit_correct") is not None else "–"
        shared = f"{sh['sampled_accuracy']:.1%}, {sh['sampled_thinking_tokens']:.2f}" if sh else "–"
        seeds.append(f"| {key} | {s['greedy_accuracy']:.1%} | {s['sampled_accuracy']:.1%} | "
                     f"{s['sampled_thinking_tokens']:.2f} | {shared} | {exits} |")
    source = f"`bench/results/rl/{name}/` (`python scripts/rl_report.py {name}`), {before['problems']} held-out problems"
    return "\n".join([source, "", *head, *rows, *(["", verdict(groups, before)] if goal else []), *seeds, *exit_lines(runs)])


def exit_lines(runs: dict[str, dict]) -> list[str]:
    """S-GRPO's exit statistics by third of training, from each run's log.jsonl."""
    lines = ["", "S-GRPO exits by third of training (`log.jsonl`): share of exits answered right, position of "
             "the earliest right exit in the path, mean reward:", "",
             "| run | exits right | earliest right exit | reward |", "|---|---|---|---|"]
    found = False
    for key, run in runs.items():
        thirds = [t for t in run.get("thirds", []) if t and "sgrpo/exit_correct" in t[0]]
        if len(thirds) < 3:
            continue
        found = True
        cells = [" / ".join(f"{fmt.format(statistics.mean(r[k] for r in t))}" for t in thirds)
                 for k, fmt in (("sgrpo/exit_correct", "{:.1%}"), ("sgrpo/first_correct_exit", "{:.0%}"), ("reward", "{:.3f}"))]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines if found else []


def plot(name: str, runs: dict[str, dict]) -> Path | None:
    """Held-out curves of every run that evaluated during training (None: none did)."""
    if not any(run["evals"] for run in runs.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"sgrpo": "tab:blue", "grpo": "tab:orange"}
    for key, run in runs.items():
        m = re.fullmatch(r"(\w+)-s(\d+)", key)
        if not m or not run["evals"]:
            continue
        steps = [e["step"] for e in run["evals"]]
        label = f"{NAMES.get(m.group(1), m.group(1))} seed {m.group(2)}"
        axes[0].plot(steps, [100 * e["sampled_accuracy"] for e in run["evals"]], color=colors.get(m.group(1)), alpha=0.8, label=label)
        axes[1].plot(steps, [e["sampled_thinking_tokens"] for e in run["evals"]], color=colors.get(m.group(1)), alpha=0.8, label=label)
    axes[0].set(xlabel="training step", ylabel="held-out T=0.7 accuracy (%)")
    axes[1].set(xlabel="training step", ylabel="held-out T=0.7 thinking tokens")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: S-GRPO vs GRPO, every seed (evaluations during training)")
    fig.tight_layout()
    path = RESULTS / name / "curves.png"
    fig.savefig(path, dpi=110)
    return path


def segment_table() -> str:
    """UloRL's segment benchmark (`bench/segment_rollout.py` -> ``bench/results/segment_rollout.json``)."""
    rows = [r for r in json.loads((ROOT / "bench" / "results" / "segment_rollout.json").read_text()) if "segments" in r]
    base = next(r for r in rows if r["segments"] == 1)
    lines = ["`bench/results/segment_rollout.json` (`python bench/segment_rollout.py`)", "",
             "| segments | step wall | decode positions a step waits for | samples carried over | reward (last third) "
             "| greedy / T=0.7 accuracy after |", "|---|---|---|---|---|---|"]
    for r in rows:
        faster = "" if r is base else f" ({base['step_s'] / r['step_s']:.2f}x faster)"
        waits = "" if r is base else f" ({r['sequential'] / base['sequential']:.2f}x)"
        lines.append(f"| {r['segments']} | {r['step_s']:.2f} s{faster} | {r['sequential']:.0f}{waits} | {r['carried']:.0f} "
                     f"| {r['reward_last']:.3f} | {100 * r['greedy_accuracy']:.1f}% / {100 * r['sampled_accuracy']:.1f}% |")
    return "\n".join(lines)


def engines_table() -> str:
    """RL rollout engines (`bench/rl_engines.py` -> ``bench/results/rl_engines.json``), ratios against hf."""
    data = json.loads((ROOT / "bench" / "results" / "rl_engines.json").read_text())
    lines = [f"`bench/results/rl_engines.json` (`python bench/rl_engines.py --out bench/results/rl_engines.txt`), "
             f"{data['prompts']} prompts × group {data['group']}, mean of {data['steps']} steps", "",
             "| algorithm | engine | decoded tokens | tokens/s | wall s/step | weight sync |", "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        hf = next(h for h in data["rows"] if h["algo"] == r["algo"] and h["engine"] == "hf")
        tps, base = r["tokens"] / r["wall"], hf["tokens"] / hf["wall"]
        ratio = (lambda a, b: "") if r is hf else (lambda a, b: f" ({a / b:.2f}x)")
        sync = "–" if r is hf else f"{r['sync'] * 1000:.0f} ms ({r['sync'] / r['wall']:.1%})"
        lines.append(f"| {NAMES[r['algo']]} | {r['engine']} | {r['tokens']:.0f} | {tps:.0f}{ratio(tps, base)} "
                     f"| {r['wall']:.2f}{ratio(r['wall'], hf['wall'])} | {sync} |")
    return "\n".join(lines)


SPECIAL = {"segment_rollout": segment_table, "rl_engines": engines_table}
"""Blocks made from a benchmark's own result file rather than from experiment runs."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help="Experiments under bench/results/rl/ (or segment_rollout, rl_engines).")
    ap.add_argument("--docs", "--readme", dest="docs", action="store_true",
                    help="Replace each experiment's block in docs/rl.md (--readme: the old name).")
    ap.add_argument("--goal", nargs="*", default=["verbose", "harmless", "harmless-300"],
                    help="Experiments judged against the harmless-overthinking goal (default: verbose harmless "
                         "harmless-300).")
    args = ap.parse_args()
    doc = DOC.read_text() if args.docs else ""
    for name in args.names:
        if name in SPECIAL:
            text = SPECIAL[name]()
            print(text + "\n")
        else:
            runs = load(name)
            text = table(name, runs, name in args.goal)
            (RESULTS / name / "report.md").write_text(text + "\n")
            print(text, f"\nplot: {plot(name, runs)}\n")
        if args.docs:
            pattern = re.compile(rf"(<!-- rl-report:{re.escape(name)} -->\n).*?(<!-- /rl-report:{re.escape(name)} -->)", re.S)
            if not pattern.search(doc):
                raise SystemExit(f"{DOC.relative_to(ROOT)}: no <!-- rl-report:{name} --> block")
            doc = pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc)
    if args.docs:
        DOC.write_text(doc)


if __name__ == "__main__":
    main()
