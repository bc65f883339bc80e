"""Warm latency of `verify` for the math verifier (and, for scale, the integer and choice ones),
and agreement with the peers' verdicts on the cross-check tables.

Latency: a few hundred varied (gold, completion) pairs of our own: numbers, fractions, radicals,
sets, tuples, intervals, equations and identities that need simplification, several boxes,
answers without a box, long reasoning before the answer, and wrong answers of each kind. The
math verifier is started and warmed first; each call is then timed on its own (sequentially, one
worker). Printed: mean, p50, p99 and max per verifier, the calls over the timeout (the worker
was killed), and the slowest math pairs.

Agreement: every row of tests/fixtures/verifier_tables/<table>.jsonl (Math-Verify's and
lighteval's verdicts, see tests/test_verifier_tables.py) through the verifier it checks.
"documented" counts a row where ponder differs on purpose as agreeing when ponder gives its
documented verdict; "peer" compares with the peer's verdict everywhere. false+ are rows ponder
calls right and the expected verdict wrong (for the integer table: the false positives). The
math calls on the tables are timed too. No asserts.

    PYTHONPATH=. .venv/bin/python bench/verifiers.py              # prints, writes nothing
    PYTHONPATH=. .venv/bin/python bench/verifiers.py --write      # also writes the results:
                                                    # bench/results/verifiers.txt and .json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.verifiers import get_verifier  # noqa: E402
from ponder.verifiers.audit import PEER_TABLES, audit, peer_table_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "tests" / "fixtures" / "verifier_tables"
RESULTS = ROOT / "bench" / "results"
# The goals of the fidelity issue: agreement with each peer's table, documented differences
# counted as agreeing.
GOALS = {
    "math_verify": 0.98,
    "lighteval_math": 0.97,
    "lighteval_choice": 0.97,
    "integer_aime": 0.97,
}

REASONING = (
    "<think>Let me set up the problem. We have the constraint, and substituting gives a "
    "quadratic. Wait, let me check the sign again. Yes, it is right. " * 8
    + "</think>\n"
)

# (gold, right answers, a wrong answer): each right answer and the wrong one become a pair.
MATH_FAMILIES = [
    ("3", [r"\boxed{3}", "The answer is 3.", r"$\boxed{03}$", r"\boxed{3.0}"], r"\boxed{4}"),
    ("-7", [r"\boxed{-7}", r"so $x = \boxed{-7}$"], r"\boxed{7}"),
    ("1000", [r"\boxed{1000}", r"\boxed{1{,}000}", "answer: 1,000"], r"\boxed{100}"),
    (r"\frac{1}{2}", [r"\boxed{\frac12}", r"\boxed{0.5}", r"\boxed{\dfrac{2}{4}}", "The answer is 1/2"], r"\boxed{\frac13}"),
    (r"\frac{14}{3}", [r"\boxed{\frac{14}{3}}", r"\boxed{4\frac{2}{3}}"], r"\boxed{\frac{13}{3}}"),
    (r"2\sqrt{3}", [r"\boxed{\sqrt{12}}", r"\boxed{2\sqrt3}"], r"\boxed{3\sqrt2}"),
    (r"\frac{\sqrt{3}}{2}", [r"\boxed{\frac{1}{2}\sqrt{3}}", r"\boxed{\sin 60^\circ}"], r"\boxed{\frac{\sqrt2}{2}}"),
    (r"\pi", [r"\boxed{\pi}"], r"\boxed{3.14}"),
    (r"3\pi", [r"\boxed{3\pi}", r"\boxed{\pi \cdot 3}"], r"\boxed{2\pi}"),
    ("25\\%", [r"\boxed{25\%}", r"\boxed{0.25}"], r"\boxed{20\%}"),
    ("(1,2)", [r"\boxed{(1,2)}", r"\boxed{(1, 2)}"], r"\boxed{(2,1)}"),
    ("(1, 2, 3)", [r"\boxed{(1,2,3)}"], r"\boxed{(1,3,2)}"),
    ("[0,1)", [r"\boxed{[0, 1)}"], r"\boxed{(0, 1)}"),
    (r"(-\infty, 2) \cup (3, \infty)", [r"\boxed{(-\infty,2)\cup(3,\infty)}"], r"\boxed{(2,3)}"),
    (r"\{1,2,3\}", [r"\boxed{\{3,2,1\}}", r"\boxed{1}, \boxed{2}, \boxed{3}"], r"\boxed{\{1,2\}}"),
    ("1, -2", [r"\boxed{-2, 1}", r"\boxed{1} and \boxed{-2}"], r"\boxed{1}"),
    ("x^2-1", [r"\boxed{(x-1)(x+1)}", r"\boxed{x^2-1}"], r"\boxed{(x-1)^2}"),
    ("x^2+2x+1", [r"\boxed{(x+1)^2}"], r"\boxed{(x+2)^2}"),
    (r"\tan^2 y + 1", [r"\boxed{\sec^2 y}"], r"\boxed{\sec y}"),
    (r"\frac{x+1}{x^2-1}", [r"\boxed{\frac{1}{x-1}}"], r"\boxed{\frac{1}{x+1}}"),
    ("y = 2x + 1", [r"\boxed{y=1+2x}", r"\boxed{2x - y + 1 = 0}"], r"\boxed{y = 2x - 1}"),
    ("-2 < x < 5", [r"\boxed{(-2, 5)}", r"\boxed{-2<x<5}"], r"\boxed{(-2, 6)}"),
    (r"3 \pm \sqrt{2}", [r"\boxed{3 \pm \sqrt 2}", r"\boxed{3+\sqrt2, 3-\sqrt2}"], r"\boxed{3+\sqrt2}"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", [r"\boxed{\begin{pmatrix}1\\2\end{pmatrix}}"], r"\boxed{\begin{pmatrix}2\\1\end{pmatrix}}"),
    (r"\text{Evelyn}", [r"\boxed{\text{Evelyn}}"], r"\boxed{\text{Carla}}"),
    ("2^{10}", [r"\boxed{1024}", r"\boxed{2^{10}}"], r"\boxed{2^{11}}"),
    (r"\log_2 8", [r"\boxed{3}"], r"\boxed{4}"),
    ("1,22", ["The answer is 1.22", r"\boxed{1.22}"], r"\boxed{1.2}"),
    (r"a^2 + b^2", [r"\boxed{b^2 + a^2}"], r"\boxed{(a+b)^2}"),
    (r"\frac{\pi}{4}", [r"\boxed{45^\circ}", r"\boxed{\frac{\pi}{4}}"], r"\boxed{\frac{\pi}{3}}"),
]
INTEGER_PAIRS = [
    ("33", r"\boxed{033}"), ("32", r"\boxed{2^5}"), ("1033", r"\boxed{1{,}033}"),
    ("12000023", "In total 12,000,023 dollars"), ("5", "The answer is 5."), ("2", r"\boxed{\sqrt 2}"),
]
CHOICE_PAIRS = [
    ("C", "Answer: C"), ("B", "therefore I think it's B"), ("D", "D. it can't be A or B"),
    ("C", 'Answer: "C"'), ("A", "The answer is a value of 3"), ("B", r"\boxed{B}"),
]


def math_pairs() -> list[tuple[str, str]]:
    """Every right and wrong answer, bare, after a sentence, and after long reasoning."""
    pairs = []
    for gold, right, wrong in MATH_FAMILIES:
        for answer in right + [wrong]:
            pairs.append((gold, answer))
            pairs.append((gold, f"So the final answer is {answer}."))
            pairs.append((gold, REASONING + f"Therefore the result is {answer}"))
    return pairs


def timed(verifier, pairs) -> list[tuple[float, str, str]]:
    """Seconds per call, each call alone."""
    out = []
    for gold, text in pairs:
        start = time.perf_counter()
        verifier.verify(gold, text)
        out.append((time.perf_counter() - start, gold, text))
    return out


def stats(times: list[float]) -> dict:
    """mean, p50, p99 and max in milliseconds."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "calls": len(times),
        "mean_ms": round(statistics.mean(times) * 1e3, 2),
        "p50_ms": round(statistics.median(times) * 1e3, 2),
        "p99_ms": round(p99 * 1e3, 2),
        "max_ms": round(ordered[-1] * 1e3, 2),
    }


