"""Streaming client for any OpenAI-compatible ``/v1/completions`` server (vLLM serve, SGLang).

The prompt goes out as token ids and token ids come back (vLLM's ``return_token_ids``, or the
``token_id:N`` form of logprob entries with ``return_tokens_as_token_ids``), so budget forcing can
continue an exact prefix through a server. Leaving the stream early closes the HTTP connection,
which the server treats as an abort.

    engine = OpenAIEngine("path/or/hub-id", base_url="http://127.0.0.1:8000/v1")
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from ponder.engines.base import EngineStats, request_ids
from ponder.types import Chunk, SamplingParams

__all__ = ["OpenAIEngine"]


class OpenAIEngine:
    """An OpenAI-compatible completions server behind the Engine protocol.

    Args:
        model: the tokenizer to render prompts with (local path or hub id); also the served
            model name unless ``served_model`` is given. Default: the embedded tiny reasoner.
        base_url: the server's ``/v1`` root.
        api_key: sent as a bearer token when set.
        served_model: the model name the server knows (default: ``model``).
        timeout_s: connect/read timeout for one request's stream.
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        served_model: str | None = None,
        tokenizer: Any = None,
        timeout_s: float = 600.0,
    ) -> None:
        import httpx
        from transformers import AutoTokenizer

        from ponder.engines.models import resolve_model

        self.model_name = resolve_model(model)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model_name)
        self.served_model = served_model or self.model_name
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))
        self.stats = EngineStats()
        self._open = 0

    def unfinished(self) -> int:
        """Streams this client still has open."""
        return self._open

    def _body(self, prompt_ids: list[int], p: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_model, "prompt": list(prompt_ids), "max_tokens": p.max_tokens,
            "temperature": p.temperature, "top_p": p.top_p, "stream": True,
            "return_token_ids": True, "return_tokens_as_token_ids": True,
            "skip_special_tokens": False, "include_stop_str_in_output": True,
        }
        optional = {"top_k": p.top_k or None, "seed": p.seed, "stop": list(p.stop) or None,
                    "stop_token_ids": list(p.stop_token_ids) or None, "ignore_eos": p.ignore_eos or None,
                    "logprobs": p.logprobs}
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        import httpx

        rid = request_id or next(request_ids)
        self.stats.requests += 1
        url = f"{self.base_url}/completions"
        finished = False
        self._open += 1
        try:
            async with self._client.stream("POST", url, json=self._body(prompt_ids, params)) as resp:
                if resp.status_code != 200:
                    detail = (await resp.aread()).decode(errors="replace")[:500]
                    raise RuntimeError(f"{url} answered {resp.status_code}: {detail}")
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = _parse(json.loads(data), params.logprobs, url)
                    if chunk is None:
                        continue
                    self.stats.count(rid, len(chunk.token_ids))
                    finished = chunk.finish_reason is not None
                    yield chunk
                    if finished:
                        return
        except httpx.ConnectError as exc:
            raise ConnectionError(f"cannot reach the completions server at {url}: {exc}") from None
        finally:
            self._open -= 1
            if not finished:
                self.stats.aborted_requests += 1  # leaving the `async with` closed the connection

    async def aclose(self) -> None:
        await self._client.aclose()


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
