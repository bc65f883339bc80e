"""``ponder solve``: one problem, any controller, any engine; the answer, the traces and the tokens.

    ponder solve "Compute 472+389"                                  # embedded tiny reasoner, hf engine
    ponder solve "..." -c ffs -n 8 --max-thinking-tokens 512 --json
    ponder solve "..." -c deepconf -o warmup=4 -o window=64        # any controller option, KEY=VALUE
    ponder solve "..." --model Qwen/Qwen3-8B --engine vllm
    ponder solve "..." --model /models/my-ft --family qwen3        # default: read from its tokenizer
    ponder solve "..." --engine openai --base-url http://127.0.0.1:8000/v1 --model PATH

Bad options get a one-line error naming the option and exit status 2, never a traceback; every
option is checked before a model loads. So does an engine that cannot start or dies (engine, model,
root cause; ``--verbose`` adds the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Optional

import typer

from ponder.cli.options import (Actors, Address, AnswerKindOption, BaseUrl, Controller, EngineKind, Family, K,
                                MaxThinkingTokens, MaxTokens, Model, N, Options, Temperature, UseRay, check_choice,
                                Verbose, controller_options, engine_failed, engine_settings, fail, option_message,
                                use_family)
from ponder.types import ANSWER_KINDS

__all__ = ["solve"]


def solve(
    problem: Annotated[str, typer.Argument(help="The problem text, e.g. 'Compute 472+389'.")],
    controller: Controller = "single",
    model: Model = None,
    family: Family = None,
    engine: EngineKind = "hf",
    base_url: BaseUrl = None,
    ray: UseRay = False,
    actors: Actors = 2,
    address: Address = None,
    answer_kind: AnswerKindOption = "math",
    gold: Annotated[Optional[str], typer.Option(help="Reference answer; the result says whether it is correct.")] = None,
    n: N = None,
    k: K = None,
    mode: Annotated[Optional[str], typer.Option(help="ffs: first (default) or last (LFS-k).")] = None,
    max_thinking_tokens: MaxThinkingTokens = None,
    min_thinking_tokens: Annotated[Optional[int], typer.Option(help="Budget forcing: minimum thinking tokens.")] = None,
    extend: Annotated[Optional[int], typer.Option(help="Budget forcing: append 'Wait' up to N times.")] = None,
    answer_tokens: Annotated[Optional[int], typer.Option(help="Budget forcing: answer budget after a forced stop.")] = None,
    temperature: Temperature = None,
    top_p: Annotated[Optional[float], typer.Option(help="Nucleus sampling threshold.")] = None,
    max_tokens: MaxTokens = None,
    seed: Annotated[Optional[int], typer.Option(help="Base seed for reproducible sampling.")] = None,
    option: Options = [],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole Solution as one JSON object.")] = False,
    verbose: Verbose = False,
) -> None:
    """Solve one problem and print the answer, the traces and the token accounting."""
    from ponder.controllers import ControllerSpec
    from ponder.engines.base import EngineError
    from ponder.engines.ray import PoolError  # stdlib-only module: ray itself loads with a pool

    out = _json_stdout() if as_json else None
    flags = dict(n=n, k=k, mode=mode, max_thinking_tokens=max_thinking_tokens, min_thinking_tokens=min_thinking_tokens,
                 extend=extend, answer_tokens=answer_tokens, temperature=temperature, top_p=top_p,
                 max_tokens=max_tokens, seed=seed)
    try:
        check_choice("--answer-kind", answer_kind, ANSWER_KINDS)
        engine_options, pool = engine_settings(engine, base_url, ray, actors, address, use_family(family))
        options = controller_options(option, **flags)
        spec = ControllerSpec.of(controller, options)  # checked once, before a model loads
        _warn_about_format(problem, model, family)
        solution = _solve(problem, spec, model, engine, pool, engine_options, answer_kind, gold)
    except EngineError as exc:
        engine_failed(exc, verbose)
    except (ValueError, TypeError, FileNotFoundError, ConnectionError, OSError, PoolError) as exc:
        fail(option_message(exc, option, **flags))
    if out is not None:
        out.write(json.dumps(solution.to_dict(with_ids=True)) + "\n")
        out.flush()
        return
    _print_solution(solution)


def _json_stdout():
    """The real stdout for the JSON, with file descriptor 1 pointed at stderr from now on.

    vLLM logs to stdout, Ray prints cluster notices there, and child processes (vLLM's engine
    core, Ray's workers) inherit descriptor 1: moving it is the one way to keep ``--json``
    output parseable whatever a library or its children print.
    """
    try:
        if sys.stdout.fileno() != 1:
            return sys.stdout
    except (AttributeError, ValueError, OSError):  # captured (typer's CliRunner, an embedding app)
        return sys.stdout
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(real, "w")


def _warn_about_format(problem: str, model: str | None, family: str | None) -> None:
    """A prompt outside the model's trained input format (the tiny reasoner's sums) is said on stderr."""
    from ponder.engines.models import resolve_model
    from ponder.prompts import family_for

    _, warning = family_for(name=resolve_model(model), family=family).format_problem(problem)
    if warning:
        typer.echo(f"warning: {warning}", err=True)


def _solve(problem, spec, model, engine, pool, engine_options, answer_kind, gold):
    from ponder.sdk import Solver
    from ponder.verifiers import warm

    warm(answer_kind)  # its worker starts while the engine loads
    with Solver(model, engine, ray=pool, **engine_options) as solver:
        return solver.solve(problem, spec, answer_kind=answer_kind, gold=gold)


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
