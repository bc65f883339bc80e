"""``ponder eval``: run a controller on a benchmark (resumable, with progress), sweep a setting, compare runs.

    ponder eval --limit 16 --out runs/single                          # arith, tiny reasoner, hf
    ponder eval --controller ffs -n 8 --limit 16 --out runs/ffs8
    ponder eval --controller budget_forcing --sweep max_thinking_tokens=32,64,128 --limit 16 --out runs/bf
    ponder eval --sweep controller=single,majority:n=8,ffs:n=8,budget_forcing:max_thinking_tokens=128 --out runs/cmp
    ponder eval --benchmark aime24 --controller ffs -n 8 --model Qwen/Qwen3-8B --engine vllm --out runs/aime
    ponder eval --benchmark gpqa-diamond --data gpqa_diamond.csv ...  # offline / gated: a local file
    ponder eval --data my_problems.jsonl                              # ponder's own schema
    ponder eval report runs/single runs/ffs8 runs/bf                  # side by side + plot

Bad input gets a one-line error and exit status 2; nothing already written is lost. So does an
engine that cannot start or dies mid-run: the rows written stay, summary.md says why the run
stopped, and ``--resume --out OUT`` continues once it is fixed (``--verbose``: the traceback).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from ponder.cli.options import (Actors, Address, BaseUrl, Controller, EngineKind, Family, K, MaxThinkingTokens,
                                MaxTokens, Model, N, Options, Temperature, UseRay, Verbose, controller_options,
                                engine_failed, engine_settings, fail, option_message, use_family)
from ponder.engines.base import EngineError
from ponder.assignments import parse_value

__all__ = ["app", "parse_sweep"]

app = typer.Typer(add_completion=False, help="Evaluate test-time controllers on benchmarks: accuracy per token.")


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``max_thinking_tokens=32,64,128`` -> (``max_thinking_tokens``, [32, 64, 128])."""
    key, sep, values = spec.partition("=")
    key = key.strip().lstrip("-").replace("-", "_")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or not items:
        raise ValueError(f"--sweep must look like KEY=V1,V2,... (got {spec!r})")
    parsed = [parse_value(v) for v in items]
    if len(set(map(str, parsed))) != len(parsed):
        raise ValueError(f"--sweep {key}: repeated values in {values!r}")
    return key, parsed


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    benchmark: Annotated[Optional[str], typer.Option("--benchmark", "-b", help="aime24, aime25, gpqa-diamond, math500, "
                         "gsm8k or arith (default: arith, or ponder's schema with --data).")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Local .jsonl/.json/.parquet/.csv in the benchmark's schema "
                    "(alone: ponder's schema id, problem, answer, answer_kind).")] = None,
    model: Model = None,
    family: Family = None,
    controller: Controller = "single",
    n: N = None,
    k: K = None,
    engine: EngineKind = "hf",
    base_url: BaseUrl = None,
    ray: UseRay = False,
    actors: Actors = 2,
    address: Address = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/BENCHMARK-CONTROLLER-TIME).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate the first N problems (arith: generate N; "
                                                      "default 500).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue --out, skipping the problems it already holds.")] = False,
    concurrency: Annotated[int, typer.Option(help="Problems in flight at once (all on one engine).")] = 16,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    seed: Annotated[int, typer.Option(help="Base sampling seed (runs are reproducible).")] = 0,
    max_thinking_tokens: MaxThinkingTokens = None,
    option: Options = [],
    sweep: Annotated[Optional[str], typer.Option(help="KEY=V1,V2,...: one run per value in OUT/KEY=V, and a curve; "
                     "controller=single,majority:n=8,... compares controllers.")] = None,
    save_text: Annotated[bool, typer.Option(help="Keep every trace's text in results.jsonl.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    verbose: Verbose = False,
) -> None:
    """Run a controller on a benchmark and write OUT/results.jsonl, summary.md, summary.json."""
    if ctx.invoked_subcommand is not None:
        return
    flags = dict(n=n, k=k, temperature=temperature, max_tokens=max_tokens, seed=seed,
                 max_thinking_tokens=max_thinking_tokens)
    try:
        engine_options, pool = engine_settings(engine, base_url, ray, actors, address, use_family(family))
        if resume and out is None:
            raise ValueError("--resume needs --out (the run directory to continue)")
        options = controller_options(option, **flags)
        base = dict(benchmark=benchmark, data=data, limit=limit, model=model, engine=engine,
                    base_url=engine_options.get("base_url"), family=engine_options.get("family"), ray=pool, concurrency=concurrency, resume=resume,
                    save_text=save_text)
        configs, problems, out, key, values = _plan(controller, options, sweep, out, base)
    except (ValueError, OSError) as exc:
        swept = (sweep or "").split("=", 1)[0].strip()  # a value the sweep set is no flag's (controller=: any)
        flagged = {} if swept == "controller" else {k: v for k, v in flags.items() if k != swept}
        fail(option_message(exc, option, **flagged))
    _execute(configs, problems, out, key, values, progress, verbose)


def _plan(controller: str, options: dict[str, Any], sweep: str | None, out: Path | None, base: dict[str, Any]):
    """Every run of this command, checked before anything is written or loaded."""
    from ponder.benchmarks import load_problems
    from ponder.engines.models import resolve_model
    from ponder.eval.runner import prepare

    key, values = parse_sweep(sweep) if sweep else (None, [None])
    if key is not None and key in options and key != "seed":
        raise ValueError(f"--sweep {key} conflicts with a fixed {key}={options[key]!r}")
    resolve_model(base["model"])  # a local model path without config.json fails here, before any import of torch
    benchmark, data = base["benchmark"], base["data"]
    problems = load_problems(benchmark, str(data) if data else None, base["limit"])
    name = benchmark or (data.stem if data else "arith")
    what = "compare" if key == "controller" else controller
    out = out or Path("runs") / f"{name}-{what}-{time.strftime('%Y%m%d-%H%M%S')}"
    configs = [_config(controller, options, key, value, out, base) for value in values]
    for config in configs:
        prepare(config, problems)
    return configs, problems, out, key, values


def _config(controller: str, options: dict[str, Any], key: str | None, value: Any, out: Path, base: dict[str, Any]):
    """The RunConfig of one sweep value (or of the only run)."""
    from ponder.eval.runner import RunConfig

    ctrl, opts, sub = controller, dict(options, **({key: value} if key else {})), f"{key}={value}"
    if key == "controller":  # a comparison: each value is NAME[:KEY=VALUE[:KEY=VALUE...]]
        ctrl, *pairs = str(value).split(":")
        opts = {**options, **controller_options(pairs, "--sweep controller: options after NAME:")}
        sub = str(value).replace(":", "-").replace("=", "")
    data = base["data"]
    return RunConfig(
        out=str(out / sub if key else out), benchmark=base["benchmark"] or (None if data else "arith"),
        data=str(data) if data else None, limit=base["limit"], controller=ctrl, options=opts, model=base["model"],
        engine=base["engine"], base_url=base["base_url"], family=base["family"], ray=base["ray"],
        concurrency=base["concurrency"], resume=base["resume"], save_text=base["save_text"],
        sweep={"key": key, "value": value, "group": str(out)} if key else None)


def _execute(configs: list, problems: list, out: Path, key: str | None, values: list, progress: bool,
             verbose: bool = False) -> None:
    try:
        asyncio.run(_run_all(configs, problems, out, key, values, progress))
    except EngineError as exc:  # before RuntimeError: one line and status 2 for any dead engine
        engine_failed(exc, verbose, f"; the rows written are kept: continue with --resume --out {out}"
                      if exc.started else "")
    except KeyboardInterrupt:
        fail(f"interrupted; the rows written are kept: continue with --resume --out {out}", 130)
    except ValueError as exc:  # an engine that cannot start: bad --model, --engine or --base-url
        fail(str(exc))
    except (OSError, RuntimeError) as exc:  # e.g. RunAborted: the rows written are kept
        fail(str(exc), 1)


async def _run_all(configs: list, problems: list, out: Path, key: str | None, values: list, progress: bool) -> None:
    from ponder.eval.report import compare, rich_table, wide_console
    from ponder.eval.runner import build_engine, run_and_summarise
    from ponder.eval.store import to_json, write_atomic
    from ponder.verifiers import warm

    first = configs[0]
    console = wide_console()
    for kind in sorted({p.answer_kind for p in problems}):  # workers start while the engine loads
        warm(kind)
    engine = await build_engine(first.engine, first.model, first.base_url, first.ray, first.family)
    try:
        summaries = []
        for config in configs:
            summaries.append(await run_and_summarise(config, problems, engine, progress=progress))
    finally:
        await engine.aclose()
    if key is None:
        console.print(rich_table(summaries, title=f"ponder eval: {out}"))
        console.print(f"results: {out / 'results.jsonl'}\nsummary: {out / 'summary.md'}")
        return
    write_atomic(out / "sweep.json", to_json({"key": key, "values": values,
                                              "runs": [Path(c.out).name for c in configs]}, indent=2) + "\n")
    compare([out], out, console=console)


@app.command()
def report(
    runs: Annotated[List[Path], typer.Argument(help="Run directories, or sweep directories holding runs.")],
    out: Annotated[Optional[Path], typer.Option(help="Where compare.md, compare.json and the plot go "
                                                     "(default: the runs' common parent).")] = None,
) -> None:
    """Compare runs side by side: a table, compare.md/json and accuracy-versus-tokens plots."""
    from ponder.eval.report import compare

    try:
        compare(runs, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))
