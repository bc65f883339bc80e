"""The ASGI app of ``ponder serve``: an OpenAI-compatible API that applies ponder's controllers,
the race page, health and metrics.

    POST /v1/chat/completions   POST /v1/completions   (streaming or not; see protocol.py, stream.py)
    GET  /v1/models   GET /health   GET /metrics
    GET  / (the race page; its files under /page/, its settings from /ponder/config)

One engine per process, opened by ``engine_opener`` when the app starts (`ponder.engines.open_engine`)
and closed when it stops. Bad input is answered 400 with OpenAI's error shape
(``{"error": {"message", "type", "param", "code"}}``), a wrong or missing API key 401, an unknown
model 404; the server stays up. A client that goes away aborts its request's samples in the engine.
An engine that cannot start fails the app's start-up; one that dies (`EngineError`) turns /health
and every request into a 503 in OpenAI's error shape (code ``engine_dead``), at once rather than
hanging, and calls ``on_engine_error`` (``ponder serve`` then stops, exit status 2: a supervisor
restarts it; the engine itself is not restarted in-process).

    app = create_app(ServeConfig(controller="ffs"), lambda: open_engine("hf"))
    uvicorn.run(app, host="127.0.0.1", port=8000)       # what `ponder serve` does
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ponder.engines.base import EngineError
from ponder.serve import shapes
from ponder.serve.config import ServeConfig
from ponder.serve.prometheus import CONTENT_TYPE, Metrics
from ponder.serve.protocol import RequestError, error_body, parse_chat, parse_completion, parse_json
from ponder.serve.run import Work
from ponder.serve.stream import EventStream, events, wait_for_disconnect
from ponder.verifiers import get_verifier, warm

__all__ = ["create_app", "PAGE_DIR"]

PAGE_DIR = Path(__file__).resolve().parent / "page"
"""The race page's files (package data)."""
log = logging.getLogger("ponder.serve")


