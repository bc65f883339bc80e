"""Whether a controller's chosen answer is right: shared by the SDK, eval and RL rewards.

    from ponder.verifiers import get_verifier, judge
    judge(solution, gold="42", verifier=get_verifier("integer"))   # True / False / None
"""

from __future__ import annotations

from typing import Any

from ponder.types import Solution

__all__ = ["judge"]


def judge(solution: Solution, gold: str, verifier: Any) -> bool | None:
    """Verify the text of a trace that gave the chosen answer against ``gold``.

    Returns None when ``gold`` cannot be parsed by ``verifier``; False when no trace gave an
    answer.
    """
    chosen = next((t for t in solution.traces if solution.answer is not None and t.answer == solution.answer), None)
    if chosen is None:
        return None if verifier.verify(gold, "") is None else False
    return verifier.verify(gold, chosen.text)
