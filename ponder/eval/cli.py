"""``ponder eval``: run a controller on a benchmark (resumable, with progress), sweep a setting, compare runs.

    ponder eval --limit 16 --out runs/single                          # arith, tiny reasoner, hf
    ponder eval --controller ffs -n 8 --limit 16 --out runs/ffs8
    ponder eval --controller budget_forcing --sweep max_thinking_tokens=32,64,128 --limit 16 --out runs/bf
    ponder eval --sweep controller=single,majority:n=8,ffs:n=8,budget_forcing:max_thinking_tokens=128 --out runs/cmp
    ponder eval --benchmark aime24 --controller ffs -n 8 --model Qwen/Qwen3-8B --engine vllm --out runs/aime
    ponder eval --benchmark gpqa-diamond --data gpqa_diamond.csv ...  # offline / gated: a local file
    ponder eval --data my_problems.jsonl                              # ponder's own schema
    ponder eval report runs/single runs/ffs8 runs/bf                  # side by side + plot

Also runnable as ``python -m ponder.eval.cli ...``. Bad input gets a one-line error and exit
status 2; nothing already written is lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, List, Optional

import typer

__all__ = ["app", "parse_value", "parse_sweep"]

app = typer.Typer(add_completion=False, help="Evaluate test-time controllers on benchmarks: accuracy per token.")

ENGINE_KINDS = ("hf", "vllm", "openai")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (2: bad input)."""
    typer.echo(f"error: {message.splitlines()[0] if message else 'failed'}", err=True)
    raise typer.Exit(code)


