"""Tests for ponder.verifiers: answer tables, voting keys, hostile and pathological answers.

Run: .venv/bin/python -m pytest tests/test_verifiers.py -q
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ponder.verifiers import (
    REGISTRY,
    MathVerifier,
    MathVerifierConfig,
    Verifier,
    WorkerStartError,
    get_verifier,
)

pytestmark = pytest.mark.timeout(120)

FAST_TIMEOUT_S = 2.0
# A hang assertion, not a benchmark: generous enough for a loaded 2-core machine.
HANG_BOUND_S = FAST_TIMEOUT_S * 2 + 3


@pytest.fixture(scope="module")
def fast_math():
    """A math verifier with a short timeout, for answers that hit it."""
    verifier = MathVerifier(MathVerifierConfig(timeout_s=FAST_TIMEOUT_S))
    verifier.verify("1", "1")  # start the worker now: timed sections exclude its start-up
    yield verifier
    verifier.close()


# --- verify tables: (gold, model text, expected) -----------------------------------------

MATH_CASES = [
    ("3", r"\boxed{3}", True),
    ("3", "The answer is 3.", True),
    ("3", r"<think>maybe it is 4</think> So the answer is $\boxed{3}$.", True),
    ("3", r"<think>\boxed{3}</think> The answer is \boxed{4}", False),
    ("3", r"\boxed{4} wait, actually \boxed{3}", True),
    ("2", "Final Answer: The final answer is $2$. I hope it is correct.", True),
    ("10", r"\boxed{010}", True),
    ("-2", r"\boxed{-2}", True),
    ("-2", r"\boxed{2}", False),
    ("1000", "answer: 1,000", True),
    ("5", r"\boxed{\text{5}}", True),
    (r"\frac{1}{2}", r"\boxed{\dfrac{1}{2}}", True),
    (r"\frac{1}{2}", r"\boxed{\dfrac12}", True),
    (r"\frac{1}{2}", r"\boxed{0.5}", True),
    (r"\frac{1}{2}", "The answer is 1/2", True),
    (r"\frac{1}{2}", r"\boxed{\frac{2}{4}}", True),
    (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}", False),
    (r"\frac{1}{3}", r"\boxed{0.333}", False),
    (r"\frac{\sqrt{3}}{2}", r"\boxed{\frac{1}{2}\sqrt{3}}", True),
    (r"\frac{\sqrt{3}}{2}", r"\boxed{\frac{\sqrt{3}}{3}}", False),
    (r"2\sqrt{3}", r"\boxed{\sqrt{12}}", True),
    ("2", r"\boxed{\sqrt{4}}", True),
    (r"\pi", r"\boxed{\pi}", True),
    (r"2\pi", r"\boxed{6.28}", False),
    (r"\infty", r"\boxed{\infty}", True),
    ("0.5", r"\boxed{50\%}", True),
    ("(1,2)", r"\boxed{(1,2)}", True),
    ("(1,2)", r"\boxed{(2,1)}", False),
    ("(1, 2, 3)", r"\boxed{(1,2,3)}", True),
    ("[0,1)", r"\boxed{[0, 1)}", True),
    ("[0,1)", r"\boxed{(0, 1)}", False),
    (r"\{1,2\}", r"\boxed{\{2,1\}}", True),
    ("x^2+1", r"\boxed{1+x^2}", True),
    ("x^2+1", r"\boxed{x^2-1}", False),
    ("3", r"\boxed{x = 3}", True),
    (r"\text{Evelyn}", r"\boxed{\text{Evelyn}}", True),
    # missing or malformed answers are wrong, not unknown
    ("3", "", False),
    ("3", "I could not solve it.", False),
    ("3", "<think>I think it is 3 but let me check", False),
    ("3", r"\boxed{3", False),
    ("3", r"\boxed{", False),
    ("3", r"\boxed{}", False),
    ("3", "}}}{{{", False),
    # a gold that cannot be parsed makes the question unanswerable
    ("", r"\boxed{3}", None),
    ("   ", r"\boxed{3}", None),
    (r"\frac{", r"\boxed{3}", None),
    (r"\frac{", "", None),
]

INTEGER_CASES = [
    ("33", r"\boxed{033}", True),
    ("033", r"\boxed{33}", True),
    ("33", r"\boxed{33}", True),
    ("33", "The answer is 33.", True),
    ("33", r"So the answer is $\boxed{33}$.", True),
    ("33", "Final Answer: 033", True),
    ("33", "**Answer:** 33", True),
    ("33", "so x = 33", True),
    ("33", r"\boxed{33.0}", True),
    ("33", r"\boxed{\text{33}}", True),
    ("0", r"\boxed{000}", True),
    ("999", r"<think>maybe 998</think>\boxed{999}", True),
    ("33", r"<think>the answer is 33</think> \boxed{34}", False),
    ("33", r"\boxed{33} no wait \boxed{34}", False),
    ("33", r"\boxed{33.5}", False),
    ("33", r"\boxed{\text{thirty-three}}", False),
    ("33", r"\boxed{1,033}", False),
    ("33", "<think>the answer is 33", False),
    ("33", "", False),
    ("33", "no idea", False),
    ("33", "1" * 1_000_000, False),
    ("abc", r"\boxed{33}", None),
    ("", r"\boxed{33}", None),
    ("3.5", r"\boxed{3.5}", None),
]

CHOICE_CASES = [
    ("C", "Answer: C", True),
    ("C", "The answer is (C).", True),
    ("C", "answer is (c)", True),
    ("C", "After all that, (C)", True),
    ("C", r"\boxed{C}", True),
    ("C", r"\boxed{\text{C}}", True),
    ("C", r"\boxed{(C)}", True),
    ("C", "**C**", True),
    ("C", "**Answer:** **C**", True),
    ("C", "c", True),
    ("c", "Answer: C", True),
    ("(C)", "Answer: C", True),
    ("B", "The correct option is B.", True),
    ("D", r"The final answer is $\boxed{D}$", True),
    ("C", "Answer: C. Answer A is wrong because...", True),
    ("A", "The answer is a value of 3", False),
    ("A", "I think a value near 3 works", False),
    ("B", "Answer: C", False),
    ("C", "<think>Answer: C</think> Answer: D", False),
    ("C", "<think>Answer: C", False),
    ("C", "", False),
    ("E", "Answer: E", None),
    ("", "Answer: C", None),
    ("CD", "Answer: C", None),
]

VERIFY_CASES = (
    [("math", *case) for case in MATH_CASES]
    + [("integer", *case) for case in INTEGER_CASES]
    + [("choice", *case) for case in CHOICE_CASES]
)


@pytest.mark.parametrize("name,gold,text,expected", VERIFY_CASES)
def test_verify_table(name, gold, text, expected):
    assert get_verifier(name).verify(gold, text) is expected


# --- extract: canonical strings for voting -----------------------------------------------

EQUIVALENT_GROUPS = [
    ("math", [r"\boxed{\frac{1}{2}}", r"\boxed{\dfrac12}", r"\boxed{0.5}", "The answer is 1/2."]),
    ("math", [r"\boxed{033}", r"\boxed{33}", "answer: 33", r"\boxed{x = 33}"]),
    ("math", [r"\boxed{2\sqrt{3}}", r"\boxed{\sqrt{12}}"]),
    ("math", [r"\boxed{2^{10}}", r"\boxed{1024}"]),
    ("integer", [r"\boxed{033}", "The answer is 33.", "so 33", r"\boxed{33.0}"]),
    ("choice", ["Answer: C", "(c)", r"\boxed{\text{C}}", "**C**"]),
]


@pytest.mark.parametrize("name,texts", EQUIVALENT_GROUPS)
def test_extract_equivalent_answers_vote_together(name, texts):
    keys = {get_verifier(name).extract(text) for text in texts}
    assert len(keys) == 1 and None not in keys, keys


@pytest.mark.parametrize(
    "name,text,expected",
    [
        ("math", r"\boxed{\frac{1}{2}}", "1/2"),
        ("math", r"\boxed{033}", "33"),
        ("math", r"\boxed{(1,2)}", "Interval.open(1, 2)"),
        ("math", "", None),
        ("math", "<think>only thinking, never finished", None),
        ("math", "no answer here", None),
        ("integer", r"\boxed{033}", "33"),
        ("integer", "no numbers at all", None),
        ("integer", r"\boxed{\text{none}}", None),
        ("choice", "The answer is (c).", "C"),
        ("choice", "The answer is a value of 3", None),
        ("choice", "", None),
    ],
)
def test_extract_table(name, text, expected):
    assert get_verifier(name).extract(text) == expected


def test_extract_differs_for_different_answers():
    math = get_verifier("math")
    assert math.extract(r"\boxed{\frac{1}{2}}") != math.extract(r"\boxed{\frac{1}{3}}")


# --- registry and protocol ---------------------------------------------------------------


def test_registry_and_protocol():
    assert set(REGISTRY) == {"math", "integer", "choice"}
    for name in REGISTRY:
        verifier = get_verifier(name)
        assert isinstance(verifier, Verifier)
        assert verifier.name == name
        assert get_verifier(name) is verifier


def test_unknown_verifier_names_the_allowed_ones():
    with pytest.raises(ValueError, match="choice, integer, math"):
        get_verifier("regex")


def test_import_loads_no_heavy_modules():
    code = textwrap.dedent(
        """
        import sys
        import ponder.verifiers as v
        v.get_verifier("math").verify("1", r"\\boxed{1}")  # the work happens in a worker
        heavy = {"torch", "vllm", "ray", "transformers", "sympy", "math_verify"}
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- untrusted output: nothing in it may execute -----------------------------------------

