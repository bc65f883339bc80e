"""The ``ponder`` command line.

    ponder solve "Compute 4721+389"                       # embedded tiny reasoner, hf engine
    ponder solve "..." --model Qwen/Qwen3-8B --engine vllm --json
    ponder solve "..." --engine openai --base-url http://127.0.0.1:8000/v1 --model PATH

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
    answer_kind: str = typer.Option("math", help="How answers are extracted: math, integer or choice."),
    gold: Optional[str] = typer.Option(None, help="Reference answer; the result says whether it is correct."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (0 = greedy)."),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens per sample."),
    seed: Optional[int] = typer.Option(None, help="Base seed for reproducible sampling."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole Solution as one JSON object."),
) -> None:
    """Solve one problem and print the answer, the traces and the token accounting."""
    from ponder.controllers import REGISTRY

    _check_choice("--engine", engine, ENGINE_KINDS)
    _check_choice("--answer-kind", answer_kind, ANSWER_KINDS)
    _check_choice("--controller", controller, tuple(sorted(REGISTRY)))
    if temperature is not None and temperature < 0:
        fail(f"--temperature must be >= 0 (got {temperature})")
    if max_tokens is not None and max_tokens < 1:
        fail(f"--max-tokens must be >= 1 (got {max_tokens})")
    if base_url and engine != "openai":
        fail("--base-url only applies to --engine openai")
    options = {k: v for k, v in dict(temperature=temperature, max_tokens=max_tokens, seed=seed).items() if v is not None}
    engine_options = {"base_url": base_url} if base_url else {}
    try:
        from ponder.controllers import get_controller

        get_controller(controller, **dict(options))  # validate options before loading a model
        from ponder.sdk import Solver

        with Solver(model, engine, **engine_options) as solver:
            solution = solver.solve(problem, controller, answer_kind=answer_kind, gold=gold, **options)
    except (ValueError, FileNotFoundError, ConnectionError, OSError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if as_json:
        typer.echo(json.dumps(solution.to_dict()))
        return
    _print_solution(solution)


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
