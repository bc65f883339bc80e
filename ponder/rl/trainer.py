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

__all__ = ["SGRPORollout", "GRPORollout", "ponder_reward", "sgrpo_reward"]


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


def _blocks(prompts: list[str], group: int) -> list[str]:
    if len(prompts) % group:
        raise ValueError(f"rollout_func got {len(prompts)} prompts, not a multiple of num_generations={group}")
    return [prompts[i] for i in range(0, len(prompts), group)]


@dataclass
class SGRPORollout:
    """A TRL ``rollout_func`` producing S-GRPO serial groups.

    Args:
        tokenizer: the policy's tokenizer.
        golds: prompt text -> gold answer (the dataset's answer column).
        answer_kind: which ponder verifier scores the answers.
        family: model family name (default: detected from the tokenizer).
        answer_tokens: most tokens of each forced answer.
    """

    tokenizer: Any
    golds: dict[str, str]
    answer_kind: str = "math"
    family: str | None = None
    answer_tokens: int = 32
    steps: int = field(default=0, init=False)

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        from ponder.verifiers import get_verifier

        args = trainer.args
        fam = family_for(self.tokenizer, getattr(self.tokenizer, "name_or_path", None), self.family)
        verifier = get_verifier(self.answer_kind)
        blocks = _blocks(prompts, args.num_generations)
        config = dict(m=args.num_generations - 1, temperature=args.temperature, answer_tokens=self.answer_tokens,
                      max_tokens=args.max_completion_length)

        async def roll(engine) -> list:
            return await asyncio.gather(*(
                serial_group(engine, render(self.tokenizer, p, fam), fam, verifier, self.golds[p],
                             SGRPOConfig(**config, seed=1000 * self.steps + i))
                for i, p in enumerate(blocks)))

        groups = _on_policy(trainer, self.tokenizer, roll)
        self.steps += 1
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": [], "ponder_reward": []}
        for p, g in zip(blocks, groups):
            prompt_ids = render(self.tokenizer, p, fam)
            for member in g.members:
                out["prompt_ids"].append(prompt_ids)
                out["completion_ids"].append(member.completion_ids)
                out["logprobs"].append(member.logprobs)
                out["env_mask"].append(member.env_mask)
                out["ponder_reward"].append(member.reward)
        return out


@dataclass
class GRPORollout:
    """The plain-GRPO baseline on the same engine and verifier: G independent samples, reward 0/1."""

    tokenizer: Any
    golds: dict[str, str]
    answer_kind: str = "math"
    family: str | None = None
    steps: int = field(default=0, init=False)

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        from ponder.engines import complete
        from ponder.types import SamplingParams
        from ponder.verifiers import get_verifier

        args = trainer.args
        fam = family_for(self.tokenizer, getattr(self.tokenizer, "name_or_path", None), self.family)
        verifier = get_verifier(self.answer_kind)
        blocks = _blocks(prompts, args.num_generations)

        async def roll(engine) -> list:
            return await asyncio.gather(*(
                complete(engine, render(self.tokenizer, p, fam),
                         SamplingParams(max_tokens=args.max_completion_length, temperature=args.temperature,
                                        seed=1000 * self.steps + args.num_generations * i + j, logprobs=0))
                for i, p in enumerate(blocks) for j in range(args.num_generations)))

        outs = _on_policy(trainer, self.tokenizer, roll)
        self.steps += 1
        prompt_ids = [render(self.tokenizer, p, fam) for p in blocks for _ in range(args.num_generations)]
        golds = [self.golds[p] for p in blocks for _ in range(args.num_generations)]
        rewards = [float(bool(verifier.verify(g, self.tokenizer.decode(o.token_ids)))) for g, o in zip(golds, outs)]
        return {"prompt_ids": prompt_ids, "completion_ids": [o.token_ids for o in outs],
                "logprobs": [o.logprobs for o in outs], "ponder_reward": rewards}
