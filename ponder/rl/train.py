"""`ponder train sgrpo|grpo`: S-GRPO (or plain GRPO as the baseline) on TRL, configured from YAML.

    ponder train sgrpo --config recipes/tiny-sgrpo.yaml max_steps=50 learning_rate=1e-5
    ponder train grpo --config recipes/tiny-sgrpo.yaml                    # the plain-GRPO baseline

Both algorithms share the engine (the live policy behind ponder's Engine protocol), the verifier
and the data; they differ only in the rollout (one serial group vs G independent samples) and the
reward (decaying vs 0/1). ``engine=vllm`` decodes the rollouts in a vLLM engine whose weights are
synced from the trainer before every step (`ponder.rl.weight_sync`), with TRL's truncated
importance sampling correcting the sampler/learner mismatch: in each training process
(``vllm_mode=colocate``) or on a vLLM server started apart (``vllm_mode=server``,
`ponder.rl.rollout_server`); ``engine=hf`` decodes on the trainer's model itself. Bad configurations fail before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.assignments import parse_assignments

__all__ = ["TrainConfig", "load_config", "load_training_problems", "load_eval_problems", "check_engine", "train"]

_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo")
"""TRL 1.16's loss types (``vespo`` left out: it needs a sequence-level sampling mode ponder does not set)."""


