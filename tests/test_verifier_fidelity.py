"""Regression tests for the verifier fidelity issue: one table per cause found when peer
projects' published answer tables were run through ponder's verifiers.

Every case here is our own. Run:
    PYTHONPATH=. .venv/bin/python -m pytest -q tests/test_verifier_fidelity.py
"""

import subprocess
import sys
import textwrap

import pytest

from ponder.verifiers import get_verifier
from ponder.verifiers._text import expand_plus_minus, final_boxes, gold_readings

pytestmark = pytest.mark.timeout(120)


# --- cause 1: the eval guard broke sympy's own imports, so nothing simplified ---------------

SIMPLIFICATION_CASES = [
    ("x^2-1", r"The answer is \boxed{(x-1)(x+1)}", True),
    ("x^2-1", r"\boxed{(x-1)(x+2)}", False),
    (r"\tan^2 y + 1", r"\boxed{\sec^2 y}", True),
    (r"\frac{x+1}{x^2-1}", r"so it is $\boxed{\frac{1}{x-1}}$", True),
    ("-2 < x < 5", r"\boxed{(-2, 5)}", True),  # an inequality answered by its interval
    ("y = 2x + 1", r"\boxed{2x - y + 1 = 0}", True),  # the same line, rearranged
    ("y = 2x + 1", r"\boxed{2x - y - 1 = 0}", False),
    ("x + y + z", r"\boxed{z + x + y}", True),
]


@pytest.mark.parametrize("gold,text,expected", SIMPLIFICATION_CASES)
def test_equivalences_that_need_simplification(gold, text, expected):
    assert get_verifier("math").verify(gold, text) is expected