PAYLOADS = [
    "\\boxed{__import__('os').system('touch {marker}')}",
    "__import__(\"os\").system(\"touch {marker}\")",
    "Answer: (lambda: __import__('os').system('touch {marker}'))()",
    "The answer is eval(\"__import__('os').system('touch {marker}')\")",
    "answer: exec(chr(111)+chr(115))",
    "eval(\"1\")",
    "().__class__.__bases__[0].__subclasses__()",
    "$__import__('os').system('touch {marker}')$",
    "\\boxed{\\operatorname{__import__}(os)}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_code_in_answers_never_runs(payload, tmp_path, fast_math):
    marker = tmp_path / "pwned_ponder"
    text = payload.replace("{marker}", str(marker))
    for verifier in (fast_math, get_verifier("integer"), get_verifier("choice")):
        assert fast_math.verify("1", "1") is True  # a warm worker: time only the payload
        start = time.monotonic()
        assert verifier.verify("7", text) in (False, None)
        verifier.extract(text)
        assert time.monotonic() - start < HANG_BOUND_S
    assert not marker.exists()


def test_eval_guard_blocks_sympy_string_parsing(tmp_path):
    # In a subprocess: the guard patches sympy, which this test process may share with others.
    marker = tmp_path / "pwned_ponder"
    code = textwrap.dedent(
        f"""
        import sympy
        from sympy.parsing.sympy_parser import parse_expr
        from ponder.verifiers._worker import UnsafeExpression, install_eval_guard
        install_eval_guard()
        assert sympy.Number("33") == 33 and sympy.Number("0.5") == 0.5  # numerals still parse
        assert sympy.sympify("1/2") == sympy.Rational(1, 2)
        attacks = [
            "__import__('os').system('touch {marker}')",
            "exec(chr(120))",
            "x.y",
            "a[0]",
        ]
        # parse_expr was bound before the guard went in, so for it the sink must do the refusing.
        for attack in attacks:
            for parse in (parse_expr, sympy.sympify, sympy.Number):
                try:
                    parse(attack)
                except (UnsafeExpression, sympy.SympifyError, ValueError, TypeError):
                    continue
                raise SystemExit(f"not refused: {{parse.__name__}}({{attack!r}})")
        import sympy.parsing.sympy_parser as sp
        try:  # the sink itself refuses code that names anything but number constructors
            sp.eval_expr("__import__('os')", {{}}, {{}})
        except UnsafeExpression:
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "ok"
    assert not marker.exists()


# --- pathological answers: bounded time, no crash, the verifier keeps working ------------

PATHOLOGICAL = [
    r"\boxed{10^{10^{10^{10}}}}",
    "9^9^9^9^9",
    "answer: 9**9**9**9",
    r"\boxed{(10^{6})!}",
    "x" * 1_000_000,
    "1" * 1_000_000,
    "{" * 10_000 + "}" * 10_000,
    r"\boxed{" + "{" * 10_000 + "}" * 10_000 + "}",
    r"\boxed{" + "{" * 1000 + "1" + "}" * 1000 + "}",
    "$" + "(" * 500 + "1" + ")" * 500 + "$",
    r"\boxed{",
    r"\boxed{" * 5000,
    "\ud800 \\boxed{1}",  # a lone surrogate must survive the trip to the worker
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=lambda t: repr(t[:24]))
def test_pathological_answers_return_in_time(text, fast_math):
    for call in (lambda: fast_math.verify("1", text), lambda: fast_math.extract(text)):
        # Still works (restarted if the last call killed it); also keeps start-up untimed.
        assert fast_math.verify("1", r"\boxed{1}") is True
        start = time.monotonic()
        result = call()
        assert time.monotonic() - start < HANG_BOUND_S
        assert result is None or isinstance(result, (bool, str))
    assert fast_math.verify("1", r"\boxed{1}") is True


@pytest.mark.parametrize("name", ["integer", "choice"])
def test_megabyte_answers_are_cheap_for_regex_verifiers(name):
    verifier = get_verifier(name)
    start = time.monotonic()
    for text in ["1" * 1_000_000, "answer " * 150_000, r"\boxed{" * 150_000, "(" * 1_000_000]:
        verifier.verify("1" if name == "integer" else "A", text)
        verifier.extract(text)
    assert time.monotonic() - start < 3.0  # about 0.1 s unloaded: a hang check, not a benchmark


def test_hung_worker_is_killed_and_replaced(fast_math):
    assert fast_math.verify("2", r"\boxed{2}") is True
    (pid,) = fast_math.worker_pids()
    os.kill(pid, signal.SIGSTOP)  # what a sympy computation stuck in C looks like from outside
    start = time.monotonic()
    # The stopped worker is killed at the deadline and the call retried on a fresh one: a
    # worker that stalls is not a verdict on the answer.
    assert fast_math.verify("2", r"\boxed{2}") is True
    assert time.monotonic() - start < HANG_BOUND_S
    assert len(fast_math.worker_pids()) == 1
    assert fast_math.worker_pids() != [pid]


def test_worker_that_cannot_start_is_an_error():
    verifier = MathVerifier(MathVerifierConfig(memory_limit_mb=16))
    with pytest.raises(WorkerStartError):
        verifier.verify("1", r"\boxed{1}")
    verifier.close()


# --- threads -------------------------------------------------------------------------------


def test_concurrent_verify_from_eight_threads():
    verifier = MathVerifier(MathVerifierConfig(workers=2))
    cases = [(g, t, e) for g, t, e in MATH_CASES if e is not None][:24]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda case: verifier.verify(case[0], case[1]), cases))
    finally:
        verifier.close()
    assert results == [expected for _, _, expected in cases]


def test_warm_starts_a_worker_in_the_background():
    """Controllers warm the verifier when they start: the worker is up before the first answer."""
    import time

    from ponder.verifiers.math_answers import MathVerifier

    v = MathVerifier()
    try:
        assert v.worker_pids() == []
        v.warm()
        v.warm()  # once only
        deadline = time.monotonic() + 60
        while not v.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(v.worker_pids()) == 1
        assert v.extract(r"so \boxed{\frac{1}{2}}") == "1/2"
        assert len(v.worker_pids()) == 1  # the warm worker served the call
    finally:
        v.close()