def summary(name: str, times: list[float]) -> str:
    s = stats(times)
    return (
        f"{name:<8} calls {s['calls']:>4}  mean {s['mean_ms']:7.1f} ms  "
        f"p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  max {s['max_ms']:7.1f} ms"
    )


class _Timed:
    """A verifier whose verify calls are timed (for the table rows)."""

    def __init__(self, verifier):
        self.verifier, self.times = verifier, []

    def verify(self, gold, text):
        start = time.perf_counter()
        try:
            return self.verifier.verify(gold, text)
        finally:
            self.times.append(time.perf_counter() - start)


def agreement() -> tuple[list[str], dict, list[float]]:
    """Agreement per peer table: report lines, JSON-ready numbers, and the math call times."""
    lines = [
        "",
        "agreement with the peers' verdicts (tests/fixtures/verifier_tables; documented: a row "
        "where ponder differs on purpose agrees on its documented verdict)",
        f"{'table':<18}{'verifier':<9}{'rows':>5}{'documented':>12}{'goal':>6}{'peer':>8}"
        f"{'marked':>8}{'false+':>8}{'false-':>8}",
    ]
    numbers = {}
    timed = {kind: _Timed(get_verifier(kind)) for kind in set(PEER_TABLES.values())}
    for table, kind in PEER_TABLES.items():
        path = TABLES / f"{table}.jsonl"
        documented = audit(peer_table_rows(path, kind), verifiers=timed).total
        untimed = {kind: get_verifier(kind)}  # the same calls again: time them once
        raw = audit(peer_table_rows(path, kind, documented=False), verifiers=untimed).total
        marked = sum(1 for row in peer_table_rows(path, kind) if row["why"])
        numbers[table] = {
            "verifier": kind,
            "rows": documented.rows,
            "agreement_documented": round(documented.agreement, 4),
            "goal": GOALS[table],
            "agreement_peer": round(raw.agreement, 4),
            "marked_on_purpose": marked,
            "false_positives": documented.false_positives,
            "false_negatives": documented.false_negatives,
            "errors": documented.errors,
        }
        lines.append(
            f"{table:<18}{kind:<9}{documented.rows:>5}{documented.agreement:>11.1%} "
            f"{GOALS[table]:>5.0%}{raw.agreement:>8.1%}{marked:>8}"
            f"{documented.false_positives:>8}{documented.false_negatives:>8}"
        )
    integer = numbers["integer_aime"]
    lenient = [
        row for row in map(json.loads, (TABLES / "integer_aime.jsonl").read_text().splitlines())
        if row.get("ponder") is True and row["peer"] is False
    ]
    integer["accepted_on_purpose_where_peer_rejects"] = len(lenient)
    lines.append(
        f"integer false positives on its table: {integer['false_positives']} "
        f"(rows where it accepts on purpose what the peer rejects, each a right value the peer "
        f"cannot read: {len(lenient)})"
    )
    return lines, numbers, timed["math"].times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="passes over the math pairs")
    parser.add_argument(
        "--write", action="store_true", help="also write bench/results/verifiers.txt and .json"
    )
    args = parser.parse_args()

    math = get_verifier("math")
    started = time.perf_counter()
    math.verify("1", r"\boxed{1}")
    cold = time.perf_counter() - started
    pairs = math_pairs()
    timed(math, pairs[::7])  # warm: sympy's caches and the first use of each code path

    results = [r for _ in range(args.repeat) for r in timed(math, pairs)]
    times = [t for t, _, _ in results]
    timeout = math.config.timeout_s
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"ponder verifier latency: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load} (a shared machine: other work runs alongside)",
        f"math worker cold start (incl. first call): {cold:.2f} s; timeout_s {timeout}",
        summary("math", times),
        f"math calls over timeout_s: {sum(t > timeout for t in times)}",
    ]
    latency = {"math": stats(times)}
    for name, cases in (("integer", INTEGER_PAIRS), ("choice", CHOICE_PAIRS)):
        verifier_times = [t for t, _, _ in timed(get_verifier(name), cases * 50)]
        lines.append(summary(name, verifier_times))
        latency[name] = stats(verifier_times)
    lines.append("\nslowest math pairs:")
    for seconds, gold, text in sorted(results, reverse=True)[:5]:
        shown = text if len(text) < 60 else "..." + text[-57:]
        lines.append(f"  {seconds * 1e3:7.1f} ms  gold {gold!r}  answer {shown!r}")

    table_lines, tables, table_times = agreement()
    lines += table_lines
    lines.append(summary("math", table_times) + "  (the math rows of the tables)")
    latency["math_tables"] = stats(table_times)
    math.close()

    report = "\n".join(lines)
    print(report)
    if args.write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "verifiers.txt").write_text(report + "\n")
        data = {"cold_start_s": round(cold, 2), "timeout_s": timeout, "load_average": load,
                "latency": latency, "tables": tables}
        (RESULTS / "verifiers.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
