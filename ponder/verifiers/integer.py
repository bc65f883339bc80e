"""The integer verifier for AIME- and GSM8K-style answers: pure stdlib, no sympy.

The answer is the expression in the last `\\boxed{}` (unless Math-Verify's top-priority "The final
answer is $X$. I hope it is correct." follows it), else the one after the last "answer is" /
"Answer:" / "Final Answer:", else the last number (with the arithmetic around it) in the answer
part. It is computed exactly (`_arith`): `\\boxed{2^5}` is 32, `\\boxed{1{,}033}` is 1033,
`\\boxed{5!}` is 120 and "12,000,023" is one number, while an expression that is not an integer
(`\\sqrt 2`, `\\frac{1+\\sqrt5}{2}`) is no integer answer at all, never the last number inside it.
Nor is a relation ("x \\le 5", "\\boxed{x < 7}"), an equation whose left side is more than a
name ("a + 3z = 0": Math-Verify compares it whole), a mixed number ("4 4/9"), a decimal comma
("0,111" is 0.111), or a set, list or range: boxes that Math-Verify joins into one answer ("\\boxed{3} and
\\boxed{5}"), a box holding a comma or several equations ("\\boxed{x=5, y=6}"), or numbers
joined by words ("\\boxed{3 \\text{ or } 4}"), or a text answer ("\\boxed{\\text{3 apples}}", a
string to Math-Verify); a unit after the number is fine ("60 km/h", "\\boxed{33 \\text{ apples}}").

Where this differs from Math-Verify's reading of the same text, on purpose (each is marked in
tests/fixtures/verifier_tables/integer_aime.jsonl):
- a number glued to a letter ("3x", "5th", "1^{st}", "x2") or continued by an operator and a
  letter ("x + 1") is part of something else, not an integer answer;
- a comma between digits that is not a thousands separator ("1,22", "1,2,3") makes a decimal or
  a list, which is never an integer;
- "3:2" is a ratio (or a time), not an integer: Math-Verify reads the 3;
- the last number closing a range or a list ("between 1 and 5", "from 1 to 5", "I tried 5 and
  7", "3, 4") is no integer: Math-Verify reads a number from it (the first after a cue, else
  the last);
- a cue followed by words is not where the value is: "The answer is not 5; it must be 7" is 7,
  where Math-Verify takes the first number within 50 characters of the cue, 5;
- a box is one answer: a set is never an integer, even `\\{5\\}`, which Math-Verify unwraps;
- inline math broken across lines ("Answer $ \\n 9 \\n $") is not read, as Math-Verify's own
  latex table expects (0.9 with its number fallback reads the 9); "4 0/9" is the mixed number 4;
- "3!" outside a box may be an exclamation: no answer; "- 5" (a sign set apart) is no answer,
  where Math-Verify drops the sign and reads 5;
- numbers are read in any markup (`$`, `\\(`, bold), with or without a cue, and plain-text
  arithmetic is computed ("2 \\cdot 3" is 6, "3 \\times 10^2" is 300), where Math-Verify reads
  LaTeX only between `$` signs and so takes the last number. This and the negated cue above
  are the only places the verifier accepts what Math-Verify rejects, each time for an answer
  whose value is right.

Plain numerals are compared as canonical digit strings ("033" -> "33", "33.0" -> "33"), never
through `int()`, so a megabyte of digits costs a linear scan.
"""

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from ponder.verifiers._arith import ARITHMETIC, NotArithmetic, Token, evaluate, tokens
from ponder.verifiers._normalize import drop_broken_inline_math, rewrite_mixed_numbers
from ponder.verifiers._text import (
    ANSWER_CUE,
    FINAL_ANSWER,
    answer_window,
    final_boxes,
    last_boxed_span,
)

__all__ = ["IntegerVerifier", "IntegerVerifierConfig", "canonical_number"]

