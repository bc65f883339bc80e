"""S-GRPO on TRL: a `rollout_func` that builds serial groups through ponder's engine protocol.

TRL's `GRPOTrainer` calls ``rollout_func(prompts, trainer)`` with each prompt repeated
``num_generations`` times in a row and expects one completion per received prompt, in order. Each
block of G identical prompts becomes one serial group (m = G - 1 exits plus the full path), rolled
out on the live policy (`HFEngine.from_model`: fresh weights every step, no copy). The group's
decaying rewards reach TRL's reward function through the extra key ``sgrpo_reward``; use
``scale_rewards="none"`` so the advantage is r - mean(r), as in the paper.

    trainer = GRPOTrainer(model, reward_funcs=[sgrpo_reward], args=GRPOConfig(num_generations=8,
                          scale_rewards="none", ...), train_dataset=ds,
                          rollout_func=SGRPORollout(tokenizer, answer_kind="integer"))
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ponder.prompts import family_for, render
from ponder.rl.sgrpo import SGRPOConfig, serial_group

__all__ = ["SGRPORollout", "GRPORollout", "ponder_reward", "sgrpo_reward", "exit_stats"]


def ponder_reward(prompts: list, completions: list, ponder_reward: list[float], **_: Any) -> list[float]:
    """TRL reward function: the reward the rollout computed (S-GRPO's decaying one, or GRPO's 0/1)."""
    return [float(r) for r in ponder_reward]


sgrpo_reward = ponder_reward  # the name TRL logs the reward under: rewards/sgrpo_reward/mean


def _on_policy(trainer: Any, tokenizer: Any, work) -> list:
    """Run ``work(engine)`` on the live policy in eval mode (TRL hands it over in train mode)."""
    from ponder.engines.hf import HFEngine

    model = trainer.model
    was_training = model.training
    model.eval()
    try:
        engine = HFEngine.from_model(model, tokenizer, logprobs_mode="processed")
        return asyncio.run(work(engine))
    finally:
        model.train(was_training)


def callback_base() -> type:
    """transformers' TrainerCallback, imported when a callback class is defined (not at import)."""
    from transformers import TrainerCallback

    return TrainerCallback


def _log(trainer: Any, values: dict[str, float]) -> None:
    """Add rollout statistics to what TRL logs for this step (averaged with its own metrics)."""
    metrics = getattr(trainer, "_metrics", None)
    if metrics is not None:
        for key, value in values.items():
            metrics["train"][key].append(float(value))


def _global_step(trainer: Any, fallback: int) -> int:
    state = getattr(trainer, "state", None)
    return int(getattr(state, "global_step", fallback) or 0) if state is not None else fallback


def _blocks(prompts: list[str], group: int) -> list[str]:
    if len(prompts) % group:
        raise ValueError(f"rollout_func got {len(prompts)} prompts, not a multiple of num_generations={group}")
    return [prompts[i] for i in range(0, len(prompts), group)]


def exit_stats(groups: list) -> dict[str, float]:
    """Where exits land and how often they are right (the first thing to check when S-GRPO stalls).

    ``exit_correct``: share of early exits answered right; ``full_correct``: of full paths;
    ``first_correct_exit``: where the earliest right exit sits, as a fraction of the full thinking
    (groups with one); ``full_thinking_tokens``: mean thinking length of the full paths.
    """
    exits = [m for g in groups for m in g.members if not m.full_path]
    fulls = [m for g in groups for m in g.members if m.full_path]
    firsts = []
    for g in groups:
        full = g.members[-1]
        right = [m.position for m in g.members[:-1] if m.correct]
        if right and full.position:
            firsts.append(min(right) / full.position)
    return {"sgrpo/exit_correct": sum(m.correct for m in exits) / max(len(exits), 1),
            "sgrpo/full_correct": sum(m.correct for m in fulls) / max(len(fulls), 1),
            "sgrpo/first_correct_exit": sum(firsts) / len(firsts) if firsts else 1.0,
            "sgrpo/full_thinking_tokens": sum(m.position for m in fulls) / max(len(fulls), 1)}


