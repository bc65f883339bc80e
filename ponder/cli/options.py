"""What every ``ponder`` command shares, written once: the one-line error (also for an engine that
cannot start or dies: `engine_failed`, exit status 2, ``--verbose`` for its traceback), the engine, model and
Ray options, the model family, controller options (named flags and ``-o KEY=VALUE``), and their
validation.

Choices come from the registries (engine kinds from `ponder.engines.registry`, answer kinds from
`ponder.types.ANSWER_KINDS`, controllers from `ponder.controllers.REGISTRY`, model families from
`ponder.prompts.FAMILIES`), so adding one needs no change here. Nothing here imports torch, vLLM or Ray.
"""

from __future__ import annotations

import re
import traceback
from typing import Annotated, Any, List, Optional

import typer

from ponder.engines.base import EngineError
from ponder.engines.registry import single_engine_kinds
from ponder.assignments import parse_assignments
from ponder.prompts import FAMILIES, FAMILY_ENV, check_family
from ponder.types import ANSWER_KINDS

__all__ = ["fail", "engine_failed", "Verbose", "check_choice", "engine_settings", "use_family", "controller_options", "option_message", "Model",
           "EngineKind", "BaseUrl", "UseRay", "Actors", "Address", "AnswerKindOption", "Controller", "N", "K",
           "Temperature", "MaxTokens", "MaxThinkingTokens", "Options", "Family"]

Model = Annotated[Optional[str], typer.Option(help="Model path or hub id (default: the embedded tiny reasoner).")]
EngineKind = Annotated[str, typer.Option(help=f"Engine: {', '.join(single_engine_kinds())}.")]
BaseUrl = Annotated[Optional[str], typer.Option(help="Server root for --engine openai, e.g. http://127.0.0.1:8000/v1.")]
UseRay = Annotated[bool, typer.Option("--ray", help="Spread the samples over a Ray actor pool of --engine engines.")]
Actors = Annotated[int, typer.Option(help="--ray: how many actors (each holds one engine).")]
Address = Annotated[Optional[str], typer.Option(help="--ray: an existing cluster (auto, HOST:PORT, ray://...); "
                                                     "default: a local Ray.")]
AnswerKindOption = Annotated[str, typer.Option(help=f"How answers are extracted: {', '.join(ANSWER_KINDS)}.")]
Controller = Annotated[str, typer.Option("--controller", "-c", help="Strategy name (ponder.controllers.REGISTRY).")]
N = Annotated[Optional[int], typer.Option("-n", "--n", help="Samples per problem (majority, ffs, deepconf).")]
K = Annotated[Optional[int], typer.Option("-k", "--k", help="FFS-k / LFS-k: vote over k finished samples.")]
Temperature = Annotated[Optional[float], typer.Option(help="Sampling temperature (0 = greedy; controller default 0.6).")]
MaxTokens = Annotated[Optional[int], typer.Option(help="Most tokens per sample.")]
MaxThinkingTokens = Annotated[Optional[int], typer.Option(help="Budget forcing: cap on thinking tokens.")]
Options = Annotated[List[str], typer.Option("--option", "-o", help="Any controller option, KEY=VALUE (repeatable).")]
Family = Annotated[Optional[str], typer.Option(envvar=FAMILY_ENV, help=f"Model family (thinking delimiters, answer "
                   f"cue): {', '.join(FAMILIES)} (default: read from the tokenizer, then the model name).")]
Verbose = Annotated[bool, typer.Option("--verbose", help="If the engine cannot start or dies: its full traceback "
                                       "and error output before the one-line error.")]

DEFAULT_ACTORS = 2


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (2: bad input or usage)."""
    first = message.strip().splitlines()[0] if message and message.strip() else "failed"
    typer.echo(f"error: {first}", err=True)
    raise typer.Exit(code)


def engine_failed(exc: EngineError, verbose: bool = False, hint: str = "") -> None:
    """Say that the engine could not start or died in one line (engine, model, root cause, then
    ``hint``) and exit 2; with ``verbose`` the traceback and the engine's own error output come first."""
    if verbose:
        traceback.print_exception(exc)
        if exc.details:
            typer.echo(exc.details, err=True)
    fail(f"{exc}{hint}")


def check_choice(option: str, value: str, allowed: tuple[str, ...] | list[str]) -> None:
    """Raise the one-line ValueError for a value outside a registry."""
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(allowed)} (got {value!r})")


def use_family(family: str | None) -> str | None:
    """Check ``--family`` (also read from ``$PONDER_FAMILY``); the command opens its engine with it
    (`open_engine(..., family=)`). None: read it from the model's tokenizer."""
    return family if family is None else check_family(family, "--family value")


def engine_settings(engine: str, base_url: str | None, ray: bool, actors: int, address: str | None,
                    family: str | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Validate the engine options; returns (`open_engine` options, Ray pool options or None)."""
    check_choice("--engine", engine, single_engine_kinds())
    if base_url and engine != "openai":
        raise ValueError("--base-url only applies to --engine openai")
    if (address or actors != DEFAULT_ACTORS) and not ray:
        raise ValueError("--actors and --address only apply with --ray")
    if ray and actors < 1:
        raise ValueError(f"--actors must be >= 1 (got {actors})")
    options = {**({"base_url": base_url} if base_url else {}), **({"family": family} if family else {})}
    return options, ({"actors": actors, "address": address} if ray else None)


def controller_options(option: list[str], what: str = "--option", **flags: Any) -> dict[str, Any]:
    """The named flags that were given (not None) plus ``-o KEY=VALUE`` pairs."""
    options = {k: v for k, v in flags.items() if v is not None}
    options.update(parse_assignments(option, what))
    return options


def option_message(exc: Exception, option: list[str] | tuple[str, ...] = (), **flags: Any) -> str:
    """The one-line message of a bad input. A bad controller option (`OptionError`) that a named
    flag set is called by that flag (``--max-thinking-tokens``, ``-n``); one set by ``-o KEY=VALUE``
    keeps the key the user typed. ``option`` and ``flags``: as given to `controller_options`."""
    message = str(exc) or type(exc).__name__
    try:
        typed = parse_assignments(option, "--option")  # -o wins over the flag
    except ValueError:
        return message
    for name in getattr(exc, "options", ()):
        if flags.get(name) is not None and name not in typed:
            flag = f"-{name}" if len(name) == 1 else "--" + name.replace("_", "-")
            message = re.sub(rf"(?<![\w-]){re.escape(name)}\b", flag, message, count=1)  # the first: where it is named
    return message