# Markup that carries no meaning for a number: \text{...} keeps its content, the rest goes.
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|textnormal|mathrm|mathbf|mbox|bf)\s*\{([^{}]*)\}")
_NOISE = re.compile(
    r"\^\s*\{?\\circ\}?|\\%|%|\\\$|\$|\\\(|\\\)|\\\[|\\\]|\*\*|\\(?:text|textbf|mathrm|mathbf|bf)\b"
)
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SIGNS = ("+", "-", "−")
_TEXT_ANSWER = re.compile(r"\s*\\(?:text|textbf|textrm|mbox)\s*\{[^{}]*[A-Za-z][^{}]*\}\s*")
# What joins the numbers of a range or a list: "1 and 5", "1 to 5", "3, 4", "2 or 3", "1–5".
_LIST_GAP = re.compile(r"(?:\s|[,;&–—]|and|or|to|through|nor)+", re.IGNORECASE)
# Tokens a unit may hold after a number: "km/h", "m/s^2", "cm^{2}", "\$ per item".
_UNIT_OPS = frozenset({"/", "^", "*", "·", "\\cdot"})
# Relations: "x \\le 5" or "x < 5" states a bound, not the value 5 (Math-Verify compares the
# relation whole, so neither a gold nor an answer written so is an integer).
_RELATIONS = frozenset(
    {"<", ">", "≤", "≥", "≠", "\\le", "\\leq", "\\ge", "\\geq", "\\lt", "\\gt", "\\ne"}
    | {"\\neq"}
)


@dataclass(frozen=True)
class IntegerVerifierConfig:
    """How much text the integer verifier reads."""

    max_chars: int = 8192
    """Most characters of the answer part that are searched (around the last box)."""


def canonical_number(digits: str) -> str:
    """Normalise a decimal numeral: "033" -> "33", "-0" -> "0", "33.50" -> "33.5", "33.0" -> "33".

    Args:
        digits: an optional sign, digits, and an optional fractional part.

    Returns:
        The numeral without leading zeros, trailing fractional zeros or a redundant sign.
    """
    sign = "-" if digits.startswith("-") else ""
    whole, _, frac = digits.lstrip("+-").partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    number = f"{whole}.{frac}" if frac else whole
    return number if number == "0" else sign + number


def _clean(text: str) -> str:
    return _NOISE.sub(" ", _WRAPPER.sub(r" \1 ", text))


def _value(run: list[Token]) -> str | None:
    """The canonical answer of an arithmetic run: an integer, or a plain decimal numeral as
    written ("33.5", so that it still votes); None for any other non-integer."""
    parts = [t for t in run if t.kind != "space"]
    text = "".join(t.text for t in parts).replace("−", "-")
    # One numeral, maybe signed ("2 3" is two numbers, never 23); no int(): a megabyte of
    # digits stays a string operation.
    if sum(t.kind == "num" for t in parts) == 1 and _PLAIN.fullmatch(text):
        return canonical_number(text)
    try:
        value = evaluate(run)
    except NotArithmetic:
        return None
    if value.denominator != 1:
        return None
    return str(value.numerator)


