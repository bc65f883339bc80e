"""Plain GRPO as a rollout on ponder's engines: the baseline S-GRPO is measured against.

G independent samples per prompt on the same engine, verifier and data as S-GRPO, reward 1 for a
right answer and 0 otherwise (TRL keeps its usual per-group std scaling of the advantage).

    GRPOTrainer(..., reward_funcs=[sgrpo_reward], rollout_func=GRPORollout(tokenizer, golds, answer_kind="integer"))
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ponder.rl.rollout import Rollout, TrlRows, global_step, on_policy, with_metrics

__all__ = ["GRPORollout"]


@dataclass
class GRPORollout(Rollout):
    """A TRL ``rollout_func``: G independent samples per prompt, reward 0/1."""

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        from ponder.engines import complete
        from ponder.types import SamplingParams

        args, _, verifier, blocks, rendered = self.setup(prompts, trainer)
        g, step = args.num_generations, global_step(trainer, self.steps)

        async def roll(engine) -> list:
            return await asyncio.gather(*(
                complete(engine, ids, SamplingParams(max_tokens=args.max_completion_length, temperature=args.temperature,
                                                     seed=1000 * step + g * i + j, logprobs=0))
                for i, ids in enumerate(rendered) for j in range(g)))

        outs = on_policy(trainer, self.tokenizer, roll)
        self.steps += 1
        golds = [self.golds[p] for p in blocks for _ in range(g)]
        rewards = [float(bool(verifier.verify(gold, self.tokenizer.decode(o.token_ids)))) for gold, o in zip(golds, outs)]
        rows = TrlRows()
        for k, (o, reward) in enumerate(zip(outs, rewards)):
            rows.add(rendered[k // g], o.token_ids, o.logprobs, reward)
        # nothing injected: every completion token trains
        return with_metrics(rows.to_dict(env_mask=False), {"rollout/correct": sum(rewards) / len(rewards)}, trainer)
