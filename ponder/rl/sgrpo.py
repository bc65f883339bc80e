"""S-GRPO serial-group rollouts and decaying rewards (arXiv 2505.07686), through ponder's engines.

For one prompt: roll out one full reasoning path; draw m exit positions uniformly over its
thinking tokens; at each, keep the thinking up to that token, inject the family's exit prompt,
end-of-thinking delimiter and answer cue (the shared exit primitive `force_answer`), and generate
the answer. The group is the m early exits ordered by position, then the full path. A correct
answer gets 1/2^(k-1), k counting the correct answers up to and including it in position order;
a wrong one 0; advantages are r - mean(r), with no std scaling.

Injected tokens are masked out of the loss (``env_mask`` 0); the truncated thinking keeps the
log-probabilities it was sampled with.

What the model sees at an exit: the first ``pos`` ids of its own path, unchanged, then the suffix
``tokenizer.encode(exit_prompt + think_end + answer_cue, add_special_tokens=False)`` tokenized on
its own and appended as ids; the text is never decoded and re-tokenized as a whole. With a
byte-level BPE the boundary therefore stays split where a joint tokenization might merge across
it (the cut ``...=11`` then ``Time``, never a merged token), and the trainer scores exactly the
ids the engine continued. For Qwen3 (tiny-qwen3 included) the suffix is 19 ids:
``Time is limited, stop thinking and start answering.\\n`` = [1462, 374, 7199, 11, 2936, 7274, 323,
1191, 35764, 624], ``</think>`` = 151668 (the added token, not its characters), then ``\\n\\n**Final
Answer**\\n\\boxed{`` = [271, 334, 19357, 21806, 1019, 59, 79075, 90]; budget forcing appends the
same ids without the exit prompt, and tiny-qwen3 was trained on exits tokenized this way.

    group = await serial_group(engine, prompt_ids, family, verifier, gold, SGRPOConfig(m=7))
    [member.reward for member in group.members], group.advantages()

`SGRPORollout` is the TRL ``rollout_func`` built on it: each block of G identical prompts becomes
one serial group (m = G - 1 exits plus the full path) rolled out on the live policy; use
``scale_rewards="none"`` so the advantage is r - mean(r), as in the paper.

    trainer = GRPOTrainer(model, reward_funcs=[sgrpo_reward], args=GRPOConfig(num_generations=8,
                          scale_rewards="none", ...), train_dataset=ds,
                          rollout_func=SGRPORollout(tokenizer, golds, answer_kind="integer"))
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from ponder.controllers.exit import force_answer
from ponder.controllers.trace import SampleContext, stream_into, thinking_tokens
from ponder.prompts import ModelFamily
from ponder.rl.rollout import Rollout, TrlRows, global_step, on_policy, with_metrics
from ponder.types import SamplingParams, Trace

__all__ = ["SGRPOConfig", "Member", "Group", "exit_positions", "decaying_rewards", "serial_group", "group_from_path",
           "exit_stats", "SGRPORollout"]


@dataclass(frozen=True)
class SGRPOConfig:
    """How one serial group is rolled out."""

    m: int = 7
    """Early exits per group (the group has m + 1 members with the full path)."""
    temperature: float = 1.0
    """Sampling temperature of the full path and the answers (keep equal to the trainer's)."""
    max_tokens: int = 1024
    """Most tokens of the full reasoning path."""
    answer_tokens: int = 32
    """Most tokens of each forced answer."""
    seed: int | None = None
    """Seed of the full path's sampling and of the exit positions."""

    def __post_init__(self) -> None:
        if not isinstance(self.m, int) or self.m < 1:
            raise ValueError(f"sgrpo: m must be an integer >= 1 (got {self.m!r})")
        if self.answer_tokens < 1 or self.max_tokens < 1:
            raise ValueError("sgrpo: max_tokens and answer_tokens must be >= 1")


@dataclass
class Member:
    """One completion of a group, as the trainer sees it."""

    completion_ids: list[int]
    """Thinking kept + injected exit tokens + generated answer (the full path: all generated)."""
    logprobs: list[float]
    """One per completion token; 0.0 for injected tokens (they are masked out)."""
    env_mask: list[int]
    """1 where the policy generated the token, 0 where ponder injected it."""
    position: int
    """Thinking tokens kept (the full path: all its thinking tokens)."""
    text: str = ""
    correct: bool = False
    reward: float = 0.0
    full_path: bool = False


@dataclass
class Group:
    members: list[Member] = field(default_factory=list)

    def advantages(self) -> list[float]:
        """r - mean(r): S-GRPO does not divide by the group's standard deviation."""
        rewards = [m.reward for m in self.members]
        mean = sum(rewards) / len(rewards)
        return [r - mean for r in rewards]


def exit_positions(n_thinking: int, m: int, rng: random.Random) -> list[int]:
    """m exit positions (kept thinking tokens), uniform over 1..n_thinking-1, sorted.

    Positions are distinct when the thinking is long enough; a shorter one repeats positions
    rather than shrinking the group (TRL needs a fixed group size).
    """
    if n_thinking < 2:
        return [max(n_thinking, 1)] * m if n_thinking else [0] * m
    span = range(1, n_thinking)
    picks = rng.sample(span, m) if len(span) >= m else [rng.choice(span) for _ in range(m)]
    return sorted(picks)


def decaying_rewards(correct: list[bool]) -> list[float]:
    """Rewards in position order: the k-th correct answer gets 1/2^(k-1), wrong answers 0."""
    rewards, k = [], 0
    for ok in correct:
        if ok:
            k += 1
            rewards.append(1.0 / 2 ** (k - 1))
        else:
            rewards.append(0.0)
    return rewards


async def serial_group(
    engine: Any, prompt_ids: list[int], family: ModelFamily, verifier: Any, gold: str, config: SGRPOConfig,
) -> Group:
    """Roll out one serial group for a prompt and score it."""
    ctx = SampleContext(engine, list(prompt_ids), family, verifier)
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature, seed=config.seed, logprobs=0)
    path = Trace()
    await stream_into(ctx, path, ctx.prompt_ids, params)
    return await group_from_path(ctx, path, gold, config)