class _Server:
    """The state of one app: its settings, its engine and its metrics."""

    def __init__(self, cfg: ServeConfig, engine_opener: Callable[[], Awaitable[Any]],
                 on_engine_error: Callable[[EngineError], None] | None = None) -> None:
        self.cfg, self.engine_opener, self.on_engine_error = cfg, engine_opener, on_engine_error
        self.engine: Any = None
        self.error: EngineError | None = None
        """Why the engine could not start or died; set once, then everything answers 503."""
        self.metrics = Metrics(lambda: self.engine)
        self.started = int(time.time())

    @asynccontextmanager
    async def lifespan(self, app: Starlette):
        warm(self.cfg.answer_kind)  # the verifier's worker starts while the engine loads
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.engine = await self.engine_opener()  # started; nothing is served until it is loaded
        except EngineError as exc:
            self.error = exc
            raise
        finally:
            if threading.current_thread() is threading.main_thread():
                for sig, handler in handlers.items():  # ray.init replaces them: keep uvicorn's graceful stop
                    if handler is not None:
                        signal.signal(sig, handler)
        try:
            yield
        finally:
            engine, self.engine = self.engine, None
            await engine.aclose()

    def engine_died(self, exc: EngineError) -> None:
        """Remember the engine's death (the first one) and tell whoever runs the app."""
        if self.error is None:
            self.error = exc
            if self.on_engine_error is not None:
                self.on_engine_error(exc)
            else:  # nobody else will say it
                log.error("%s", exc)

    def dead_response(self) -> JSONResponse:
        body = error_body(f"{self.error}; this server is stopping", "server_error", None, "engine_dead")
        return JSONResponse(body, status_code=503)

    def check_key(self, request: Request) -> None:
        key = self.cfg.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not hmac.compare_digest(token.encode(), key.encode()):
            raise RequestError("invalid or missing API key (send Authorization: Bearer <key>)", None,
                               "invalid_api_key", status=401)

    async def read_body(self, request: Request) -> bytes:
        limit = self.cfg.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestError(f"request body of {declared} bytes is over this server's limit of {limit}", None,
                               "body_too_large")
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise RequestError(f"request body is over this server's limit of {limit} bytes", None,
                                   "body_too_large")
            parts.append(part)
        return b"".join(parts)

    async def generate(self, request: Request, kind: str) -> Response:
        start, status, streaming = time.perf_counter(), 500, False
        self.metrics.in_flight.inc()

        def done(code: int) -> None:
            self.metrics.in_flight.dec()
            self.metrics.latency.labels(kind).observe(time.perf_counter() - start)
            self.metrics.requests.labels(kind, str(code)).inc()

        try:
            if self.error is not None:
                status = 503
                return self.dead_response()
            self.check_key(request)
            body = parse_json(await self.read_body(request))
            job = (parse_chat if kind == "chat" else parse_completion)(body, self.cfg)
            work = Work(job, self.engine, get_verifier(job.answer_kind))
            if job.stream:
                streaming = True
                return self._stream(work, job, done)
            if not await self._until_done(request, work):
                status = 499  # nginx's "client closed request": nobody reads this response
                return Response(status_code=status)
            rid, created = shapes.new_id(job)
            usage = work.usage()
            self.metrics.finished(usage)
            shape = shapes.chat_response if kind == "chat" else shapes.completion_response
            status = 200
            return JSONResponse(shape(job, rid, created, work.outcomes(), usage))
        except RequestError as exc:
            status = exc.status
            return JSONResponse(exc.body(), status_code=status)
        except EngineError as exc:  # no request can be served any more
            self.engine_died(exc)
            status = 503
            return self.dead_response()
        except Exception as exc:  # an engine or controller failure: the server stays up
            log.exception("request failed")
            return JSONResponse(error_body(f"generation failed: {exc!r}", "server_error", None, "server_error"),
                                status_code=500)
        finally:
            if not streaming:
                done(status)

    def _stream(self, work: Work, job: Any, done: Callable[[int], None]) -> EventStream:
        def gone() -> None:
            for run in work.runs:
                run.task.cancel()

        async def close() -> None:
            cancelled = any(r.task.cancelled() for r in work.runs) or not work.done
            if not work.done:
                await work.cancel()
            failures = [r.task.exception() for r in work.runs if r.task.done() and not r.task.cancelled()]
            dead = next((e for e in failures if isinstance(e, EngineError)), None)
            if dead is not None:  # the client was told in the stream; later requests get a 503
                self.engine_died(dead)
            if cancelled:
                self.metrics.disconnected(work.partial())
            elif all(r.task.exception() is None for r in work.runs):
                self.metrics.finished(work.usage())
            done(499 if cancelled else 200)

        return EventStream(events(work, job, self.cfg), on_disconnect=gone, on_close=close)

    async def _until_done(self, request: Request, work: Work) -> bool:
        """Wait for the work; False (and every sample aborted) if the client goes away first."""
        watcher = asyncio.create_task(wait_for_disconnect(request.receive))
        waiter = asyncio.create_task(work.wait())
        try:
            finished, _ = await asyncio.wait({watcher, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if waiter in finished:
            waiter.result()  # raise a run's failure
            return True
        waiter.cancel()
        await work.cancel()
        self.metrics.disconnected(work.partial())
        return False

    # -- the small endpoints ----------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        try:
            self.check_key(request)
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        return JSONResponse(shapes.models_body(self.cfg.served_name, self.cfg.model_path, self.started))

    async def health(self, request: Request) -> Response:
        if self.error is not None:
            return JSONResponse({"status": "dead", "error": str(self.error)}, status_code=503)
        ok = self.engine is not None
        return JSONResponse({"status": "ok" if ok else "starting"}, status_code=200 if ok else 503)

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def page_config(self, request: Request) -> Response:
        """What the race page needs: the model name, and each controller's option names."""
        import dataclasses

        from ponder.controllers import REGISTRY, controller_class

        options = {}
        for name in sorted(REGISTRY):
            cls = controller_class(name)
            options[name] = sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []
        return JSONResponse({"model": self.cfg.served_name, "controller": self.cfg.controller,
                             "controllers": sorted(REGISTRY), "options": options, "auth": self.cfg.api_key is not None})

    async def page(self, request: Request) -> Response:
        return FileResponse(PAGE_DIR / "index.html", media_type="text/html")


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return JSONResponse(error_body(str(exc.detail), "invalid_request_error", None, str(exc.status_code)),
                        status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body(f"internal error: {exc!r}", "server_error", None, "server_error"), status_code=500)


def create_app(cfg: ServeConfig, engine_opener: Callable[[], Awaitable[Any]],
               on_engine_error: Callable[[EngineError], None] | None = None) -> Starlette:
    """The ``ponder serve`` app; ``engine_opener`` opens the one engine when the app starts (an async
    function returning a started engine: ``lambda: open_engine("vllm", model=...)``);
    ``on_engine_error`` is called once if that engine dies (``app.state.server.error`` says why)."""
    server = _Server(cfg, engine_opener, on_engine_error)

    async def chat(request: Request) -> Response:
        return await server.generate(request, "chat")

    async def completions(request: Request) -> Response:
        return await server.generate(request, "completions")

    routes = [
        Route("/", server.page, methods=["GET"]),
        Mount("/page", StaticFiles(directory=PAGE_DIR), name="page"),
        Route("/ponder/config", server.page_config, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
        Route("/metrics", server.metrics_text, methods=["GET"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.server = server
    return app
