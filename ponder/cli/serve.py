"""``ponder serve``: an OpenAI-compatible reasoning server applying any controller (ponder/serve/);
``ponder engine-server``: a plain vLLM OpenAI server, the backend for ``--engine openai``.

    ponder serve                                        # tiny reasoner, hf engine, http://127.0.0.1:8000
    ponder serve -c ffs -n 8 --effort low=64            # default controller and options, effort table
    ponder serve --engine vllm --model Qwen/Qwen3-8B --api-key KEY --host 0.0.0.0
    ponder engine-server --port 8001                    # plain vLLM server (token ids, no controllers)

Every option is checked before the model loads; a bad one is one line on stderr and exit status 2.
So is an engine that cannot start, or dies while serving: ``ponder serve`` answers 503 (/health
and requests) while it stops, then exits with status 2 and the one line (engine, model, root
cause; ``--verbose``: the traceback), for a supervisor to restart it; it does not restart the
engine itself.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Annotated, List, Optional

import typer

from ponder.cli.options import (Actors, Address, AnswerKindOption, BaseUrl, Controller, EngineKind, Family, K,
                                MaxThinkingTokens, MaxTokens, Model, N, Options, Temperature, UseRay, check_choice,
                                Verbose, controller_options, engine_failed, engine_settings, fail, option_message,
                                use_family)
from ponder.types import ANSWER_KINDS

__all__ = ["serve", "engine_server"]

Effort = Annotated[List[str], typer.Option("--effort", help="reasoning_effort table entry LEVEL=TOKENS (or "
                                                              "LEVEL=none for no cap), repeatable; e.g. low=64.")]


def serve(
    model: Model = None,
    family: Family = None,
    engine: EngineKind = "hf",
    base_url: BaseUrl = None,
    ray: UseRay = False,
    actors: Actors = 2,
    address: Address = None,
    max_model_len: Annotated[Optional[int], typer.Option(help="--engine vllm: context length.")] = None,
    controller: Controller = "single",
    n: N = None,
    k: K = None,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    max_thinking_tokens: MaxThinkingTokens = None,
    option: Options = [],
    answer_kind: AnswerKindOption = "math",
    host: Annotated[str, typer.Option(help="Address to bind (beyond loopback without --api-key: a "
                                            "warning).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(envvar="PONDER_API_KEY",
                                                   help="Require this bearer key on /v1/.")] = None,
    served_model_name: Annotated[Optional[str], typer.Option(help="Model name clients send (default: "
                                                                  "tiny-reasoner, or --model).")] = None,
    effort: Effort = [],
    max_n: Annotated[int, typer.Option(help="Most choices (OpenAI n) per request.")] = 16,
    max_samples: Annotated[int, typer.Option(help="Most samples per controller run (ponder n).")] = 64,
    max_request_tokens: Annotated[int, typer.Option(help="Most max_tokens a request may ask for.")] = 32768,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1 << 20,
    progress_interval: Annotated[float, typer.Option(help="Streaming multi-sample controllers: seconds between "
                                                          "progress comments.")] = 0.5,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    verbose: Verbose = False,
) -> None:
    """Serve the OpenAI API with ponder's controllers, and the race page at / (Ctrl-C stops it)."""
    from ponder.controllers import ControllerSpec
    from ponder.engines.models import resolve_model
    from ponder.engines.ray import PoolError

    flags = dict(n=n, k=k, temperature=temperature, max_tokens=max_tokens, max_thinking_tokens=max_thinking_tokens)
    try:
        check_choice("--answer-kind", answer_kind, ANSWER_KINDS)
        engine_options, pool = engine_settings(engine, base_url, ray, actors, address, use_family(family))
        if max_model_len is not None:
            engine_options["max_model_len"] = max_model_len
        options = controller_options(option, **flags)
        ControllerSpec.of(controller, options)  # the server's default, checked before a model loads
        path = resolve_model(model)
        cfg = _config(controller, options, answer_kind, served_model_name or (model if model not in (None, "tiny")
                                                                                 else "tiny-reasoner"),
                      path, api_key, effort, max_n, max_samples, max_request_tokens, max_body_bytes,
                      progress_interval)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        fail(option_message(exc, option, **flags))
    if not api_key and not _loopback(host):
        typer.echo(f"warning: serving on {host} without --api-key: anyone who can reach it can use the model",
                   err=True)
    typer.echo(f"ponder serve: {cfg.served_name} ({engine}{' on Ray' if pool else ''}), default controller "
               f"{controller}; API http://{host}:{port}/v1, race page http://{host}:{port}/", err=True)
    try:
        _run(cfg, model, engine, engine_options, pool, host, port, log_level, verbose)
    except typer.Exit:  # a RuntimeError too: already said
        raise
    except (OSError, PoolError, RuntimeError) as exc:
        fail(str(exc), code=1)


SERVE_FLAGS = {"max_n": "--max-n", "max_samples": "--max-samples", "max_tokens": "--max-request-tokens",
               "max_body_bytes": "--max-body-bytes", "progress_s": "--progress-interval", "effort": "--effort"}