@dataclass(frozen=True)
class TrainConfig:
    """One RL run."""

    algo: Literal["sgrpo", "grpo"] = "sgrpo"
    """``sgrpo``: serial groups with decaying rewards; ``grpo``: independent samples, 0/1 reward."""
    engine: Literal["hf", "vllm"] = "hf"
    """Where rollouts decode: ``vllm`` (a vLLM engine synced to the trainer's weights before every
    step, the 7B+ setting) or ``hf`` (transformers generation on the trainer's model: no second
    copy, for debugging and for tiny models on CPU, where it is measured faster)."""
    vllm_mode: Literal["colocate", "server"] = "colocate"
    """engine=vllm: ``colocate`` starts one vLLM engine in each training process, sharing its device;
    ``server`` decodes on a vLLM server started apart (``ponder engine-server --rl``), so the
    trainer keeps its devices (`ponder.rl.rollout_server`)."""
    vllm_server_url: str = "http://127.0.0.1:8000"
    """vllm_mode=server: the server's root URL."""
    vllm_weight_dir: str | None = None
    """vllm_mode=server: a folder the trainer writes the weights to and the server reads them from
    (default ``/dev/shm``: the server is on this machine; else a file system both mount)."""
    vllm_gpu_memory_utilization: float = 0.3
    """engine=vllm colocate on a GPU: the share of GPU memory vLLM may take (the rest trains)."""
    loss_type: str = "dapo"
    """TRL's loss aggregation (``dapo``: token-level, normalised by the batch's active tokens, no
    length bias; ``grpo``: per-sequence mean, which favours short right answers on its own)."""
    bf16: bool = False
    """Train in bfloat16 mixed precision (GPU recipes) and serve vLLM in bfloat16 (else float32)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (long completions on 7B+ models)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimizer step: each process trains on prompts_per_step * num_generations /
    gradient_accumulation_steps completions at a time (the rollout still covers the whole step)."""
    model: str | None = None
    """Policy to train (default: the embedded tiny reasoner)."""
    dataset: str = "arith"
    """A ponder benchmark name (arith trains on seed-2 problems, disjoint from eval's seed 1)."""
    data: str | None = None
    """A local file of problems (ponder's schema, or the benchmark's with ``dataset``)."""
    limit: int | None = 2000
    """Most training problems."""
    num_generations: int = 8
    """Group size G (S-GRPO: m = G - 1 exits plus the full path)."""
    prompts_per_step: int = 4
    """Prompts per optimizer step."""
    max_steps: int = 100
    """Optimizer steps."""
    learning_rate: float = 1e-6
    """The paper's 1e-6 suits 7B+ models; the tiny reasoner's recipe sets its own."""
    lr_scheduler: str = "linear"
    """transformers scheduler name (``linear`` decays to 0 over ``max_steps``; ``constant`` does not)."""
    beta: float = 0.0
    """KL coefficient against the reference model (0: none, TRL's default)."""
    temperature: float = 1.0
    """Rollout temperature; TRL computes log-probabilities at the same temperature."""
    max_completion_length: int = 400
    """Most tokens of a reasoning path."""
    answer_tokens: int = 32
    """Most tokens of each forced answer (S-GRPO)."""
    save_steps: int = 50
    """Checkpoint every this many steps (optimizer, scheduler, RNG and step are saved by TRL)."""
    output_dir: str = "runs/sgrpo"
    """Where checkpoints and logs go."""
    resume: bool = False
    """Continue from the newest checkpoint in ``output_dir``."""
    seed: int = 0
    """Seed of the trainer and of the rollouts."""
    segment_tokens: int = 0
    """UloRL: decode at most this many tokens per sample per step, carrying unfinished samples
    over to the next step (0: whole rollouts; ``max_completion_length`` stays the global maximum)."""
    carry_groups: int | None = None
    """UloRL: groups in flight beyond one step's batch, so long samples wait while short groups
    train (default: ``prompts_per_step``; drawn once from the training prompts)."""
    dmmpt: bool = False
    """UloRL's masking of well-mastered positive tokens."""
    dmmpt_tau: float = 0.99
    """DMMPT: mask tokens predicted with p >= tau ..."""
    dmmpt_sigma: float = 0.2
    """... in positive samples whose mean token entropy is below sigma."""
    eval_steps: int = 0
    """Evaluate on held-out problems every this many steps, and before the first (0: never)."""
    eval_problems: int = 128
    """Held-out problems per evaluation (greedy and one sample at ``eval_temperature`` each)."""
    eval_dataset: str | None = None
    """Benchmark of the held-out set (default: arith's seed-1 eval set when training on arith)."""
    eval_temperature: float = 0.7
    """Temperature of the sampled held-out evaluation."""

    def __post_init__(self) -> None:
        if self.algo not in ("sgrpo", "grpo"):
            raise ValueError(f"algo must be sgrpo or grpo (got {self.algo!r})")
        if self.engine not in ("hf", "vllm"):
            raise ValueError(f"engine must be hf or vllm (got {self.engine!r})")
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"vllm_mode must be colocate or server (got {self.vllm_mode!r})")
        if self.vllm_mode == "server" and self.engine != "vllm":
            raise ValueError("vllm_mode=server needs engine=vllm")
        if self.engine == "vllm" and self.vllm_mode == "colocate":  # a server's trainer needs no local vLLM
            from ponder.rl.weight_sync import require_vllm

            require_vllm()
        if not 0 < self.vllm_gpu_memory_utilization < 1:
            raise ValueError(f"vllm_gpu_memory_utilization must lie in (0, 1) (got {self.vllm_gpu_memory_utilization!r})")
        if self.loss_type not in _LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(_LOSS_TYPES)} (got {self.loss_type!r})")
        if not isinstance(self.num_generations, int) or self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2, i.e. m = num_generations - 1 >= 1 (got {self.num_generations!r})")
        for name in ("prompts_per_step", "max_steps", "max_completion_length", "answer_tokens", "save_steps",
                     "eval_problems"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {getattr(self, name)!r})")
        if not isinstance(self.gradient_accumulation_steps, int) or self.gradient_accumulation_steps < 1 or (
                self.prompts_per_step * self.num_generations) % self.gradient_accumulation_steps:
            raise ValueError(f"gradient_accumulation_steps must be an integer >= 1 dividing prompts_per_step * "
                             f"num_generations (got {self.gradient_accumulation_steps!r})")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError("learning_rate and temperature must be > 0")
        if not isinstance(self.segment_tokens, int) or self.segment_tokens < 0:
            raise ValueError(f"segment_tokens must be an integer >= 0 (got {self.segment_tokens!r})")
        if self.segment_tokens > self.max_completion_length:
            raise ValueError(f"segment_tokens ({self.segment_tokens}) exceeds max_completion_length "
                             f"({self.max_completion_length}), the global maximum")
        if self.carry_groups is not None and (not isinstance(self.carry_groups, int) or self.carry_groups < 0):
            raise ValueError(f"carry_groups must be an integer >= 0 (got {self.carry_groups!r})")
        if self.dmmpt:
            from ponder.rl.ulorl import DMMPTConfig

            DMMPTConfig(self.dmmpt_tau, self.dmmpt_sigma)
        from transformers import SchedulerType

        if self.lr_scheduler not in {t.value for t in SchedulerType}:
            raise ValueError(f"lr_scheduler {self.lr_scheduler!r} is not a transformers scheduler; known: "
                             f"{', '.join(t.value for t in SchedulerType)}")
        if not isinstance(self.eval_steps, int) or self.eval_steps < 0:
            raise ValueError(f"eval_steps must be an integer >= 0 (got {self.eval_steps!r})")
        if self.eval_steps and self.eval_dataset is None and not (self.dataset == "arith" and self.data is None):
            raise ValueError("eval_steps needs eval_dataset (a held-out benchmark) when not training on arith")


