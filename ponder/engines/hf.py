"""Transformers engine: one decode loop that batches every active request step by step.

New requests are prefilled together and join the running batch at the next step; finished and
aborted ones leave it at the next step, so an abort costs at most the one step already in flight.
The KV cache of the running batch is left-padded to a common length; rows are merged and dropped
by editing the cache tensors, not by re-running prompts. The model runs in a worker thread so the
event loop (controllers, HTTP servers) stays responsive while a step computes.

    from ponder.engines.hf import HFEngine
    engine = HFEngine()            # the embedded tiny reasoner on CPU
    engine = HFEngine.from_model(policy_model, tokenizer)   # RL: live weights, no copy
"""

from __future__ import annotations

import asyncio
import inspect
import random
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal

from ponder.engines.base import EngineStats, request_ids
from ponder.engines.sampling import sample_rows
from ponder.types import Chunk, SamplingParams

__all__ = ["HFEngine"]


@dataclass(eq=False)
class _Request:
    id: str
    prompt: list[int]
    params: SamplingParams
    queue: asyncio.Queue
    generator: Any
    out: list[int] = field(default_factory=list)
    aborted: bool = False
    finished: bool = False

    @property
    def alive(self) -> bool:
        return not (self.aborted or self.finished)


class _Batch:
    """The running batch: its requests, left-padded KV cache, mask and the tokens not yet fed."""

    def __init__(self) -> None:
        self.reqs: list[_Request] = []
        self.cache: Any = None
        self.mask: Any = None  # [B, L] 1 where the cache holds a real token
        self.pending: Any = None  # [B] last sampled token of each row, fed at the next step


