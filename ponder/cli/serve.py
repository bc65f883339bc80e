"""``ponder serve``: a vLLM OpenAI-compatible server on 127.0.0.1, for ``--engine openai``.

    ponder serve --port 8000            # the embedded tiny reasoner; Ctrl-C stops it
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ponder.cli.options import Model, fail

__all__ = ["serve"]


def serve(
    model: Model = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    max_model_len: Annotated[Optional[int], typer.Option(help="Context length for vLLM.")] = None,
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
