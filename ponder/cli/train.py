"""``ponder train sgrpo|grpo``: teach a model to stop thinking early (S-GRPO on TRL, or plain GRPO).

    ponder train sgrpo --config recipes/tiny-sgrpo.yaml
    ponder train sgrpo --config recipes/tiny-sgrpo.yaml max_steps=50 resume=true   # KEY=VALUE overrides

A bad recipe, override or data set fails with one line and exit status 2 before a model loads; so
does a rollout engine that cannot start or dies (``--verbose``: its traceback).
"""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from ponder.cli.options import Verbose, check_choice, engine_failed, fail
from ponder.engines.base import EngineError

__all__ = ["train", "ALGORITHMS"]

ALGORITHMS = ("sgrpo", "grpo")


def train(
    algo: Annotated[str, typer.Argument(help="sgrpo, or grpo (the baseline).")],
    config: Annotated[Optional[str], typer.Option("--config", help="A YAML recipe (see recipes/).")] = None,
    overrides: Annotated[Optional[List[str]], typer.Argument(help="KEY=VALUE overrides of the recipe.")] = None,
    verbose: Verbose = False,
) -> None:
    """Teach a model to stop thinking early with S-GRPO on TRL (or train plain GRPO for contrast)."""
    try:
        check_choice("ALGO", algo, ALGORITHMS)
        from ponder.rl.train import check_engine, load_config, load_training_problems

        cfg = load_config(config, overrides or [], algo=algo)
        load_training_problems(cfg)  # bad data fails here, before a model loads
        check_engine(cfg)  # so does an unreachable or unfit rollout server
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    from ponder.rl.train import train as run_training

    try:
        run_training(cfg)
    except EngineError as exc:
        engine_failed(exc, verbose)