class HFEngine:
    """A transformers model behind the Engine protocol.

    Args:
        model: a local path or hub id; default: the embedded tiny reasoner.
        device: torch device string.
        dtype: torch dtype name for the weights.
        max_batch: most requests decoded together; later ones wait their turn.
        logprobs_mode: ``raw`` log-probabilities of the model (vLLM's default) or ``processed``
            ones after temperature scaling (what RL importance ratios need).
        threads: torch intra-op threads (None: leave torch's setting).
    """

    name = "hf"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch: int = 64,
        logprobs_mode: Literal["raw", "processed"] = "raw",
        threads: int | None = None,
        _loaded: tuple[Any, Any] | None = None,
    ) -> None:
        import torch

        from ponder.engines.models import resolve_model

        if threads:
            torch.set_num_threads(threads)
        if _loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            path = resolve_model(model)
            tokenizer = AutoTokenizer.from_pretrained(path)
            net = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()
            self.model_name = path
        else:
            net, tokenizer = _loaded
            self.model_name = str(getattr(net, "name_or_path", "") or model or "in-memory")
        self.model, self.tokenizer = net, tokenizer
        self._keeps_logits = "logits_to_keep" in inspect.signature(net.forward).parameters
        self.device = next(net.parameters()).device
        self.max_batch = max_batch
        self.logprobs_mode = logprobs_mode
        self.max_model_len = int(getattr(net.config, "max_position_embeddings", 1 << 30))
        eos = getattr(getattr(net, "generation_config", None), "eos_token_id", None)
        eos = eos if eos is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.stats = EngineStats()
        self._rng = random.Random()
        self._pending: list[_Request] = []
        self._batch = _Batch()
        self._task: asyncio.Task | None = None
        self._in_step: list[_Request] = []  # requests whose tokens the running step is computing

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **kwargs: Any) -> HFEngine:
        """Wrap an already loaded model (e.g. the policy being trained); its weights are used live."""
        return cls(_loaded=(model, tokenizer), **kwargs)

    # -- protocol ---------------------------------------------------------------------------
    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        import torch

        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ValueError("prompt_ids is empty")
        if len(prompt) >= self.max_model_len:
            raise ValueError(f"prompt has {len(prompt)} tokens; the model's context is {self.max_model_len}")
        seed = params.seed if params.seed is not None else self._rng.getrandbits(63)
        req = _Request(request_id or next(request_ids), prompt, params, asyncio.Queue(), torch.Generator().manual_seed(seed))
        self.stats.requests += 1
        self._pending.append(req)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            while True:
                item = await req.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            if req.alive:  # the consumer left early: abort, the loop drops the row at the next step
                req.aborted = True
                self.stats.aborted_requests += 1
                while not req.queue.empty():  # decoded, queued, never read
                    item = req.queue.get_nowait()
                    self.stats.tokens_after_abort += len(getattr(item, "token_ids", ()))

    def unfinished(self) -> int:
        """Requests the engine is still working on: queued, decoding, or aborted while the
        step that computes their next token is still running."""
        in_flight_aborts = sum(r.aborted for r in self._in_step)
        return sum(r.alive for r in self._pending + self._batch.reqs) + in_flight_aborts

    async def settle(self) -> None:
        """Return once every requested abort has taken effect (the in-flight step has landed)."""
        while any(r.aborted for r in self._in_step):
            await asyncio.sleep(0.001)

    async def start(self) -> None:
        """Ready when made (the model loads in the constructor)."""

    async def aclose(self) -> None:
        for req in self._pending + self._batch.reqs:
            req.aborted = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._batch = _Batch()

    # -- the decode loop --------------------------------------------------------------------
    async def _run(self) -> None:
        while self._pending or any(r.alive for r in self._batch.reqs):
            room = self.max_batch - sum(r.alive for r in self._batch.reqs)
            joining = [r for r in self._pending if r.alive][: max(room, 0)]
            self._pending = [r for r in self._pending if r.alive and r not in joining]
            self._in_step = [r for r in self._batch.reqs + joining if r.alive]
            try:
                sampled = await asyncio.to_thread(self._step, joining)
            except Exception as exc:  # keep the engine usable: fail this batch's requests, reset
                for req in self._batch.reqs + joining:
                    if req.alive:
                        req.finished = True
                        req.queue.put_nowait(RuntimeError(f"hf engine step failed: {exc!r}"))
                self._batch = _Batch()
                continue
            finally:
                self._in_step = []
            for req, token, logprob, top in sampled:
                self._deliver(req, token, logprob, top)

    def _deliver(self, req: _Request, token: int, logprob: float, top: dict[int, float] | None) -> None:
        self.stats.count(req.id)
        if not req.alive:
            self.stats.tokens_after_abort += 1
            return
        req.out.append(token)
        p = req.params
        finish, reason = None, None
        if token in self.eos_ids and not p.ignore_eos:
            finish = "stop"
        elif token in p.stop_token_ids:
            finish, reason = "stop", token
        elif p.stop and (hit := self._stop_string(req)) is not None:
            finish, reason = "stop", hit
        elif len(req.out) >= p.max_tokens or len(req.prompt) + len(req.out) >= self.max_model_len:
            finish = "length"
        want_lp = p.logprobs is not None
        req.queue.put_nowait(
            Chunk((token,), (logprob,) if want_lp else None, (top,) if p.logprobs else None, finish, reason)
        )
        if finish:
            req.finished = True

    def _stop_string(self, req: _Request) -> str | None:
        window = max(len(s) for s in req.params.stop) + 2  # every token decodes to >= 1 character
        tail = self.tokenizer.decode(req.out[-window:], skip_special_tokens=False)
        return next((s for s in req.params.stop if s in tail), None)

    # -- model work (runs in a worker thread; only this touches the batch tensors) ----------
    def _step(self, joining: list[_Request]) -> list[tuple[_Request, int, float, dict | None]]:
        import torch

        with torch.inference_mode():
            b = self._batch
            keep = [i for i, r in enumerate(b.reqs) if r.alive]
            if len(keep) < len(b.reqs):
                self._select(keep)
            logits, reqs = [], []
            if b.reqs:
                logits.append(self._decode())
                reqs += b.reqs
            if joining:
                logits.append(self._prefill_and_merge(joining))
                reqs += joining
            if not reqs:
                return []
            rows = torch.cat(logits).float()
            tokens, lps, tops = sample_rows(rows, [r.params for r in reqs], [r.generator for r in reqs], self.logprobs_mode)
            b.pending = torch.tensor(tokens, device=self.device)
            return list(zip(reqs, tokens, lps, tops))

    def _forward(self, input_ids, mask, cache):
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1]:]
        # logits_to_keep=1: only the last position is sampled; the whole prompt's logits would be
        # batch x prompt x vocab floats (64 x 350 x 151,936 = 13.6 GB for a Qwen vocabulary)
        keep = {"logits_to_keep": 1} if self._keeps_logits else {}
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True, **keep)
        return out.logits[:, -1, :], out.past_key_values

    def _decode(self):
        import torch

        b = self._batch
        b.mask = torch.cat([b.mask, torch.ones_like(b.mask[:, :1])], dim=1)
        logits, b.cache = self._forward(b.pending[:, None], b.mask, b.cache)
        return logits

    def _prefill_and_merge(self, joining: list[_Request]):
        import torch
        from transformers import DynamicCache

        width = max(len(r.prompt) for r in joining)
        ids = torch.full((len(joining), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(joining), width), dtype=torch.long)
        for i, r in enumerate(joining):  # left padding: every row's last prompt token is at the end
            ids[i, width - len(r.prompt):] = torch.tensor(r.prompt)
            mask[i, width - len(r.prompt):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        logits, cache = self._forward(ids, mask, DynamicCache(config=self.model.config))
        b = self._batch
        if not b.reqs:
            b.cache, b.mask, b.reqs = cache, mask, list(joining)
            return logits
        b.cache, b.mask = _merge(b.cache, b.mask, cache, mask, self.model.config)
        b.reqs = b.reqs + list(joining)
        return logits

    def _select(self, keep: list[int]) -> None:
        import torch

        b = self._batch
        b.reqs = [b.reqs[i] for i in keep]
        if not keep:
            b.cache = b.mask = b.pending = None
            return
        idx = torch.tensor(keep, device=self.device)
        b.mask, b.pending = b.mask[idx], b.pending[idx]
        start = int((b.mask.sum(0) > 0).nonzero()[0])  # columns that are padding for every row left
        b.mask = b.mask[:, start:]
        for layer in b.cache.layers:
            layer.keys, layer.values = layer.keys[idx, :, start:], layer.values[idx, :, start:]


def _merge(cache_a, mask_a, cache_b, mask_b, config):
    """Stack two left-padded batches into one, padding the shorter on the left."""
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache

    width = max(mask_a.shape[1], mask_b.shape[1])

    def pad(t, dim_from_end):  # left-pad along the sequence axis
        missing = width - t.shape[-dim_from_end]
        if not missing:
            return t
        spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
        return F.pad(t, spec)

    merged = DynamicCache(config=config)
    for i, (la, lb) in enumerate(zip(cache_a.layers, cache_b.layers)):
        keys = torch.cat([pad(la.keys, 2), pad(lb.keys, 2)])
        values = torch.cat([pad(la.values, 2), pad(lb.values, 2)])
        merged.update(keys, values, i)
    return merged, torch.cat([pad(mask_a, 1), pad(mask_b, 1)])