@dataclass
class _Rollout:
    """What both rollouts share: the tokenizer, the golds, the verifier and the step counter."""

    tokenizer: Any
    golds: dict[str, str]
    answer_kind: str = "math"
    family: str | None = None
    steps: int = field(default=0, init=False)
    """Rollouts done by this object (the seed uses the trainer's global step, so a resumed run
    draws the same rollouts as an uninterrupted one)."""

    def _setup(self, prompts: list[str], trainer: Any):
        """(TRL args, model family, verifier, one prompt per group, its rendered ids)."""
        from ponder.verifiers import get_verifier

        fam = family_for(self.tokenizer, getattr(self.tokenizer, "name_or_path", None), self.family)
        blocks = _blocks(prompts, trainer.args.num_generations)
        rendered = [render(self.tokenizer, p, fam) for p in blocks]
        return trainer.args, fam, get_verifier(self.answer_kind), blocks, rendered


@dataclass
class SGRPORollout(_Rollout):
    """A TRL ``rollout_func`` producing S-GRPO serial groups.

    Args:
        tokenizer: the policy's tokenizer.
        golds: prompt text -> gold answer (the dataset's answer column).
        answer_kind: which ponder verifier scores the answers.
        family: model family name (default: detected from the tokenizer).
        answer_tokens: most tokens of each forced answer.
    """

    answer_tokens: int = 32

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        args, fam, verifier, blocks, rendered = self._setup(prompts, trainer)
        step = _global_step(trainer, self.steps)
        config = dict(m=args.num_generations - 1, temperature=args.temperature, answer_tokens=self.answer_tokens,
                      max_tokens=args.max_completion_length)

        async def roll(engine) -> list:
            return await asyncio.gather(*(
                serial_group(engine, ids, fam, verifier, self.golds[p], SGRPOConfig(**config, seed=1000 * step + i))
                for i, (p, ids) in enumerate(zip(blocks, rendered))))

        groups = _on_policy(trainer, self.tokenizer, roll)
        self.steps += 1
        _log(trainer, exit_stats(groups))
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [], "ponder_reward": []}
        for ids, g in zip(rendered, groups):
            for member in g.members:
                out["prompt_ids"].append(ids)
                out["completion_ids"].append(member.completion_ids)
                out["logprobs"].append(member.logprobs)
                out["env_mask"].append(member.env_mask)
                out["ponder_reward"].append(member.reward)
        return out


@dataclass
class GRPORollout(_Rollout):
    """The plain-GRPO baseline on the same engine and verifier: G independent samples, reward 0/1."""

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        from ponder.engines import complete
        from ponder.types import SamplingParams

        args, _, verifier, blocks, rendered = self._setup(prompts, trainer)
        g, step = args.num_generations, _global_step(trainer, self.steps)

        async def roll(engine) -> list:
            return await asyncio.gather(*(
                complete(engine, ids, SamplingParams(max_tokens=args.max_completion_length, temperature=args.temperature,
                                                     seed=1000 * step + g * i + j, logprobs=0))
                for i, ids in enumerate(rendered) for j in range(g)))

        outs = _on_policy(trainer, self.tokenizer, roll)
        self.steps += 1
        golds = [self.golds[p] for p in blocks for _ in range(g)]
        rewards = [float(bool(verifier.verify(gold, self.tokenizer.decode(o.token_ids)))) for gold, o in zip(golds, outs)]
        _log(trainer, {"rollout/correct": sum(rewards) / len(rewards)})
        return {"prompt_ids": [ids for ids in rendered for _ in range(g)], "completion_ids": [o.token_ids for o in outs],
                "logprobs": [o.logprobs for o in outs], "ponder_reward": rewards}