def parse_value(text: str) -> Any:
    """A command-line value as JSON when it is one (8, 0.6, true, null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


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


def _options(option: list[str], what: str = "--option", **flags: Any) -> dict[str, Any]:
    options = {k: v for k, v in flags.items() if v is not None and k != "controller"}
    for item in option:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{what} must look like KEY=VALUE (got {item!r})")
        options[key] = parse_value(value)
    return options


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="aime24, aime25, gpqa-diamond, math500, "
                                            "gsm8k or arith (default: arith, or ponder's schema with --data)."),
    data: Optional[Path] = typer.Option(None, help="Local .jsonl/.json/.parquet/.csv in the benchmark's schema "
                                        "(alone: ponder's schema id, problem, answer, answer_kind)."),
    controller: str = typer.Option("single", "--controller", "-c", help="Controller name (ponder.controllers)."),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="Samples per problem (majority, ffs, deepconf)."),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="FFS-k: vote over the first k finished samples."),
    model: Optional[str] = typer.Option(None, help="Model path or hub id (default: the embedded tiny reasoner)."),
    engine: str = typer.Option("hf", help="Engine: hf, vllm or openai."),
    base_url: Optional[str] = typer.Option(None, help="Server root for --engine openai."),
    ray: bool = typer.Option(False, "--ray", help="Spread the samples over a Ray actor pool of --engine engines."),
    actors: int = typer.Option(2, help="--ray: how many actors (each holds one engine)."),
    address: Optional[str] = typer.Option(None, help="--ray: an existing cluster (auto, HOST:PORT, ray://...); "
                                          "default: a local Ray."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: runs/BENCHMARK-CONTROLLER-TIME)."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N problems (arith: generate N; default 500)."),
    resume: bool = typer.Option(False, help="Continue --out, skipping the problems it already holds."),
    concurrency: int = typer.Option(16, help="Problems in flight at once (all on one engine)."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (controller default 0.6)."),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens per sample."),
    seed: int = typer.Option(0, help="Base sampling seed (runs are reproducible)."),
    max_thinking_tokens: Optional[int] = typer.Option(None, help="Budget forcing: cap on thinking tokens."),
    option: List[str] = typer.Option([], "--option", "-o", help="Any other controller option, KEY=VALUE."),
    sweep: Optional[str] = typer.Option(None, help="KEY=V1,V2,...: one run per value in OUT/KEY=V, and a curve; "
                                        "controller=single,majority:n=8,... compares controllers."),
    save_text: bool = typer.Option(False, help="Keep every trace's text in results.jsonl."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Run a controller on a benchmark and write OUT/results.jsonl, summary.md, summary.json."""
    if ctx.invoked_subcommand is not None:
        return
    from ponder.benchmarks.registry import load_problems
    from ponder.eval.runner import RunConfig, prepare

    try:
        if engine not in ENGINE_KINDS:
            raise ValueError(f"--engine must be one of {', '.join(ENGINE_KINDS)} (got {engine!r})")
        if base_url and engine != "openai":
            raise ValueError("--base-url only applies to --engine openai")
        if (address or actors != 2) and not ray:
            raise ValueError("--actors and --address only apply with --ray")
        if ray and actors < 1:
            raise ValueError(f"--actors must be >= 1 (got {actors})")
        if resume and out is None:
            raise ValueError("--resume needs --out (the run directory to continue)")
        options = _options(option, n=n, k=k, temperature=temperature, max_tokens=max_tokens, seed=seed,
                           max_thinking_tokens=max_thinking_tokens)
        key, values = parse_sweep(sweep) if sweep else (None, [None])
        if key is not None and key in options and key != "seed":
            raise ValueError(f"--sweep {key} conflicts with a fixed {key}={options[key]!r}")
        from ponder.engines import resolve_model

        resolve_model(model)  # a local model path without config.json fails here, before any import of torch
        problems = load_problems(benchmark, str(data) if data else None, limit)
        name = benchmark or (data.stem if data else "arith")
        what = "compare" if key == "controller" else controller
        out = out or Path("runs") / f"{name}-{what}-{time.strftime('%Y%m%d-%H%M%S')}"
        configs = []
        for value in values:
            ctrl, opts, sub = controller, dict(options, **({key: value} if key else {})), f"{key}={value}"
            if key == "controller":  # a comparison: each value is NAME[:KEY=VALUE[:KEY=VALUE...]]
                ctrl, *pairs = str(value).split(":")
                opts = _options(pairs, "--sweep controller: options after NAME:", **options)
                sub = str(value).replace(":", "-").replace("=", "")
            configs.append(RunConfig(
                out=str(out / sub if key else out), benchmark=benchmark or (None if data else "arith"),
                data=str(data) if data else None, limit=limit, controller=ctrl, options=opts, model=model,
                engine=engine, base_url=base_url, ray={"actors": actors, "address": address} if ray else None,
                concurrency=concurrency, resume=resume, save_text=save_text,
                sweep={"key": key, "value": value, "group": str(out)} if key else None))
        for config in configs:  # every setting is checked before anything is written or loaded
            prepare(config, problems)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    try:
        asyncio.run(_run_all(configs, problems, out, key, values, progress))
    except KeyboardInterrupt:
        fail(f"interrupted; the rows written are kept: continue with --resume --out {out}", 130)
    except ValueError as exc:  # an engine that cannot start: bad --model, --engine or --base-url
        fail(str(exc))
    except (OSError, RuntimeError) as exc:  # e.g. RunAborted: the rows written are kept
        fail(str(exc), 1)


async def _run_all(configs: list, problems: list, out: Path, key: str | None, values: list, progress: bool) -> None:
    from ponder.eval.report import compare, finish_run, rich_table, wide_console
    from ponder.eval.runner import build_engine, run_eval
    from ponder.eval.store import to_json, write_atomic

    first = configs[0]
    console = wide_console()
    from ponder.verifiers import warm

    for kind in sorted({p.answer_kind for p in problems}):  # workers start while the engine loads
        warm(kind)
    engine = await build_engine(first.engine, first.model, first.base_url, first.ray)
    try:
        summaries = []
        for config in configs:
            result = await run_eval(config, problems, engine, progress=progress)
            summaries.append(finish_run(config.out, {"wall_s": result.wall_s, "engine_tokens": result.engine_tokens}))
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
    runs: List[Path] = typer.Argument(..., help="Run directories, or sweep directories holding runs."),
    out: Optional[Path] = typer.Option(None, help="Where compare.md, compare.json and the plot go "
                                       "(default: the runs' common parent)."),
) -> None:
    """Compare runs side by side: a table, compare.md/json and accuracy-versus-tokens plots."""
    from ponder.eval.report import compare

    try:
        compare(runs, out)
    except (ValueError, OSError) as exc:
        fail(str(exc))


if __name__ == "__main__":
    app()
