"""The integer verifier for AIME-style answers (integers 0-999): pure stdlib, no sympy.

The answer is the number in the last `\\boxed{}`, else the number after the last "answer is" /
"Answer:" / "Final Answer:", else the last number in the answer part. Numbers are compared as
canonical digit strings ("033" -> "33", "33.0" -> "33"), never through `int()`, so a megabyte
of digits costs a linear scan and not Python's quadratic (and 4300-digit-limited) conversion.
"""

import re
from dataclasses import dataclass

from ponder.verifiers._text import ANSWER_CUE, answer_window, last_boxed

__all__ = ["IntegerVerifier", "IntegerVerifierConfig", "canonical_number"]

# A number not glued to a word or another number; the sign only when it stands alone
# ("x-3" is not -3).
_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?<![\w.])\d+(?:\.\d+)?(?![\w])")
_GOLD = re.compile(r"\s*\$?\s*([+-]?\d+(?:\.0+)?)\s*\$?\s*")
# Markup around a boxed number that carries no meaning: \text{33}, \mathbf{33}, 33^\circ.
_BOXED_NOISE = re.compile(r"\\(?:text|textbf|mathbf|mathrm|bf)\b|\^\s*\{?\\circ\}?|[{}$]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


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


class IntegerVerifier:
    r"""Verifies and extracts integer answers.

    Args:
        config: how much text to read.

    Example:
        >>> IntegerVerifier().extract(r"<think>...</think> The answer is $\boxed{033}$.")
        '33'
    """

    name = "integer"

    def __init__(self, config: IntegerVerifierConfig | None = None):
        self.config = config or IntegerVerifierConfig()

    def extract(self, text: str) -> str | None:
        """The final answer as a canonical numeral ("33"), or None when there is none.

        A last box without a number gives None rather than some other number in the text.

        Args:
            text: the model's output.
        """
        if not isinstance(text, str):
            return None
        window = answer_window(text, self.config.max_chars)
        boxed = last_boxed(window)
        if boxed is not None:
            return _last_number(_BOXED_NOISE.sub(" ", _THOUSANDS.sub("", boxed)))
        # From the last cue back: "answered" and "answer sheet" are cues that lead nowhere.
        for cue in reversed(list(ANSWER_CUE.finditer(window))):
            match = _NUMBER.match(window, cue.end())
            if match:
                return canonical_number(match.group())
        return _last_number(window)

    def verify(self, gold: str, text: str) -> bool | None:
        """Whether the extracted answer equals `gold` as an integer.

        Args:
            gold: the reference answer, e.g. "33" or "033".
            text: the model's output.

        Returns:
            True or False; None when `gold` is not an integer.
        """
        match = _GOLD.fullmatch(gold) if isinstance(gold, str) else None
        if match is None:
            return None
        return self.extract(text) == canonical_number(match.group(1))


def _last_number(text: str) -> str | None:
    last = None
    for last in _NUMBER.finditer(text):
        pass
    return canonical_number(last.group()) if last else None
