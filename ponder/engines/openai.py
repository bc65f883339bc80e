"""Streaming client for any OpenAI-compatible ``/v1/completions`` server (vLLM serve, SGLang).

The prompt goes out as token ids and token ids come back (vLLM's ``return_token_ids``, or the
``token_id:N`` form of logprob entries with ``return_tokens_as_token_ids``), so budget forcing can
continue an exact prefix through a server. Leaving the stream early closes the HTTP connection,
which the server treats as an abort.

Engine-side counts: when the server publishes Prometheus ``/metrics`` (vLLM always, SGLang with
``--enable-metrics``), `stats.generated_tokens` is the server's own count of generated tokens
since this engine first looked, and `unfinished()` the requests the server still holds (running
or waiting), so an abort is over when the *server* has stopped, not when the client closed its
socket. Tokens the server generated for an aborted request beyond what the client received are
added to that request's ``stats.per_request`` and to ``stats.tokens_after_abort`` once the server
holds no more requests than the client has open. These are the server's figures: with other
clients on the same server they include their work. vLLM's counter is kept by its front-end, so
the one decode step already in flight when the abort reaches its engine core is not in it. A
server without metrics is said so (``stats.engine_side = False``); the counts are then the tokens
this client received.

The served model's context length is read from ``/v1/models`` (vLLM lists ``max_model_len``) and
each request's ``max_tokens`` is capped to fit, as the in-process engines stop at the context.

A server that cannot be reached at ``start()``, or refuses the API key, is an `EngineError` ("could
not start"). A server that goes away later (new connections refused, or an open stream broken off
while the server no longer answers) is an `EngineError` ("died") for that request and every later
one, as a dead in-process engine is: eval stops and keeps its rows, serve turns unhealthy. A stream
broken off by a server that still answers, or silent for ``timeout_s``, fails only its own request.

    engine = OpenAIEngine("path/or/hub-id", base_url="http://127.0.0.1:8000/v1")
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

from ponder.engines.base import EngineError, EngineStats, request_ids
from ponder.engines.server_counts import ServerCounts, metrics_url, parse_metrics
from ponder.types import Chunk, SamplingParams

__all__ = ["OpenAIEngine"]

REFRESH_S = 0.01
"""Reads of ``stats`` or ``unfinished()`` within this many seconds reuse the last scrape."""


class OpenAIEngine:
    """An OpenAI-compatible completions server behind the Engine protocol.

    Args:
        model: the tokenizer to render prompts with (local path or hub id); also the served
            model name unless ``served_model`` is given. Default: the embedded tiny reasoner.
        base_url: the server's ``/v1`` root.
        api_key: sent as a bearer token when set.
        served_model: the model name the server knows (default: ``model``).
        timeout_s: connect/read timeout for one request's stream.
        max_model_len: the served context length, when the server does not list it.
        metrics: read engine-side counts from the server's ``/metrics`` (False: client counts).
    """

    name = "openai"
    in_transit_tokens = 16
    """Tokens the server may decode between the client closing a stream and the server noticing
    the disconnect (what the conformance abort check allows beyond one decode step). Measured on
    the tiny reasoner over loopback on a busy 2-core machine: 0 to 7."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        served_model: str | None = None,
        tokenizer: Any = None,
        timeout_s: float = 600.0,
        max_model_len: int | None = None,
        metrics: bool = True,
    ) -> None:
        import httpx
        from transformers import AutoTokenizer

        from ponder.engines.models import resolve_model

        self.model_name = resolve_model(model)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model_name)
        self.served_model = served_model or self.model_name
        self.base_url = base_url.rstrip("/")
        self.max_model_len = max_model_len
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._sync = httpx.Client(headers=headers, timeout=httpx.Timeout(10.0))
        self._metrics_url = metrics_url(self.base_url) if metrics else None
        self._stats = EngineStats(engine_side=False)
        self._open = 0
        self._received = 0  # tokens this client received, all requests
        self._attributed = 0  # server tokens added to aborted requests after the fact
        self._pending: list[str] = []  # aborted requests the server has not yet been seen to drop
        self._baseline: int | None = None
        self._held = 0
        self._scraped = 0.0
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._dead: EngineError | None = None
        self._timeout_s = timeout_s

    # -- engine-side counts -----------------------------------------------------------------
    @property
    def stats(self) -> EngineStats:
        """The server's counts (read now), or the client's when the server has no metrics."""
        self._refresh()
        return self._stats

    def unfinished(self) -> int:
        """Requests the server still holds (at least the streams this client has open)."""
        self._refresh()
        return max(self._open, self._held) if self._stats.engine_side else self._open

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Return once the server holds no request this client has aborted (or after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self._metrics_url is not None and time.monotonic() < deadline:
            self._apply(await self._scrape_async())
            if not self._pending:
                return
            await asyncio.sleep(0.005)

    def _refresh(self) -> None:
        if self._metrics_url is None or time.monotonic() - self._scraped < REFRESH_S:
            return
        try:
            resp = self._sync.get(self._metrics_url)
        except Exception:  # the server went away: keep the last reading
            return
        self._apply(self._counts(resp))

    async def _scrape_async(self) -> ServerCounts | None:
        try:
            resp = await self._client.get(self._metrics_url, timeout=10.0)
        except Exception:
            return None
        return self._counts(resp)

    def _counts(self, resp: Any) -> ServerCounts | None:
        self._scraped = time.monotonic()
        counts = parse_metrics(resp.text) if resp.status_code == 200 else None
        if counts is None and resp.status_code in (200, 404):
            self._metrics_url = None  # no metrics page, or none of a known server: client counts
            self._stats.engine_side = False
        return counts

    def _apply(self, counts: ServerCounts | None) -> None:
        """Take one reading of the server's counters."""
        if counts is None:
            return
        if self._baseline is None:
            self._baseline = counts.generated - self._received
        self._stats.engine_side = True
        self._held = counts.held
        made = counts.generated - self._baseline
        if self._pending and counts.held <= self._open:  # the server dropped every aborted request
            extra = made - self._received - self._attributed
            if extra > 0:
                share, rest = divmod(extra, len(self._pending))
                for i, rid in enumerate(self._pending):
                    got = share + (i < rest)
                    self._stats.per_request[rid] = self._stats.per_request.get(rid, 0) + got
                self._attributed += extra
                self._stats.tokens_after_abort += extra
            self._pending.clear()
        self._stats.generated_tokens = max(made, self._received + self._attributed)

    # -- the context length -----------------------------------------------------------------
    async def start(self) -> None:
        """Read the served context length and the server's counters before the first request."""
        if self._started:
            return
        self._start_lock = self._start_lock or asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            listed = await self._models()
            if self.max_model_len is None:
                self.max_model_len = _context(listed, self.served_model)
            if self._metrics_url is not None:
                self._apply(await self._scrape_async())
            self._started = True

    async def _models(self) -> list[dict[str, Any]]:
        """The server's ``/v1/models`` list ([] when it has none); an unreachable server, or one that
        refuses the key, cannot start."""
        import httpx

        url = f"{self.base_url}/models"
        try:
            resp = await self._client.get(url, timeout=10.0)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise EngineError(self.name, self.served_model, f"cannot reach the server at {url}: {_said(exc)}") from None
        if resp.status_code in (401, 403):
            raise EngineError(self.name, self.served_model, f"{url} answered {resp.status_code}: the server refused "
                                                            f"the API key (pass the one it was started with)")
        try:
            models = (resp.json().get("data") or []) if resp.status_code == 200 else []
        except Exception:  # a server without /v1/models: requests go out uncapped
            return []
        return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []

    async def _gone(self, url: str, exc: Exception) -> EngineError | None:
        """The engine's death when the server refuses connections (``exc``: how a request failed).

        The check has a client of its own: the streams' connection pool may be full, and a full pool
        or a slow answer is no death."""
        import httpx

        try:
            async with httpx.AsyncClient(headers=self._client.headers, timeout=5.0) as check:
                await check.get(f"{self.base_url}/models")
        except (httpx.ConnectError, httpx.ConnectTimeout):
            self._dead = self._dead or EngineError(self.name, self.served_model,
                                                   f"the server at {url} went away: {_said(exc)}", started=True)
        except httpx.HTTPError:
            pass
        return self._dead

    def _body(self, prompt_ids: list[int], p: SamplingParams) -> dict[str, Any]:
        max_tokens = p.max_tokens
        if self.max_model_len is not None:
            if len(prompt_ids) >= self.max_model_len:
                raise ValueError(f"prompt has {len(prompt_ids)} tokens; the served model's context is {self.max_model_len}")
            max_tokens = min(max_tokens, self.max_model_len - len(prompt_ids))
        body: dict[str, Any] = {
            "model": self.served_model, "prompt": list(prompt_ids), "max_tokens": max_tokens,
            "temperature": p.temperature, "top_p": p.top_p, "stream": True,
            "return_token_ids": True, "return_tokens_as_token_ids": True,
            "skip_special_tokens": False, "include_stop_str_in_output": True,
        }
        optional = {"top_k": p.top_k or None, "seed": p.seed, "stop": list(p.stop) or None,
                    "stop_token_ids": list(p.stop_token_ids) or None, "ignore_eos": p.ignore_eos or None,
                    "logprobs": p.logprobs}
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    def _refused(self, url: str, status: int, detail: str, p: SamplingParams) -> Exception:
        try:  # OpenAI-style {"error": {"message": ...}}
            detail = str(json.loads(detail)["error"]["message"])
        except Exception:
            pass
        if status == 400 and self.max_model_len is None and "max_tokens" in detail:
            return ValueError(f"{url} refused max_tokens={p.max_tokens}: {detail.strip()[:300]} (the server does not "
                              f"list its context length in /v1/models, so ponder cannot cap requests to it: pass a "
                              f"smaller --max-tokens, or max_model_len= to the engine)")
        return RuntimeError(f"{url} answered {status}: {detail}")

    # -- protocol ---------------------------------------------------------------------------
    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        import httpx

        if self._dead is not None:  # a new error each time: one raised again would pile up tracebacks
            raise EngineError(self._dead.kind, self._dead.model, self._dead.cause, started=True)
        await self.start()
        body = self._body(prompt_ids, params)
        rid = request_id or next(request_ids)
        self._stats.requests += 1
        url = f"{self.base_url}/completions"
        finished = False
        self._open += 1
        try:
            async with self._client.stream("POST", url, json=body) as resp:
                if resp.status_code != 200:
                    detail = (await resp.aread()).decode(errors="replace")[:500]
                    finished = True
                    raise self._refused(url, resp.status_code, detail, params)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = _parse(json.loads(data), params.logprobs, url)
                    if chunk is None:
                        continue
                    self._received += len(chunk.token_ids)
                    self._stats.count(rid, len(chunk.token_ids))
                    finished = chunk.finish_reason is not None
                    yield chunk
                    if finished:
                        return
        except httpx.TimeoutException as exc:
            finished = True
            raise TimeoutError(f"{url} timed out on request {rid}: {_waited(exc, self._timeout_s)}") from None
        except httpx.TransportError as exc:  # refused, reset, or a stream broken off
            finished = True
            dead = await self._gone(url, exc)
            if dead is not None:
                raise dead from None
            raise ConnectionError(f"{url} broke off request {rid}: {_said(exc)}") from None
        except httpx.HTTPError as exc:  # a body httpx cannot decode, too many redirects
            finished = True
            raise RuntimeError(f"{url} failed request {rid}: {type(exc).__name__}: {_said(exc)}") from None
        finally:
            self._open -= 1
            if not finished:  # leaving the `async with` closed the connection: the server aborts
                self._stats.aborted_requests += 1
                self._pending.append(rid)

    async def aclose(self) -> None:
        await self._client.aclose()
        self._sync.close()


def _said(exc: Exception) -> str:
    """httpx's error in one line (some carry no message)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _waited(exc: Exception, read_s: float) -> str:
    """What an httpx timeout waited for, in words."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return "no connection within 10 s"
    if isinstance(exc, httpx.PoolTimeout):
        return f"no free connection in the client's pool within {read_s:g} s"
    if isinstance(exc, httpx.WriteTimeout):
        return f"the request could not be sent within {read_s:g} s"
    return f"nothing streamed for {read_s:g} s (the engine's timeout_s)"


def _context(models: list[dict[str, Any]], served: str) -> int | None:
    """The served model's context length from ``/v1/models`` (vLLM's ``max_model_len``), if listed."""
    mine = [m for m in models if m.get("id") == served] or (models if len(models) == 1 else [])
    length = mine[0].get("max_model_len") if mine else None
    return int(length) if isinstance(length, (int, float)) and length > 0 else None


def _parse(obj: dict[str, Any], k: int | None, url: str) -> Chunk | None:
    if "error" in obj:
        raise RuntimeError(f"{url} streamed an error: {obj['error']}")
    choices = obj.get("choices") or []
    if not choices:
        return None
    c = choices[0]
    lp = c.get("logprobs") or {}
    ids = c.get("token_ids")
    if ids is None and lp.get("tokens") is not None:  # servers without return_token_ids
        ids = [int(t.split(":", 1)[1]) for t in lp["tokens"]]
    if ids is None:
        if c.get("finish_reason") is None and c.get("text"):
            raise RuntimeError(f"{url} returned text without token ids; it must support return_token_ids")
        ids = []
    logprobs = tops = None
    if k is not None and lp.get("token_logprobs") is not None:
        logprobs = tuple(float(x) for x in lp["token_logprobs"])
        if k and lp.get("top_logprobs") is not None:
            tops = tuple({int(t.split(":", 1)[1]): float(v) for t, v in d.items()} for d in lp["top_logprobs"])
    finish = c.get("finish_reason")
    if not ids and finish is None:
        return None
    return Chunk(tuple(ids), logprobs, tops, finish, c.get("stop_reason"))