"""`ServeConfig` fields -> the ``ponder serve`` flags that set them."""


def _config(controller, options, answer_kind, served_name, path, api_key, effort, max_n, max_samples,
            max_request_tokens, max_body_bytes, progress_interval):
    from ponder.assignments import parse_assignments
    from ponder.serve.config import ServeConfig

    table = {}
    for level, value in parse_assignments(effort, "--effort").items():
        table[level] = None if value in (None, "none") else value
    try:  # ServeConfig checks its limits; its message names the field, the user typed the flag
        return ServeConfig(controller=controller, options=tuple(options.items()), answer_kind=answer_kind,
                           served_name=served_name, model_path=path, api_key=api_key, max_n=max_n,
                           max_samples=max_samples, max_tokens=max_request_tokens, max_body_bytes=max_body_bytes,
                           effort=tuple(table.items()) or ServeConfig.effort, progress_s=progress_interval)
    except ValueError as exc:
        field = str(exc).split(" ", 1)[0]
        raise ValueError(str(exc).replace(field, SERVE_FLAGS.get(field, field), 1)) from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(cfg, model, engine, engine_options, pool, host, port, log_level, verbose=False) -> None:
    import uvicorn

    from ponder.serve import create_app

    def opener():
        from ponder.engines import open_engine

        return open_engine(engine, ray=pool, model=model, **engine_options)

    server: uvicorn.Server | None = None

    def stop(exc) -> None:  # the engine died: stop serving (503s meanwhile); the one line follows
        if server is not None:
            server.should_exit = True

    app = create_app(cfg, opener, on_engine_error=stop)
    # loop="asyncio": under uvloop the hf engine's decode steps (torch in a worker thread) ran 5-50x
    # slower on this 2-core machine (bench/serve.py and a step-timing probe; the loop itself was idle)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, loop="asyncio",
                                           timeout_graceful_shutdown=5))
    state = app.state.server
    if not verbose:  # uvicorn's traceback of a failed start-up: the one line below says it
        logging.getLogger("uvicorn.error").addFilter(lambda r: r.levelno < logging.ERROR or state.error is None)
    try:
        server.run()
    except KeyboardInterrupt:  # as uvicorn.run: uvicorn re-raises the Ctrl-C it handled
        pass
    except SystemExit:  # uvicorn's exit after a failed start-up: said below when the engine was why
        if state.error is None:
            raise
    if state.error is not None:
        engine_failed(state.error, verbose)
    if not server.started:  # as uvicorn.run: e.g. the port is taken (uvicorn has logged why)
        raise typer.Exit(3)


def engine_server(
    model: Model = None,
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0: reachable from other machines).")] = "127.0.0.1",
    max_model_len: Annotated[Optional[int], typer.Option(help="Context length for vLLM.")] = None,
    dtype: Annotated[str, typer.Option(help="vLLM's --dtype (auto: float32 for a model stored in float32, such "
                                            "as the embedded organisms, so it matches the hf engine and a float32 "
                                            "trainer exactly; otherwise vLLM's auto).")] = "auto",
    rl: Annotated[bool, typer.Option("--rl", help="A rollout server for `ponder train ... vllm_mode=server`: "
                                                   "weight reload endpoints, log-probabilities after temperature.")] = False,
    reasoning_parser: Annotated[Optional[str], typer.Option(help="vLLM's --reasoning-parser (e.g. qwen3, "
                                                                 "deepseek_r1): chat answers split into "
                                                                 "reasoning and content.")] = None,
) -> None:
    """Run a plain vLLM OpenAI-compatible server for `--engine openai` (Ctrl-C stops it)."""
    import time

    from ponder.engines.server import VLLMServer

    try:
        from ponder.engines.models import resolve_model

        path = resolve_model(model)
        dtype = _float32_if_stored(path) if dtype == "auto" else dtype
        if rl:
            from ponder.rl.rollout_server import rollout_server

            server = rollout_server(model, dtype, port=port, max_model_len=max_model_len, host=host).start()
        else:
            parser = ("--reasoning-parser", reasoning_parser) if reasoning_parser else ()
            # a named model (tiny-qwen3) answers to its name as well as to the path the openai engine sends
            names = ("--served-model-name", path, model) if model and path != model else ()
            server = VLLMServer(model, port=port, max_model_len=max_model_len, host=host,
                                extra_args=("--dtype", dtype, *parser, *names)).start()
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


def _float32_if_stored(path: str) -> str:
    """``float32`` for a local model stored in float32, else ``auto``: vLLM's auto casts float32 weights
    to half precision, so the tiny organisms' greedy answers would differ from the hf engine's."""
    import json
    from pathlib import Path

    config = Path(path) / "config.json"
    try:
        stored = json.loads(config.read_text())
    except (OSError, ValueError):
        return "auto"
    return "float32" if (stored.get("dtype") or stored.get("torch_dtype")) == "float32" else "auto"
