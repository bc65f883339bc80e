"""Metrics over a run's rows: accuracy with a Wilson 95% interval, unbiased pass@k, maj@k, token stats.

Pure stdlib. ``summarize(rows)`` turns the JSON lines of ``results.jsonl`` into the dict written
as ``summary.json``; the other functions are the estimators it uses.

Accuracy per token, as efficient-reasoning benchmarks score it (docs/scores.md):

- ``ock_score`` (OckBench's OckScore): ``100 * accuracy - penalty * ln(mean total tokens / scale)``,
  penalty 10 and scale 10,000 tokens as OckBench ranks models. OckBench writes ``log`` without a
  base; we use the natural log, so compare OckScores computed here with each other only. Every
  halving of the tokens is worth 10 ln 2 = 6.9 accuracy points.
- ``accuracy_within_tokens`` (OptimalThinkingBench's overthinking-adjusted accuracy, OAA_t): the
  share of scored problems that are correct *and* cost at most ``t`` total tokens; OTB counts a
  response's thinking tokens, we count every token the problem cost (all samples, aborted ones too).

    python -c "from ponder.eval.metrics import pass_at_k, wilson; print(pass_at_k(8, 3, 2), wilson(7, 16))"
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from typing import Any, Iterable, Sequence

__all__ = ["wilson", "pass_at_k", "majority_at_k", "percentile", "stats", "complete_samples", "sample_ks",
           "ock_score", "accuracy_within_tokens", "token_thresholds", "summarize"]

Z95 = 1.959963984540054
"""The normal quantile of a two-sided 95% interval."""
MAX_SUBSETS = 256
"""maj@k averages over every k-subset of a row's samples when there are at most this many, else over
this many seeded random subsets."""


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (good at small n and near 0 or 1); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), from n samples of which c are correct.

    Computed as a product so that large n neither overflows nor loses precision.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_at_k(samples: Sequence[tuple[str | None, bool]], k: int, seed: int = 0) -> float:
    """Expected accuracy of a majority vote over k of the samples, each an (answer, correct) pair.

    Averages over k-subsets (all of them, or `MAX_SUBSETS` seeded random ones); a tie between
    answers counts as the share of tied answers that are correct (a fair coin among them); a
    subset without any answer counts as wrong.
    """
    n = len(samples)
    if not 1 <= k <= n:
        raise ValueError(f"majority_at_k needs 1 <= k <= {n} (got {k})")
    truth = {a: ok for a, ok in samples if a is not None}
    if math.comb(n, k) <= MAX_SUBSETS:
        subsets: Iterable[tuple[int, ...]] = itertools.combinations(range(n), k)
    else:
        rng = random.Random(seed)
        subsets = (tuple(rng.sample(range(n), k)) for _ in range(MAX_SUBSETS))
    total = count = 0.0
    for subset in subsets:
        votes = Counter(samples[i][0] for i in subset if samples[i][0] is not None)
        count += 1
        if votes:
            top = max(votes.values())
            winners = [a for a, v in votes.items() if v == top]
            total += sum(truth[a] for a in winners) / len(winners)
    return total / count


OCK_PENALTY = 10.0
"""OckScore's weight of the log token count (OckBench's ranking uses 10)."""
OCK_SCALE = 10_000
"""OckScore's token unit: log(tokens / 10,000), as OckBench's ranking."""


def ock_score(accuracy: float, mean_tokens: float, penalty: float = OCK_PENALTY, scale: float = OCK_SCALE) -> float:
    """OckBench-style score: ``100 * accuracy - penalty * ln(mean_tokens / scale)`` (NaN without tokens).

    Accuracy is a fraction (0.9 scores as 90 points); fewer tokens than ``scale`` add points.

        ock_score(0.9, 10_000) == 90.0;  ock_score(0.9, 5_000) == 90 + 10 ln 2 = 96.93...
    """
    if not mean_tokens or mean_tokens <= 0 or math.isnan(accuracy):
        return math.nan
    return 100 * accuracy - penalty * math.log(mean_tokens / scale)


def accuracy_within_tokens(rows: Sequence[dict[str, Any]], threshold: float) -> float:
    """OptimalThinkingBench-style accuracy under a token threshold: the share of ``rows`` that are
    correct and whose ``total_tokens`` is <= ``threshold`` (NaN for no rows)."""
    if not rows:
        return math.nan
    return sum(1 for r in rows if r.get("correct") and r.get("total_tokens", 0) <= threshold) / len(rows)


def token_thresholds(totals: Sequence[float]) -> list[int]:
    """Powers of two from the largest one <= the cheapest problem to the first one >= the dearest,
    the thresholds at which a summary records `accuracy_within_tokens` (its curve over t)."""
    if not totals:
        return []
    lo = 2 ** max(0, math.floor(math.log2(max(min(totals), 1))))
    hi = max(max(totals), 1)
    out = [lo]
    while out[-1] < hi:
        out.append(out[-1] * 2)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, like numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def stats(values: Sequence[float]) -> dict[str, float]:
    """mean, p50, p95 and sum of a list of numbers (NaN when empty)."""
    mean = sum(values) / len(values) if values else math.nan
    return {"mean": mean, "p50": percentile(values, 50), "p95": percentile(values, 95), "sum": float(sum(values))}


def complete_samples(row: dict[str, Any]) -> list[tuple[str | None, bool]]:
    """The (answer, correct) pairs of a row's samples that ran to their end (not aborted)."""
    return [(s.get("answer"), bool(s.get("correct"))) for s in row.get("samples", [])
            if not s.get("aborted") and s.get("finish_reason") in ("stop", "length")]


