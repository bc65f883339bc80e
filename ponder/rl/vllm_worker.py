"""The vLLM worker extension that receives a trainer's weights (loaded in vLLM's worker process).

vLLM mixes ``worker_extension_cls`` into its worker class, so its methods can be called through
``AsyncLLM.collective_rpc``. Tensors do not survive that RPC's serialisation (the worker receives
nested lists), so the weights travel as a safetensors file (on ``/dev/shm``: memory, no disk) and
only its path crosses the RPC. The worker reads every tensor of it and hands them to vLLM's public
in-place reload (``reload_weights(weights_iterator=...)``, the worker method behind
``LLM.collective_rpc("reload_weights")``), which runs the model's own ``load_weights`` (fused qkv
and gate/up projections, tied embeddings). This module imports nothing heavy at module level:
the engine-core process imports it by name.

    VLLMEngine(model, worker_extension_cls="ponder.rl.vllm_worker.WeightReceiver")
    await llm.collective_rpc("ponder_load_weights", kwargs={"path": "/dev/shm/.../model.safetensors"})
"""

from __future__ import annotations

__all__ = ["WeightReceiver", "EXTENSION"]

EXTENSION = "ponder.rl.vllm_worker.WeightReceiver"
"""The qualified name to pass as vLLM's ``worker_extension_cls``."""


class WeightReceiver:
    """Mixed into vLLM's worker: ``ponder_load_weights(path)`` reloads every weight in ``path``."""

    def ponder_load_weights(self, path: str) -> int:
        """Reload the weights stored in the safetensors file ``path``; returns how many tensors it held."""
        import inspect

        from safetensors.torch import load_file

        tensors = load_file(path)  # plain CPU tensors; vLLM's loaders copy them onto the model's device
        reload = getattr(self.model_runner, "reload_weights", None)
        if reload is not None and "weights_iterator" in inspect.signature(reload).parameters:
            self.reload_weights(weights_iterator=iter(tensors.items()), is_checkpoint_format=True)
        else:  # an older vLLM (CUDA <= 0.31): the model's own loader, as TRL's colocate sync does
            self.model_runner.model.load_weights(iter(tensors.items()))
        return len(tensors)

    def ponder_ready(self, path: str = "") -> dict:
        """What a trainer checks before using this worker: can it read ``path`` (a file the trainer
        wrote in its weight folder), and which logprobs mode does it sample with."""
        import os

        mode = getattr(getattr(self, "model_config", None), "logprobs_mode", None)
        return {"can_read": bool(path) and os.path.isfile(path), "logprobs_mode": str(mode)}
