"""The exit primitive (docs/design.md §2): end the thinking now and generate the answer.

Budget forcing uses it at the thinking cap, S-GRPO at every exit position of a rollout, and a
probing controller would use it to peek at a trial answer: one implementation, every user.

    suffix = await force_answer(ctx, trace, prompt_ids + trace.token_ids, answer_tokens=32, params=params)
"""

from __future__ import annotations

from ponder.controllers.trace import SampleContext, stream_into
from ponder.types import SamplingParams, Trace

__all__ = ["force_answer"]


async def force_answer(
    ctx: SampleContext, trace: Trace, prefix_ids: list[int], answer_tokens: int, params: SamplingParams,
    with_exit_prompt: bool = False,
) -> list[int]:
    """End the thinking now and generate the answer.

    Appends the family's (optional exit prompt +) end-of-thinking delimiter and answer cue to
    ``prefix_ids``, records the injected text in ``trace.info['injected']``, and streams at most
    ``answer_tokens`` new tokens into ``trace``. Returns the ids of the injected suffix.
    """
    suffix = ctx.encode(ctx.family.force_suffix(with_exit_prompt))
    trace.info.setdefault("injected", []).append(ctx.family.force_suffix(with_exit_prompt))
    await stream_into(ctx, trace, prefix_ids + suffix, params.replace(max_tokens=max(answer_tokens, 1)))
    return suffix
