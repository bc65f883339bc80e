"""What every RL rollout on TRL shares: groups of prompts, the live policy as an engine, the step,
the logged statistics and the rows handed back to TRL.

TRL's `GRPOTrainer` calls ``rollout_func(prompts, trainer)`` with each prompt repeated
``num_generations`` times in a row and expects one completion per received prompt, in order.
A `Rollout` turns each block of G identical prompts into one group (`sgrpo.SGRPORollout`,
`grpo.GRPORollout`, `ulorl.SegmentRollout`), decodes it on the live policy through ponder's
engine protocol (`on_policy`) and returns `TrlRows`. The policy is either the trainer's model
itself (``engine=hf``: transformers generation, fresh weights every step, no copy) or a vLLM
engine whose weights are synced before every step's rollout (``engine=vllm``, see
`ponder.rl.weight_sync`). The reward each rollout computed reaches TRL through the extra key
``ponder_reward`` and the reward function `sgrpo_reward` (logged by TRL as
``rewards/sgrpo_reward/mean``); the rollout's statistics travel in the extra key
``ponder_metrics`` to the same reward function, which hands them to TRL's documented
``log_metric`` (averaged over processes and logged with TRL's own metrics).
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ponder.prompts import family_for, render

__all__ = ["Rollout", "TrlRows", "ponder_reward", "sgrpo_reward", "on_policy", "eval_mode", "global_step",
           "with_metrics", "prompt_blocks", "callback_base"]


def ponder_reward(prompts: list, completions: list, ponder_reward: list[float], ponder_metrics: list | None = None,
                  log_metric: Any = None, **_: Any) -> list[float]:
    """TRL reward function: the reward the rollout computed (S-GRPO's decaying one, or GRPO's 0/1).

    It also logs the rollout's statistics (``ponder_metrics``, see `with_metrics`) through TRL's
    ``log_metric``, the documented way for reward functions to add metrics to a step's log.
    """
    if log_metric is not None:
        for values in ponder_metrics or ():
            for key, value in (values or {}).items():
                log_metric(key, float(value))
    return [float(r) for r in ponder_reward]


sgrpo_reward = ponder_reward  # the name TRL logs the reward under: rewards/sgrpo_reward/mean


@contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """The model in eval mode for the block, then back in the mode it was in (TRL trains in train mode)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def on_policy(trainer: Any, tokenizer: Any, work) -> Any:
    """Run ``await work(engine)`` on the live policy.

    With a vLLM policy attached (`ponder.rl.weight_sync.attach`), on its engine, synced to the
    trainer's current step (TRL syncs it before calling the rollout; a rollout called outside
    TRL's step loop is synced here). Otherwise on an hf engine over the trainer's model (eval mode).
    """
    policy = getattr(trainer, "ponder_policy", None)
    if policy is not None:
        step = global_step(trainer, 0)
        if policy.synced_step != step:
            policy.sync(trainer.model, getattr(trainer, "accelerator", None), step=step)
        return policy.run(work)
    from ponder.engines.hf import HFEngine

    with eval_mode(trainer.model) as model:
        engine = HFEngine.from_model(model, tokenizer, logprobs_mode="processed")
        return asyncio.run(work(engine))


def callback_base() -> type:
    """transformers' TrainerCallback, imported when a callback class is defined (not at import)."""
    from transformers import TrainerCallback

    return TrainerCallback


def with_metrics(out: dict[str, list], values: dict[str, float], trainer: Any = None) -> dict[str, list]:
    """``out`` with this step's rollout statistics attached for `ponder_reward` to log.

    They ride in the extra field ``ponder_metrics`` (on the first row; the others carry None), so
    TRL hands them to the reward function with the rewards. With a vLLM policy the weight sync's
    wall time is added as ``rollout/weight_sync_seconds``.
    """
    values = {k: float(v) for k, v in values.items()}
    policy = getattr(trainer, "ponder_policy", None)
    if policy is not None and policy.sync_seconds:
        values["rollout/weight_sync_seconds"] = policy.sync_seconds[-1]
    n = len(out["completion_ids"])
    return {**out, "ponder_metrics": [values] + [None] * (n - 1)}


def global_step(trainer: Any, fallback: int) -> int:
    """The trainer's optimizer step (rollouts are seeded by it, so a resumed run draws the same ones)."""
    state = getattr(trainer, "state", None)
    return int(getattr(state, "global_step", fallback) or 0) if state is not None else fallback


def prompt_blocks(prompts: list[str], group: int) -> list[str]:
    """One prompt per group: TRL repeats each prompt ``group`` times in a row."""
    if len(prompts) % group:
        raise ValueError(f"rollout_func got {len(prompts)} prompts, not a multiple of num_generations={group}")
    return [prompts[i] for i in range(0, len(prompts), group)]


@dataclass
class TrlRows:
    """What a rollout returns to TRL: one row per completion, in the order TRL sent the prompts."""

    prompt_ids: list[list[int]] = field(default_factory=list)
    completion_ids: list[list[int]] = field(default_factory=list)
    logprobs: list[list[float]] = field(default_factory=list)
    env_mask: list[list[int]] = field(default_factory=list)
    """1 where the policy generated the token, 0 where ponder injected it (or DMMPT masked it)."""
    ponder_reward: list[float] = field(default_factory=list)

    def add(self, prompt_ids: list[int], completion_ids: list[int], logprobs: list[float] | None,
            reward: float, env_mask: list[int] | None = None) -> None:
        self.prompt_ids.append(prompt_ids)
        self.completion_ids.append(completion_ids)
        self.logprobs.append(list(logprobs) if logprobs is not None else [0.0] * len(completion_ids))
        self.env_mask.append(list(env_mask) if env_mask is not None else [1] * len(completion_ids))
        self.ponder_reward.append(float(reward))

    def to_dict(self, env_mask: bool = True) -> dict[str, list]:
        """TRL's rollout output; without ``env_mask`` TRL trains on every completion token."""
        out = {"prompt_ids": self.prompt_ids, "completion_ids": self.completion_ids, "logprobs": self.logprobs,
               "ponder_reward": self.ponder_reward}
        return {**out, "env_mask": self.env_mask} if env_mask else out


@dataclass
class Rollout:
    """The base of every rollout: the tokenizer, the golds, the verifier and the step counter.

    Args:
        tokenizer: the policy's tokenizer.
        golds: prompt text -> gold answer (the dataset's answer column).
        answer_kind: which ponder verifier scores the answers.
        family: model family name (default: detected from the tokenizer).
    """

    tokenizer: Any
    golds: dict[str, str]
    answer_kind: str = "math"
    family: str | None = None
    steps: int = field(default=0, init=False)
    """Rollouts done by this object (the seed uses the trainer's global step, so a resumed run
    draws the same rollouts as an uninterrupted one)."""

    def setup(self, prompts: list[str], trainer: Any):
        """(TRL args, model family, verifier, one prompt per group, its rendered ids)."""
        from ponder.verifiers import get_verifier

        fam = family_for(self.tokenizer, getattr(self.tokenizer, "name_or_path", None), self.family)
        blocks = prompt_blocks(prompts, trainer.args.num_generations)
        rendered = [render(self.tokenizer, p, fam) for p in blocks]
        return trainer.args, fam, get_verifier(self.answer_kind), blocks, rendered