async def group_from_path(ctx: SampleContext, path: Trace, gold: str, config: SGRPOConfig) -> Group:
    """The m exits of a finished full path (``path.token_ids``), and the scored group.

    A full path that ran into ``max_tokens`` (``finish_reason == "length"``) is truncated: scored 0.
    """
    params = SamplingParams(max_tokens=config.max_tokens, temperature=config.temperature, seed=config.seed, logprobs=0)
    n_think = thinking_tokens(ctx, path.token_ids)
    rng = random.Random(config.seed)
    # the exits are independent continuations of one path: run them together so the engine batches them
    members = list(await asyncio.gather(*(_exit(ctx, path, pos, params, config)
                                          for pos in exit_positions(n_think, config.m, rng))))
    full_text = ctx.decode(path.token_ids)
    members.append(Member(list(path.token_ids), list(path.logprobs or [0.0] * path.tokens), [1] * path.tokens,
                          n_think, full_text, full_path=True))
    for member in members:
        member.correct = bool(ctx.verifier.verify(gold, member.text))
    if path.finish_reason == "length":
        members[-1].correct = False
    for member, reward in zip(members, decaying_rewards([mb.correct for mb in members])):
        member.reward = reward
    return Group(members)


async def _exit(ctx: SampleContext, path: Trace, pos: int, params: SamplingParams, config: SGRPOConfig) -> Member:
    kept = path.token_ids[:pos]
    answer = Trace()
    suffix = await force_answer(ctx, answer, ctx.prompt_ids + kept, config.answer_tokens,
                                params.replace(seed=None if params.seed is None else params.seed + pos + 1),
                                with_exit_prompt=True)
    ids = kept + suffix + answer.token_ids
    logprobs = (path.logprobs or [0.0] * path.tokens)[:pos] + [0.0] * len(suffix) + (answer.logprobs or [0.0] * answer.tokens)
    mask = [1] * pos + [0] * len(suffix) + [1] * answer.tokens
    return Member(ids, logprobs, mask, pos, ctx.decode(ids))


def exit_stats(groups: list[Group]) -> dict[str, float]:
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


def group_rows(rows: TrlRows, prompt_ids: list[int], group: Group) -> None:
    """Append a scored group's members to the rows handed to TRL."""
    for member in group.members:
        rows.add(prompt_ids, member.completion_ids, member.logprobs, member.reward, member.env_mask)


@dataclass
class SGRPORollout(Rollout):
    """A TRL ``rollout_func`` producing S-GRPO serial groups.

    Args (beyond the tokenizer, golds, answer kind and family of every `Rollout`):
        answer_tokens: most tokens of each forced answer.
    """

    answer_tokens: int = 32

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        args, fam, verifier, blocks, rendered = self.setup(prompts, trainer)
        step = global_step(trainer, self.steps)
        config = dict(m=args.num_generations - 1, temperature=args.temperature, answer_tokens=self.answer_tokens,
                      max_tokens=args.max_completion_length)

        async def roll(engine) -> list:
            return await asyncio.gather(*(
                serial_group(engine, ids, fam, verifier, self.golds[p], SGRPOConfig(**config, seed=1000 * step + i))
                for i, (p, ids) in enumerate(zip(blocks, rendered))))

        groups = on_policy(trainer, self.tokenizer, roll)
        self.steps += 1
        rows = TrlRows()
        for ids, group in zip(rendered, groups):
            group_rows(rows, ids, group)
        return with_metrics(rows.to_dict(), exit_stats(groups), trainer)
