"""The ``ponder`` command line: one typer app, one module per command.

    ponder solve "Compute 472+389"                                        # solve.py
    ponder eval --benchmark arith -c ffs -n 8 --limit 32 --out runs/ffs8  # eval.py
    ponder train sgrpo --config recipes/tiny-sgrpo.yaml                   # train.py
    ponder serve -c ffs -n 8 --port 8000                                  # serve.py (OpenAI API + race page)
    ponder engine-server --port 8001                                      # serve.py (plain vLLM server)
    ponder engine-server --rl --port 8000                                 # serve.py (rollout server for RL)
    ponder verify judged.jsonl                                            # verify.py

Options shared by several commands (engine, model, Ray, controller options) and the one-line
error are written once, in options.py. Also runnable as ``python -m ponder.cli ...``.
"""

from __future__ import annotations

import typer

from ponder.cli import eval as eval_command
from ponder.cli.serve import engine_server, serve
from ponder.cli.solve import solve
from ponder.cli.train import train
from ponder.cli.verify import verify

__all__ = ["app"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Control how much a reasoning model thinks.")


@app.callback()
def main() -> None:
    """ponder: test-time compute controllers, RL that teaches early exits, and evaluation."""


app.command()(solve)
app.add_typer(eval_command.app, name="eval")
app.command()(serve)
app.command()(verify)
app.command("engine-server")(engine_server)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})(train)