def sample_ks(n: int) -> list[int]:
    """The k of pass@k / maj@k reported for n samples per problem: 1, 2, 4, ... and n."""
    if n < 1:
        return []
    ks = [2 ** i for i in range(n.bit_length()) if 2 ** i <= n]
    return ks if ks[-1] == n else ks + [n]


def summarize(rows: Sequence[dict[str, Any]], expected: int | None = None) -> dict[str, Any]:
    """Metrics of one run from its result rows (see runner.py for the row format).

    Rows whose gold answer could not be parsed are skipped (listed by id); rows whose controller
    raised are errors (listed, scored as wrong); rows whose verifier failed (``verifier_error``: an
    infrastructure failure, never a verdict) are listed and not scored. pass@k and maj@k appear when every scored row
    has at least two complete samples; k goes up to the fewest any row has.
    """
    skipped = [r["id"] for r in rows if r.get("skipped")]
    errors = [r["id"] for r in rows if r.get("error")]
    verifier_errors = [r["id"] for r in rows if r.get("verifier_error")]
    scored = [r for r in rows if not r.get("skipped") and not r.get("verifier_error")]
    correct = sum(1 for r in scored if r.get("correct"))
    n = len(scored)
    lo, hi = wilson(correct, n)
    solved = [r for r in scored if not r.get("error")]
    total = [r["total_tokens"] for r in solved]
    out: dict[str, Any] = {
        "problems": expected if expected is not None else len(rows),
        "rows": len(rows),
        "scored": n,
        "correct": correct,
        "accuracy": correct / n if n else math.nan,
        "ci95": [lo, hi],
        "total_tokens": stats(total),
        "sequential_tokens": stats([r["sequential_tokens"] for r in solved]),
        "wasted_tokens": stats([r.get("wasted_tokens", 0) for r in solved]),
        "tokens_per_correct": sum(total) / correct if correct else None,
        "ock_score": ock_score(correct / n if n else math.nan, sum(total) / len(total) if total else 0.0),
        # errors cost no tokens but are wrong, so they count in the denominator and never within a budget
        "accuracy_within_tokens": {str(t): accuracy_within_tokens(scored, t) for t in token_thresholds(total)},
        "latency_s": stats([r["latency_s"] for r in solved]),
        "samples": stats([len(r.get("samples", [])) for r in solved])["mean"],
        "finish_reasons": dict(Counter(s.get("finish_reason") for r in solved for s in r.get("samples", []))),
        "skipped": skipped,
        "errors": errors,
        "verifier_errors": verifier_errors,
    }
    per_row = [complete_samples(r) for r in solved]
    fewest = min((len(s) for s in per_row), default=0)
    if fewest >= 2:
        ks = sample_ks(fewest)
        out["pass@k"] = {str(k): sum(pass_at_k(len(s), sum(ok for _, ok in s), k) for s in per_row) / n for k in ks}
        out["maj@k"] = {str(k): sum(majority_at_k(s, k) for s in per_row) / n for k in ks}
    return out