def test_preload_imports_sympy_units_and_guard_still_refuses_names(tmp_path):
    # In a subprocess: the guard patches sympy for the whole process.
    code = textwrap.dedent(
        """
        import sympy
        from ponder.verifiers._worker import UnsafeExpression, install_eval_guard, preload
        preload()
        install_eval_guard()
        import sympy.physics.units as units  # imported by preload, before the guard
        assert units.kilo.scale_factor == 1000
        for name in ("yotta", "x", "__import__('os')"):
            try:
                sympy.sympify(name)
            except (UnsafeExpression, sympy.SympifyError):
                continue
            raise SystemExit(f"not refused: {name}")
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("ok")


# --- cause 2: only the last box was read ---------------------------------------------------

BOX_GROUP_CASES = [
    (r"\{1,2,3\}", r"\boxed{1}, \boxed{2}, \boxed{3}", True),
    ("1, 2, 3", r"so the roots are \boxed{1}, \boxed{2} and \boxed{3}.", True),
    ("1, 2, 3", r"\boxed{1}, \boxed{2}", False),
    ("(1,2),(3,4)", r"\boxed{(1,2)} \quad\text{and}\quad \boxed{(3,4)}", True),
    ("(1,2),(3,4)", r"\boxed{(3,4)}", False),
    ("2", r"\boxed{2} \boxed{2}", True),  # the same answer twice is one answer
    # a self-correction followed by a new box means the new box
    ("3", r"\boxed{4} wait, actually \boxed{3}", True),
    ("4", r"\boxed{4} wait, actually \boxed{3}", False),
    ("3", r"\boxed{4}. Hmm, no: \boxed{3}", True),
    ("6", r"\boxed{5}, so the answer is \boxed{6}", True),
    # a box far before the last one, with no separator, is an earlier step
    ("7", r"First \boxed{2} is the width of the rectangle we need here. Then the area: \boxed{7}", True),
    # Math-Verify's top-priority statement after a box outranks the box
    ("12", r"step: \boxed{5}. Final Answer: The final answer is $12$. I hope it is correct.", True),
]


@pytest.mark.parametrize("gold,text,expected", BOX_GROUP_CASES)
def test_final_group_of_boxes(gold, text, expected):
    assert get_verifier("math").verify(gold, text) is expected


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"\boxed{1}, \boxed{2}", ["1", "2"]),
        (r"\boxed{1} and \boxed{2} or \boxed{3}", ["1", "2", "3"]),
        (r"\boxed{4} wait, actually \boxed{3}", ["3"]),
        (r"\boxed{1}" + " filler words" * 5 + r" \boxed{2}", ["2"]),  # far apart, no separator
        (r"\boxed{1}" + " and" * 20 + r" \boxed{2}", ["2"]),  # 70 characters or more apart
        (r"\boxed{1}, \boxed{2}, \boxed{", ["1", "2"]),  # an unclosed last box is skipped
        (r"\boxed{x}, \boxed{x}", ["x"]),
        ("no box", []),
        (", ".join([r"\boxed{%d}" % i for i in range(20)]), [str(i) for i in range(12, 20)]),
    ],
)
def test_final_boxes(text, expected):
    assert final_boxes(text) == expected


def test_box_group_votes_as_a_set():
    math = get_verifier("math")
    assert math.extract(r"\boxed{2}, \boxed{1}") == math.extract(r"\boxed{\{1, 2\}}")


# --- cause 3: gold answers with a decimal comma or a \pm ----------------------------------

GOLD_CASES = [
    ("1,22", "The answer is 1.22", True),
    ("1,22", r"\boxed{1, 22}", True),  # the same text as a list
    ("1,22", r"\boxed{1.23}", False),
    ("0,5", r"\boxed{0.5}", True),
    ("12,000", r"\boxed{12000}", True),  # a thousands separator stays one number
    ("1,000", r"\boxed{1}", False),
    (
        r"x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}",
        r"\boxed{x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}}",
        True,
    ),
    (
        r"x = \frac{1}{2}, x = \frac{-1 \pm \sqrt{13}}{4}",
        r"\boxed{\frac{-1 + \sqrt{13}}{4}}, \boxed{\frac12}, \boxed{\frac{-1 - \sqrt{13}}{4}}",
        True,
    ),
    (r"\frac{-1 \pm \sqrt{13}}{4}", r"\boxed{\frac{-1 - \sqrt{13}}{4}, \frac{-1 + \sqrt{13}}{4}}", True),
    (r"\frac{-1 \pm \sqrt{13}}{4}", r"\boxed{\frac{-1 + \sqrt{13}}{4}}", False),  # one root only
    (r"\pm 3", r"\boxed{3}", False),
    (r"$\pm 3$", r"\boxed{-3, 3}", True),
    (r"3 \pm \sqrt{2}", r"\boxed{3 \pm \sqrt 2}", True),
]


@pytest.mark.parametrize("gold,text,expected", GOLD_CASES)
def test_gold_forms(gold, text, expected):
    assert get_verifier("math").verify(gold, text) is expected


@pytest.mark.parametrize(
    "gold,expected",
    [
        ("1,22", ["1.22", "1,22"]),
        ("0,111", ["0.111", "0,111"]),
        ("1000,5", ["1000.5", "1000,5"]),
        ("1,000", ["1,000"]),  # thousands, not a decimal comma
        ("12,000,023", ["12,000,023"]),
        ("1, 22", ["1, 22"]),  # a space after the comma: a list
        (r"\pm 2", ["+ 2, - 2"]),
        (r"$x = 1 \pm 2$", ["x = 1 + 2, x = 1 - 2"]),
        (r"\frac{1}{2}", [r"\frac{1}{2}"]),
    ],
)
def test_gold_readings(gold, expected):
    assert gold_readings(gold) == expected


def test_expand_plus_minus_keeps_brackets_and_mp_together():
    assert expand_plus_minus(r"(1, 2 \pm 3)") == "(1, 2 + 3), (1, 2 - 3)"
    assert expand_plus_minus(r"a \pm b \mp c") == "a + b - c, a - b + c"
    assert expand_plus_minus(r"\pmb") == r"\pmb"  # another command, not \pm


# --- cause 4: integer answers were the last number in the box or text -------------------------

INTEGER_CASES = [
    # an expression that is an integer is that integer
    ("32", r"\boxed{2^5}", True),
    ("5", r"\boxed{2^5}", False),
    ("3", r"\boxed{\frac{12}{4}}", True),
    ("7", r"\boxed{\sqrt{49}}", True),
    ("32", "The answer is 2^5 = 32.", True),
    ("10", r"Answer: \( (9+1) \)", True),
    # an expression that is not an integer is simply wrong, whatever number ends it
    ("2", r"\boxed{\sqrt 2}", False),
    ("2", r"\boxed{\frac{1+\sqrt5}{2}}", False),
    ("5", r"\boxed{\frac{1+\sqrt5}{2}}", False),
    ("1", r"\boxed{x+1}", False),
    ("3", r"\boxed{3\pi}", False),
    ("1", r"\boxed{2\frac{1}{2}}", False),  # a mixed number or a product: ambiguous, never 1
    ("1", r"\boxed{10^{10^{10^{10}}}}", False),  # refused, not computed
    ("1", "answer: 3x+1", False),
    ("3", "answer: 3x+1", False),
    ("5", "so it is x - 5", False),
    # thousands separators are exactly three digits
    ("1033", r"\boxed{1{,}033}", True),
    ("33", r"\boxed{1{,}033}", False),
    ("1033", r"\boxed{1\,033}", True),
    ("12000023", "In total she has 12,000,023 dollars", True),
    ("12", "In total she has 12,000,023 dollars", False),
    ("23", "In total she has 12,000,023 dollars", False),
    ("7425000", "7,425,000", True),
    ("1000", "about 1 000", True),
    ("22", "The answer is 1,22", False),  # a decimal comma (or a list): no integer at all
    ("1", "The answer is 1,22", False),
    ("3", "the solutions are 1,2,3", False),
    # numbers glued to words are not answers
    ("5", "the 5th term is 33", False),
    ("33", "the 5th term is 33", True),
    ("2", "AZ2B", False),
    ("33", r"\boxed{33 \text{ apples}}", True),
    ("-5", "the answer is -5", True),
    ("12", r"\boxed{5}. Final Answer: The final answer is $12$. I hope it is correct.", True),
]


@pytest.mark.parametrize("gold,text,expected", INTEGER_CASES)
def test_integer_answers(gold, text, expected):
    assert get_verifier("integer").verify(gold, text) is expected


@pytest.mark.parametrize(
    "gold,expected",
    [("1,000", True), ("$1000$", True), ("1000.0", True), ("2^{10}", False), ("1,22", None), ("x", None)],
)
def test_integer_gold_forms(gold, expected):
    # GSM8K golds carry thousands separators; a gold that is no integer cannot be answered
    assert get_verifier("integer").verify(gold, r"\boxed{1000}") is expected


# --- cause 5: letters stated in prose were missed ---------------------------------------------

CHOICE_CASES = [
    ("B", "It is not A, since that fails the check; therefore I think it's B", True),
    ("A", "It is not A, since that fails the check; therefore I think it's B", False),
    ("D", "The answer is for sure D, it can't be A or B", True),
    ("C", "The answer is definitely option C.", True),
    ("D", "D. it can't be A or B", True),
    ("B", "**(B)** because the others fail", True),
    ("C", 'Answer: "C"', True),
    ("C", "The final answer would be C", True),
    ("D", "I'd go with D here.", True),
    ("C", "It's not A, it's C.", True),
    # negations and prose letters are not choices
    ("A", "The answer is not A.", False),
    ("A", "It is a hard one; I think a value near 3 works", False),
    ("A", "A is incorrect because the sign is wrong", False),
    ("A", "I believe a rate of 5 is right", False),
    ("B", "I see. It is what it is.", False),
    ("A", "it is A-OK to divide here", False),
    # the last statement wins
    ("A", "So the answer is C.\n\nAnswer: A", True),
]


@pytest.mark.parametrize("gold,text,expected", CHOICE_CASES)
def test_choice_prose(gold, text, expected):
    assert get_verifier("choice").verify(gold, text) is expected


@pytest.mark.parametrize(
    "gold,expected",
    [("(D) Alina", "D"), ("C Cecile", "C"), ("A Peter\nCelina bum", "A"), ("so the answer is\n(B) Bo", "B")],
)
def test_choice_gold_with_option_text(gold, expected):
    choice = get_verifier("choice")
    assert choice.verify(gold, expected) is True
    assert choice.verify(gold, "E" if expected != "A" else "B") is False


# --- cause 6: integer false positives and letters missed on the peer cross-check tables ------
# (tests/test_verifier_tables.py runs the tables; these pin the rules behind them)

INTEGER_RULE_CASES = [
    # boxes Math-Verify joins are a set, never an integer; one answer boxed twice is that answer
    ("5", r"\boxed{3} and \boxed{5}", False),
    ("5", r"\boxed{5} and \boxed{5}", True),
    ("3", r"\boxed{4} wait, actually \boxed{3}", True),
    ("6", r"\boxed{x=5, y=6}", False),
    ("5", r"\boxed{5 \text{ or } 6}", False),
    ("3", r"\boxed{\text{3 apples}}", False),
    ("33", r"\boxed{\text{33}}", True),
    # units after a boxed number
    ("60", r"\boxed{60 \text{ km/h}}", True),
    ("16", r"\boxed{16 \, \text{cm}^{2}}", True),
    ("2", r"\boxed{16 \, \text{cm}^{2}}", False),
    # factorials, binomials, roots; bounded and exact
    ("120", r"\boxed{5!}", True),
    ("5", r"\boxed{5!}", False),
    ("720", r"\boxed{3!!}", False),  # a double factorial is not (3!)!
    ("10", r"\boxed{\dbinom{5}{2}}", True),
    ("3", r"\boxed{\sqrt[3]{27}}", True),
    ("4", r"\boxed{8^{2/3}}", True),
    ("-2", r"\boxed{\sqrt[3]{-8}}", False),  # sympy's principal root is complex
    ("2", r"\boxed{2^{1/2}}", False),
    ("1", r"\boxed{451!}", False),  # refused, not computed
    # a ratio, two numbers, a range after a cue
    ("30", "We meet at 10:30", False),
    ("23", r"\boxed{2 3}", False),
    ("5", "Answer: between 1 and 5", False),
    ("7", "The answer is not 5; it must be 7", True),  # Math-Verify reads 5
    ("5", "The answer is not 5; it must be 7", False),
    ("5", "The answer is from 1 to 5", False),
    ("7", "I tried 5 and 7 but neither works", False),
    ("4", "the numbers are 3, 4", False),
    ("14", "3 + 4 = 7 and 7 * 2 = 14", True),
    ("72", "Answer: she sold 48/2 = 24 in May, so 48 + 24 = 72 altogether.", True),
    ("12", "The answer is probably 12.", True),
    ("12", "The answer is probably 12. Indeed 3 times 4 is 12.", True),
    ("60", "It drives at 60 km/h", True),
]


@pytest.mark.parametrize("gold,text,expected", INTEGER_RULE_CASES)
def test_integer_rules_from_peer_tables(gold, text, expected):
    assert get_verifier("integer").verify(gold, text) is expected


CHOICE_RULE_CASES = [
    ("C", "Neither A nor B work, hence C", True),
    ("C", "Options A and B fail. So, C.", True),
    ("A", "So A is wrong.", False),
    ("D", "It is clearly option D.", True),
    ("B", "Option B is correct.", True),
    ("A", "A is incorrect; B is not correct either.", False),
    ("B", "A is incorrect; B is not correct either.", False),
    ("A", "I would say A.", True),
    ("A", "Answer - A", True),
    ("C", "Considering all of it:\nC. the third option", True),
    ("A", "A fails the symmetry check, so I pick B", False),
]


@pytest.mark.parametrize("gold,text,expected", CHOICE_RULE_CASES)
def test_choice_rules_from_peer_tables(gold, text, expected):
    assert get_verifier("choice").verify(gold, text) is expected


def test_a_bare_so_does_not_end_a_box_group():
    assert final_boxes(r"\boxed{1}, so the other root is \boxed{2}") == ["1", "2"]
    assert final_boxes(r"\boxed{5}, so the answer is \boxed{6}") == ["6"]
