"""Voting over extracted answers, shared by majority, first_finish and deepconf.

    from ponder.controllers.vote import vote
    vote(["7", "9", "7"])                  # ("7", {"7": 2.0, "9": 1.0})
    vote(["7", "9"], weights=[0.2, 0.5])   # ("9", {"7": 0.2, "9": 0.5})

Ties go to the answer that appears first in the order given, so each controller decides what
"first" means (launch order, finishing order, longest first) and the result is deterministic.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["vote"]


def vote(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> tuple[str | None, dict[str, float]]:
    """Weighted majority vote.

    Args:
        answers: one per sample, in tie-break order; None (no answer) casts no vote.
        weights: one per sample (default 1 each).

    Returns:
        (the winning answer or None when nobody answered, the tally per answer in first-seen order).
    """
    weights = [1.0] * len(answers) if weights is None else list(weights)
    if len(weights) != len(answers):
        raise ValueError(f"vote: {len(answers)} answers but {len(weights)} weights")
    tally: dict[str, float] = {}
    for answer, weight in zip(answers, weights):
        if answer is not None:
            tally[answer] = tally.get(answer, 0.0) + float(weight)
    if not tally:
        return None, tally
    best = max(tally.values())
    # dicts keep insertion order, so among tied answers the one seen first wins
    return next(a for a, w in tally.items() if w == best), tally
