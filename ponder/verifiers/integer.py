"""The integer verifier for AIME- and GSM8K-style answers: pure stdlib, no sympy.

The answer is the expression in the last `\\boxed{}` (unless Math-Verify's top-priority "The final
answer is $X$. I hope it is correct." follows it), else the one after the last "answer is" /
"Answer:" / "Final Answer:", else the last number (with the arithmetic around it) in the answer
part. It is computed exactly (`_arith`): `\\boxed{2^5}` is 32, `\\boxed{1{,}033}` is 1033 and
"12,000,023" is one number, while an expression that is not an integer (`\\sqrt 2`,
`\\frac{1+\\sqrt5}{2}`) is no integer answer at all, never the last number inside it.

Where this differs from Math-Verify's reading of the same text, on purpose:
- a number glued to a letter ("3x", "5th", "x2") or continued by an operator and a letter
  ("x + 1") is part of something else, not an integer answer;
- a comma between digits that is not a thousands separator ("1,22", "1,2,3") makes a decimal or
  a list, which is never an integer;
- numbers are read in any markup (`$`, `\\(`, bold), with or without a cue.

Plain numerals are compared as canonical digit strings ("033" -> "33", "33.0" -> "33"), never
through `int()`, so a megabyte of digits costs a linear scan.
"""

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from ponder.verifiers._arith import ARITHMETIC, NotArithmetic, Token, evaluate, tokens
from ponder.verifiers._text import ANSWER_CUE, FINAL_ANSWER, answer_window, last_boxed_span

__all__ = ["IntegerVerifier", "IntegerVerifierConfig", "canonical_number"]

# Markup that carries no meaning for a number: \text{...} keeps its content, the rest goes.
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|bf)\s*\{([^{}]*)\}")
_NOISE = re.compile(
    r"\^\s*\{?\\circ\}?|\\%|%|\\\$|\$|\\\(|\\\)|\\\[|\\\]|\*\*|\\(?:text|textbf|mathrm|mathbf|bf)\b"
)
_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SIGNS = ("+", "-", "−")


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
    text = "".join(t.text for t in run if t.kind != "space").replace("−", "-")
    if _PLAIN.fullmatch(text):  # no int(): a megabyte of digits stays a string operation
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
            while toks[end - 1].kind == "space":
                end -= 1
            yield start, end
            start = None


def _stands_alone(toks: list[Token], start: int, end: int) -> bool:
    """Whether the run toks[start:end] is a whole answer rather than part of something else:
    not glued to a word ("3x", "x2", "5th"), not continuing one ("x + 1", "x-1", "3 + x")."""
    before = toks[start - 1] if start > 0 else None
    after = toks[end] if end < len(toks) else None
    if any(t is not None and t.kind == "word" for t in (before, after)):
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
        window = answer_window(text, self.config.max_chars)
        boxed = last_boxed_span(window)
        if boxed is not None and not FINAL_ANSWER.search(window, boxed[2]):
            return _boxed_value(boxed[0])
        window = _clean(window)
        toks = tokens(window)
        starts = [t.start for t in toks]
        # From the last cue back: "answered" and "answer sheet" are cues that lead nowhere.
        for cue in reversed(list(ANSWER_CUE.finditer(window))):
            index = _index_at(toks, starts, cue.end())
            if index < len(toks) and toks[index].kind in ARITHMETIC - {"close"}:
                return _answer_after(toks, index)
        runs = list(_runs(toks))
        if not runs:
            return None
        start, end = runs[-1]
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


def _index_at(toks: list[Token], starts: list[int], position: int) -> int:
    """The index of the first token that is not a space at or after `position`."""
    index = bisect_left(starts, position)
    while index < len(toks) and toks[index].kind == "space":
        index += 1
    return index


def _boxed_value(content: str) -> str | None:
    """The integer a box (or a gold answer) holds: "x = 2^5" -> "32", "33 apples" -> "33"."""
    toks = tokens(_clean(content))
    eqs = [i for i, t in enumerate(toks) if t.kind == "eq"]
    index = eqs[-1] + 1 if eqs else 0
    while index < len(toks) and toks[index].kind == "space":
        index += 1
    if index >= len(toks) or toks[index].kind not in ARITHMETIC:
        return None
    start, end = next(_runs(toks, index))
    rest = [t for t in toks[end:] if t.kind != "space"]
    if rest and not (rest[0].kind == "word" and toks[end].kind == "space"):
        return None  # "3x", "2 + x", "(1, 2)": not a single number; "33 apples" is fine
    if any(t.kind not in ("word", "other") for t in rest):
        return None
    return _value(toks[start:end])

