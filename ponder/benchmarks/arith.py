"""The built-in arithmetic benchmark and the tiny reasoner's training traces.

Problems are sums of 2-4 terms of 1-3 digits, zero-padded to three digits in the prompt
("Compute 110+057+004"), so every digit of a column sits at a fixed offset. A reference trace
works column by column, states the answer, then re-checks 0-3 columns ("wait, check d2: ...");
in training data a check is corrupted with some probability and the corrupted sum carries into
the restated answer. That is the tiny reasoner's overthinking by design: the answer is usually
right when first stated and the extra checks can only break it.

    python -c "from ponder.benchmarks.arith import problems; print(problems(3, seed=0))"
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["ArithProblem", "make_problem", "problems", "training_problems", "reference_trace", "first_stated_answer",
           "HELD_OUT_SEED", "TRAIN_SEED", "HELD_OUT_POOL"]

HELD_OUT_SEED = 1
"""Held-out problems (``ponder eval`` arith, the model cards, RL evaluations) come from this seed."""
TRAIN_SEED = 2
"""RL training problems come from this seed, minus any that also occur in the held-out pool."""
HELD_OUT_POOL = 2000
"""How many held-out problems RL training is kept disjoint from (every evaluation uses at most these)."""

ANSWER_PHRASE = "so the answer is "
"""Marks the first (and every restated) answer inside a trace."""


@dataclass(frozen=True)
class ArithProblem:
    """One sum; ``prompt`` is what the model sees, ``answer`` the exact result."""

    id: str
    terms: tuple[int, ...]

    @property
    def prompt(self) -> str:
        return "Compute " + "+".join(f"{t:03d}" for t in self.terms)

    @property
    def answer(self) -> int:
        return sum(self.terms)


def make_problem(rng: random.Random, pid: str) -> ArithProblem:
    """Draw 2-4 terms, each with a uniformly drawn number of digits (1-3)."""
    n_terms = rng.randint(2, 4)
    terms = []
    for _ in range(n_terms):
        digits = rng.randint(1, 3)
        low = 0 if digits == 1 else 10 ** (digits - 1)
        terms.append(rng.randint(low, 10**digits - 1))
    return ArithProblem(pid, tuple(terms))


def problems(n: int, seed: int = 0) -> list[ArithProblem]:
    """``n`` problems, the same for the same seed (ids ``arith-<seed>-<i>``)."""
    rng = random.Random(f"arith-{seed}")
    return [make_problem(rng, f"arith-{seed}-{i}") for i in range(n)]


def training_problems(n: int, seed: int = TRAIN_SEED, held_out: int = HELD_OUT_POOL) -> list[ArithProblem]:
    """``n`` problems drawn from ``seed``, skipping any whose terms occur among the first ``held_out``
    problems of the held-out seed (two independent draws of small sums collide: 9 of the 500 held-out
    problems occur among the first 2000 seed-2 draws). Ids keep their draw index, so a skipped
    problem leaves a gap and the others keep the ids they had."""
    banned = {p.terms for p in problems(held_out, seed=HELD_OUT_SEED)}
    rng, out, i = random.Random(f"arith-{seed}"), [], 0
    while len(out) < n:
        p = make_problem(rng, f"arith-{seed}-{i}")
        i += 1
        if p.terms not in banned:
            out.append(p)
    return out


def _column(terms: tuple[int, ...], col: int, carry: int, delta: int = 0) -> tuple[str, int]:
    digits = [(t // 10**col) % 10 for t in terms]
    total = sum(digits) + carry + delta
    line = f"d{col + 1}: " + "+".join(map(str, digits)) + f"+c{carry}={total:02d}"
    return line, total


def reference_trace(
    terms: tuple[int, ...], rng: random.Random, corrupt_p: float = 0.35, n_checks: int | None = None,
    max_checks: int | None = None, restate: bool = True,
) -> tuple[str, int]:
    """A ``<think>`` body and the final answer it ends with.

    Args:
        terms: the summands.
        rng: drives the number of checks, the checked columns and their corruption.
        corrupt_p: probability that one check adds an error of 1-2 to its column sum,
            which then shifts the restated (and final) answer.
        n_checks: fix the number of checks (default: uniform in 0..max_checks).
        max_checks: the most checks a trace makes (default: one fewer than the terms).
        restate: each check restates the answer (False: the answer is stated once, and the
            checks after it cannot change it).

    Returns:
        (thinking text without the delimiters, final answer).
    """
    lines, carry = [], 0
    for col in range(3):
        line, total = _column(terms, col, carry)
        lines.append(line)
        carry = total // 10
    answer = sum(terms)
    lines.append(f"{ANSWER_PHRASE}{answer}")
    if n_checks is None:
        n_checks = rng.randint(0, len(terms) - 1 if max_checks is None else max_checks)
    for _ in range(n_checks):
        col = rng.randrange(3)
        carry_in = (sum((t % 10**col) for t in terms) // 10**col) if col else 0
        delta = 0
        if rng.random() < corrupt_p:
            delta = rng.choice((-2, -1, 1, 2))
            if answer + delta * 10**col < 0 or sum((t // 10**col) % 10 for t in terms) + carry_in + delta < 0:
                delta = -delta
        line, _ = _column(terms, col, carry_in, delta)
        answer += delta * 10**col
        lines.append(f"wait, check {line}")
        if restate:
            lines.append(f"{ANSWER_PHRASE}{answer}")
    return "\n" + "\n".join(lines) + "\n", answer


def first_stated_answer(text: str) -> int | None:
    """The answer a trace states first, or None if it never states one."""
    at = text.find(ANSWER_PHRASE)
    if at < 0:
        return None
    digits = ""
    for ch in text[at + len(ANSWER_PHRASE):]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits[:6]) if digits else None