def _runs(toks: list[Token], begin: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) token ranges of the maximal arithmetic runs from `begin` on, without spaces
    at their ends; lazily, so a caller that wants the first pays only for it."""
    start = None
    for i in range(begin, len(toks) + 1):
        kind = toks[i].kind if i < len(toks) else "end"
        if kind in ARITHMETIC or (kind == "space" and start is not None):
            if start is None:
                start = i
            continue
        if start is not None:
            end = i
            # without spaces, or brackets that open what the run does not hold: "7 (since ..."
            while end > start and toks[end - 1].kind in ("space", "open"):
                end -= 1
            if end > start:
                yield start, end
            start = None


def _stands_alone(toks: list[Token], start: int, end: int) -> bool:
    """Whether the run toks[start:end] is a whole answer rather than part of something else:
    not glued to a word ("3x", "x2", "5th"), not continuing one ("x + 1", "x-1", "3 + x")."""
    before = toks[start - 1] if start > 0 else None
    after = toks[end] if end < len(toks) else None
    previous = next((t for t in reversed(toks[:start]) if t.kind != "space"), None)
    if previous is not None and previous.text in _RELATIONS:
        return False  # "x \\le 5": a bound, not the value
    if any(t is not None and t.kind == "word" for t in (before, after)):
        return False
    # "3:2" or "10:30": a ratio or a time, not an integer (Math-Verify would read the 3)
    if before is not None and before.text == ":" and start > 1 and toks[start - 2].kind == "num":
        return False
    if after is not None and after.text == ":" and toks[end + 1 : end + 2]:
        if toks[end + 1].kind == "num":
            return False
    first, last = toks[start], toks[end - 1]
    if last.kind == "op":
        return False
    if first.kind == "op":
        if first.text not in _SIGNS or toks[start + 1].kind == "space":
            return False  # "* 3" or "- 3": the second half of an expression
        word_before = next((t for t in reversed(toks[:start]) if t.kind != "space"), None)
        if word_before is not None and word_before.kind in ("num", "close"):
            return False
    return True


def _answer_after(toks: list[Token], index: int) -> str | None:
    """The answer stated from token `index` on ("33", "2^5 = 32"), or None."""
    run = next(_runs(toks, index), None)
    if run is None:
        return None
    start, end = run
    if any(t.kind != "space" for t in toks[index:start]):
        return None  # words come first: this is not where the value is
    # "2^5 = 32": the last side of a chain of equalities
    while end < len(toks):
        nxt = next((i for i in range(end, len(toks)) if toks[i].kind != "space"), None)
        if nxt is None or toks[nxt].kind != "eq":
            break
        following = next(_runs(toks, nxt + 1), None)
        if following is None or any(t.kind != "space" for t in toks[nxt + 1 : following[0]]):
            break  # "= x + 1" or "= the ...": the chain ends here
        start, end = following
    if not _stands_alone(toks, start, end):
        return None
    return _value(toks[start:end])


class IntegerVerifier:
    r"""Verifies and extracts integer answers.

    Args:
        config: how much text to read.

    Example:
        >>> IntegerVerifier().extract(r"<think>...</think> The answer is $\boxed{033}$.")
        '33'
        >>> IntegerVerifier().extract(r"\boxed{2^5}")
        '32'
    """

    name = "integer"

    def __init__(self, config: IntegerVerifierConfig | None = None):
        self.config = config or IntegerVerifierConfig()

    def extract(self, text: str) -> str | None:
        """The final answer as a canonical numeral ("33"), or None when there is none.

        A last box that holds no integer ("\\sqrt 2", "x+1", "\\text{none}") gives None rather
        than some other number in the text.

        Args:
            text: the model's output.
        """
        if not isinstance(text, str):
            return None
        # inline math broken across lines is no LaTeX (Math-Verify's tables read nothing there);
        # "4 0/9" is the mixed number 4, "4 4/9" no integer (see _normalize)
        window = answer_window(text, self.config.max_chars)
        window = rewrite_mixed_numbers(drop_broken_inline_math(window))
        boxed = last_boxed_span(window)
        if boxed is not None and not FINAL_ANSWER.search(window, boxed[2]):
            # "\boxed{3} and \boxed{5}" is the set {3, 5} (as Math-Verify joins boxes), which
            # is no integer; the same number boxed twice is that number.
            values = {_boxed_value(box) for box in final_boxes(window)}
            return values.pop() if len(values) == 1 else None
        window = _clean(window)
        toks = tokens(window)
        starts = [t.start for t in toks]
        # From the last cue back: "answered" and "answer sheet" are cues that lead nowhere.
        for cue in reversed(list(ANSWER_CUE.finditer(window))):
            index = _index_at(toks, starts, cue.end())
            if index < len(toks) and toks[index].kind in ARITHMETIC - {"close"}:
                return _answer_after(toks, index)
        runs = [run for run in _runs(toks) if _has_number(toks, *run)]  # not a lone "/"
        if not runs:
            return None
        start, end = runs[-1]
        before = toks[runs[-2][1] - 1] if len(runs) > 1 else None
        if before is not None and _LIST_GAP.fullmatch(
            window, before.start + len(before.text), toks[start].start
        ):
            # "between 1 and 5", "from 1 to 5", "3, 4": the last number closes a range or a
            # list, which is no integer (Math-Verify reads a number from it: 1 after a cue,
            # else the last). A computed "3 + 4 = 7 and 7 * 2 = 14" still ends in 14.
            return None
        return _value(toks[start:end]) if _stands_alone(toks, start, end) else None

    def verify(self, gold: str, text: str) -> bool | None:
        """Whether the extracted answer equals `gold` as an integer.

        Args:
            gold: the reference answer, e.g. "33", "033", "1,000" or "$33$".
            text: the model's output.

        Returns:
            True or False; None when `gold` is not an integer.
        """
        if not isinstance(gold, str):
            return None
        expected = _boxed_value(gold)
        if expected is None or "." in expected:
            return None
        return self.extract(text) == expected


def _has_number(toks: list[Token], start: int, end: int) -> bool:
    return any(t.kind in ("num", "badnum") for t in toks[start:end])


def _index_at(toks: list[Token], starts: list[int], position: int) -> int:
    """The index of the first token that is not a space at or after `position`."""
    index = bisect_left(starts, position)
    while index < len(toks) and toks[index].kind == "space":
        index += 1
    return index


def _boxed_value(content: str) -> str | None:
    """The integer a box (or a gold answer) holds: "x = 2^5" -> "32", "33 apples" -> "33",
    "60 km/h" -> "60"; None for "x = 5, y = 6", "3, 4", "3 or 4", "[1, 5]"."""
    if _TEXT_ANSWER.fullmatch(content):
        return None  # "\\text{3 apples}" is a text answer to Math-Verify ("\\text{33}" is 33)
    toks = tokens(_clean(content))
    if any(t.text in _RELATIONS for t in toks):
        return None
    if any(t.text in (",", ";") for t in toks):
        return None  # a list, a tuple or several equations (thousands separators are numerals)
    eqs = [i for i, t in enumerate(toks) if t.kind == "eq"]
    if eqs and not _names_a_value(toks[eqs[-2] + 1 if len(eqs) > 1 else 0 : eqs[-1]]):
        return None  # "a + 3z = 0" is an equation, not the value 0 (Math-Verify compares it whole)
    index = eqs[-1] + 1 if eqs else 0
    while index < len(toks) and toks[index].kind == "space":
        index += 1
    if index >= len(toks) or toks[index].kind not in ARITHMETIC:
        return None
    start, end = next(_runs(toks, index), (None, None))
    if start != index:
        return None  # "( x": a bracket opening no number
    rest = [t for t in toks[end:] if t.kind != "space"]
    if rest and not (rest[0].kind == "word" and toks[end].kind == "space"):
        return None  # "3x", "2 + x", "(1, 2)": not a single number; "33 apples" is fine
    if not _is_unit(rest):
        return None
    return _value(toks[start:end])


def _names_a_value(side: list[Token]) -> bool:
    """Whether the left side of a box's last "=" only names the value on its right: a variable
    ("x", "a_1", "f(2)", "\\zzz") or arithmetic ("2^5 = 32"). "a + 3z = 0" and "2x = 10" are
    equations whose right side is not their answer: Math-Verify compares them whole."""
    side = [t for t in side if t.kind != "space"]
    if all(t.kind in ARITHMETIC for t in side):
        return True
    return side[0].kind in ("word", "cmd") and not any(t.kind == "op" for t in side)


def _is_unit(rest: list[Token]) -> bool:
    """Whether the tokens after a number (spaces dropped) are a unit or words ("apples",
    "km/h", "m/s^2", "cm^{2}"), not more numbers ("3 or 4", "1 to 5")."""
    for i, tok in enumerate(rest):
        if tok.kind in ("word", "other") or (tok.kind == "op" and tok.text in _UNIT_OPS):
            continue
        if tok.kind in ("open", "close", "num") and i > 0 and rest[i - 1].text in ("^", "{"):
            continue  # an exponent of the unit
        if tok.kind == "close" and i > 1 and rest[i - 2].text == "{":
            continue
        return False
    return True