def load_config(path: str | Path | None, overrides: list[str] = (), **fixed: Any) -> TrainConfig:
    """Read a YAML recipe, apply ``key=value`` overrides, and validate; errors name the key and file."""
    import yaml

    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read the recipe: {exc}".splitlines()[0]) from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a recipe is a mapping of TrainConfig fields")
    values.update(parse_assignments(overrides, "an override"))
    values.update({k: v for k, v in fixed.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path or 'overrides'}: unknown field {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TrainConfig(**values)


def load_training_problems(cfg: TrainConfig):
    """The training problems; all must have a gold answer and one answer kind with a verifier."""
    from ponder.benchmarks.arith import training_problems
    from ponder.types import Problem
    from ponder.verifiers import REGISTRY

    if cfg.dataset == "arith" and cfg.data is None:
        items = [Problem(p.prompt, gold=str(p.answer), answer_kind="integer", id=p.id)
                 for p in training_problems(cfg.limit or 2000)]  # disjoint from the held-out pool
    else:
        from ponder.benchmarks.registry import load_problems

        items = load_problems(None if cfg.data and cfg.dataset == "arith" else cfg.dataset, cfg.data, cfg.limit)
    missing = [p.id for p in items if p.gold in (None, "")]
    if missing:
        raise ValueError(f"{cfg.data or cfg.dataset}: no answer for row(s) {', '.join(missing[:5])}; RL needs gold answers")
    kinds = {p.answer_kind for p in items}
    if len(kinds) != 1 or next(iter(kinds)) not in REGISTRY:
        raise ValueError(f"{cfg.data or cfg.dataset}: training needs one answer kind with a verifier "
                         f"({', '.join(REGISTRY)}); found {', '.join(sorted(kinds))}")
    if not items:
        raise ValueError(f"{cfg.data or cfg.dataset}: no problems")
    return items


def check_engine(cfg: TrainConfig) -> None:
    """Fail (ValueError, one line) when ``cfg``'s rollout server is unreachable or unfit; a no-op otherwise."""
    if cfg.engine == "vllm" and cfg.vllm_mode == "server":
        from ponder.rl.rollout_server import check_server

        check_server(cfg.vllm_server_url, cfg.vllm_weight_dir)


def load_eval_problems(cfg: TrainConfig) -> list:
    """The held-out problems of the periodic evaluation (none when ``eval_steps`` is 0)."""
    if not cfg.eval_steps:
        return []
    from ponder.benchmarks.registry import load_problems

    return load_problems(cfg.eval_dataset or "arith", None, cfg.eval_problems)  # arith: the seed-1 eval set


def train(cfg: TrainConfig, policy: Any = None) -> Any:
    """Build the TRL trainer for ``cfg`` and run it; returns the trainer.

    Args:
        cfg: the run.
        policy: engine=vllm: an already started `ponder.rl.weight_sync.SyncedPolicy` of ``cfg.model``
            to roll out on instead of starting one (several runs in one process share an engine:
            it is synced to this trainer's weights before its first rollout, and left open).
    """
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer
    from transformers.trainer_utils import get_last_checkpoint

    from ponder.engines.models import resolve_model
    from ponder.rl.rollout import sgrpo_reward

    items = load_training_problems(cfg)  # fails on bad data before the model loads
    held_out = load_eval_problems(cfg)
    path = resolve_model(cfg.model)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    rollout = _rollout(cfg, tok, items)
    ulorl = bool(cfg.segment_tokens or cfg.dmmpt)
    trainer = GRPOTrainer(model=model, reward_funcs=[sgrpo_reward], args=_grpo_args(cfg, ulorl), processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": [p.prompt for p in items]}), rollout_func=rollout)
    from ponder.rl.evaluate import HeldOutEval, JsonlLog

    trainer.add_callback(JsonlLog(cfg.output_dir))
    if held_out:
        trainer.add_callback(HeldOutEval(tok, held_out, cfg.eval_steps, cfg.output_dir, cfg.eval_temperature,
                                         cfg.max_completion_length))
    last = get_last_checkpoint(cfg.output_dir) if cfg.resume and Path(cfg.output_dir).exists() else None
    if ulorl:
        from ponder.rl.ulorl import PoolCheckpoint

        trainer.add_callback(PoolCheckpoint(rollout))
        if last is not None:
            rollout.load(last)  # the unfinished samples and waiting groups carry on
    owned = None
    if cfg.engine == "vllm":
        from ponder.rl.weight_sync import attach

        if policy is None:
            policy = owned = _start_policy(cfg, trainer, path, tok)
        attach(trainer, policy)
    try:
        trainer.train(resume_from_checkpoint=last)
        trainer.save_model(str(Path(cfg.output_dir) / "final"))
    finally:
        if owned is not None:
            owned.close()
    return trainer


def _rollout(cfg: TrainConfig, tok: Any, items: list) -> Any:
    """The ``rollout_func`` of ``cfg``: UloRL segments, S-GRPO serial groups or GRPO samples."""
    from ponder.rl.grpo import GRPORollout
    from ponder.rl.sgrpo import SGRPORollout

    golds = {p.prompt: p.gold for p in items}
    kind = items[0].answer_kind
    if cfg.segment_tokens or cfg.dmmpt:
        from ponder.rl.ulorl import DMMPTConfig, SegmentRollout

        return SegmentRollout(tok, golds, answer_kind=kind, algo=cfg.algo, answer_tokens=cfg.answer_tokens,
                              segment_tokens=cfg.segment_tokens or cfg.max_completion_length,
                              dmmpt=DMMPTConfig(cfg.dmmpt_tau, cfg.dmmpt_sigma) if cfg.dmmpt else None,
                              extra_groups=0 if not cfg.segment_tokens else (
                                  cfg.prompts_per_step if cfg.carry_groups is None else cfg.carry_groups),
                              extra_prompts=tuple(p.prompt for p in items))
    if cfg.algo == "sgrpo":
        return SGRPORollout(tok, golds, answer_kind=kind, answer_tokens=cfg.answer_tokens)
    return GRPORollout(tok, golds, answer_kind=kind)


def _grpo_args(cfg: TrainConfig, ulorl: bool) -> Any:
    """TRL's GRPOConfig for ``cfg``."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=cfg.output_dir, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations // cfg.gradient_accumulation_steps,
        num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, max_steps=cfg.max_steps, logging_steps=1,
        beta=cfg.beta, loss_type=cfg.loss_type,
        # S-GRPO's advantage is r - mean(r); GRPO keeps its usual per-group std scaling
        scale_rewards="none" if cfg.algo == "sgrpo" else "group", temperature=cfg.temperature,
        report_to=[], save_strategy="steps", save_steps=cfg.save_steps, use_cpu=not _has_gpu(), seed=cfg.seed,
        bf16=cfg.bf16, gradient_checkpointing=cfg.gradient_checkpointing,
        # engine=vllm: truncated importance sampling (TIS) per token, weights capped at 3, corrects the
        # sampler/learner mismatch. UloRL's pseudo on-policy update switches it off: carried tokens are
        # not re-weighted by the sampler's logprobs. (engine=hf: TRL applies it only with vLLM.)
        vllm_importance_sampling_correction=not ulorl, vllm_importance_sampling_mode="token_truncate",
        vllm_importance_sampling_clip_max=3.0,
    )


def _start_policy(cfg: TrainConfig, trainer: Any, path: str, tok: Any) -> Any:
    """The rollouts' vLLM engine: colocated on this process's device, or the server."""
    from ponder.rl.weight_sync import VLLMPolicy

    if cfg.vllm_mode == "server":
        from ponder.rl.rollout_server import ServerPolicy

        policy = ServerPolicy(cfg.vllm_server_url, path, tok, weight_dir=cfg.vllm_weight_dir,
                              is_main=trainer.accelerator.is_main_process)
    else:
        policy = VLLMPolicy(path, tok, dtype="bfloat16" if cfg.bf16 else "float32",
                            device_index=trainer.accelerator.local_process_index if _has_gpu() else None,
                            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization)
    return policy


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
