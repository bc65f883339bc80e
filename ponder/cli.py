"""The ``ponder`` command line.

    ponder solve "Compute 4721+389"                       # embedded tiny reasoner, hf engine
    ponder solve "..." --model Qwen/Qwen3-8B --engine vllm --json
    ponder solve "..." --engine openai --base-url http://127.0.0.1:8000/v1 --model PATH
    ponder eval --benchmark arith -c ffs -n 8 --limit 32 --out runs/ffs8   # see ponder/eval/cli.py
    ponder serve --port 8000                                              # vLLM OpenAI server

Bad options get a one-line error naming the option and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Control how much a reasoning model thinks.")

ENGINE_KINDS = ("hf", "vllm", "openai")
ANSWER_KINDS = ("math", "integer", "choice")


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2 (usage error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        fail(f"{option} must be one of {', '.join(allowed)} (got {value!r})")


def _mount_eval() -> None:
    from ponder.eval.cli import app as eval_app

    app.add_typer(eval_app, name="eval")


_mount_eval()


@app.callback()
def main() -> None:
    """ponder: test-time compute controllers, RL that teaches early exits, and evaluation."""


@app.command()
def solve(
    problem: str = typer.Argument(..., help="The problem text, e.g. 'Compute 4721+389'."),
    controller: str = typer.Option("single", "--controller", "-c", help="Strategy name (see ponder.controllers.REGISTRY)."),
    model: Optional[str] = typer.Option(None, help="Model path or hub id (default: the embedded tiny reasoner)."),
    engine: str = typer.Option("hf", help="Engine: hf, vllm or openai."),
    base_url: Optional[str] = typer.Option(None, help="Server root for --engine openai, e.g. http://127.0.0.1:8000/v1."),
    ray: bool = typer.Option(False, "--ray", help="Spread the samples over a Ray actor pool of --engine engines."),
    actors: int = typer.Option(2, help="--ray: how many actors (each holds one engine)."),
    address: Optional[str] = typer.Option(None, help="--ray: an existing cluster (auto, HOST:PORT, ray://...); "
                                          "default: a local Ray."),
    answer_kind: str = typer.Option("math", help="How answers are extracted: math, integer or choice."),
    gold: Optional[str] = typer.Option(None, help="Reference answer; the result says whether it is correct."),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="Samples to launch (majority, ffs, deepconf)."),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="FFS-k / LFS-k: vote over k finished samples."),
    mode: Optional[str] = typer.Option(None, help="ffs: first (default) or last (LFS-k)."),
    max_thinking_tokens: Optional[int] = typer.Option(None, help="Budget forcing: cap on thinking tokens."),
    min_thinking_tokens: Optional[int] = typer.Option(None, help="Budget forcing: minimum thinking tokens."),
    extend: Optional[int] = typer.Option(None, help="Budget forcing: append 'Wait' up to N times."),
    answer_tokens: Optional[int] = typer.Option(None, help="Budget forcing: answer budget after a forced stop."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (0 = greedy)."),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling threshold."),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens per sample."),
    seed: Optional[int] = typer.Option(None, help="Base seed for reproducible sampling."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole Solution as one JSON object."),
) -> None:
    """Solve one problem and print the answer, the traces and the token accounting."""
    from ponder.controllers import REGISTRY

    _check_choice("--engine", engine, ENGINE_KINDS)
    _check_choice("--answer-kind", answer_kind, ANSWER_KINDS)
    _check_choice("--controller", controller, tuple(sorted(REGISTRY)))
    if base_url and engine != "openai":
        fail("--base-url only applies to --engine openai")
    options = {key: value for key, value in dict(
        n=n, k=k, mode=mode, max_thinking_tokens=max_thinking_tokens, min_thinking_tokens=min_thinking_tokens,
        extend=extend, answer_tokens=answer_tokens, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
        seed=seed).items() if value is not None}
    if (address or actors != 2) and not ray:
        fail("--actors and --address only apply with --ray")
    engine_options = {"base_url": base_url} if base_url else {}
    from ponder.engines.ray import PoolError  # stdlib-only module: ray itself loads with a pool

    try:
        from ponder.controllers import get_controller

        get_controller(controller, **dict(options))  # validate options before loading a model
        from ponder.sdk import Solver

        from ponder.verifiers import warm

        warm(answer_kind)  # its worker starts while the engine loads
        with Solver(model, engine, ray={"actors": actors, "address": address} if ray else None,
                    **engine_options) as solver:
            solution = solver.solve(problem, controller, answer_kind=answer_kind, gold=gold, **options)
    except (ValueError, TypeError, FileNotFoundError, ConnectionError, OSError, PoolError) as exc:
        fail(_option_names(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__)
    if as_json:
        typer.echo(json.dumps(solution.to_dict()))
        return
    _print_solution(solution)


@app.command()
def serve(
    model: Optional[str] = typer.Option(None, help="Model path or hub id (default: the embedded tiny reasoner)."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1."),
    max_model_len: Optional[int] = typer.Option(None, help="Context length for vLLM."),
) -> None:
    """Run a vLLM OpenAI-compatible server for `--engine openai` (Ctrl-C stops it)."""
    import time

    from ponder.engines.server import VLLMServer

    try:
        server = VLLMServer(model, port=port, max_model_len=max_model_len).start()
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(f"serving {server.model} at {server.base_url} (log: {server.log_path}); Ctrl-C to stop")
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    algo: str = typer.Argument(..., help="sgrpo, or grpo (the baseline)."),
    config: Optional[str] = typer.Option(None, "--config", help="A YAML recipe (see recipes/)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides of the recipe."),
) -> None:
    """Teach a model to stop thinking early with S-GRPO on TRL (or train plain GRPO for contrast)."""
    _check_choice("ALGO", algo, ("sgrpo", "grpo"))
    from ponder.rl.train import load_config, load_training_problems
    from ponder.rl.train import train as run_training

    try:
        cfg = load_config(config, overrides or [], algo=algo)
        load_training_problems(cfg)  # bad data fails here, before a model loads
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc).splitlines()[0])
    run_training(cfg)


def _option_names(message: str) -> str:
    """Controllers name their fields (max_thinking_tokens); the CLI user typed --max-thinking-tokens."""
    import re

    return re.sub(r"\b(max_thinking_tokens|min_thinking_tokens|answer_tokens|max_tokens|top_p)\b",
                  lambda m: "--" + m.group(1).replace("_", "-"), message)


def _print_solution(solution) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for i, trace in enumerate(solution.traces):
        console.rule(f"trace {i}")
        console.print(trace.text, markup=False, highlight=False)
    table = Table(title=f"{solution.controller}: answer {solution.answer}")
    for col in ("trace", "tokens", "thinking", "finish", "answer", "aborted"):
        table.add_column(col)
    for i, t in enumerate(solution.traces):
        table.add_row(str(i), str(t.tokens), str(t.thinking_tokens), str(t.finish_reason), str(t.answer), str(t.aborted))
    console.print(table)
    correct = "" if solution.correct is None else f"  correct: {solution.correct}"
    console.print(f"answer: {solution.answer}{correct}")
    console.print(f"total_tokens: {solution.total_tokens}  sequential_tokens: {solution.sequential}  "
                  f"wasted_tokens: {solution.wasted_tokens}  wall: {solution.wall_s:.2f}s")


if __name__ == "__main__":
    sys.exit(app())
