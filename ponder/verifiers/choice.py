"""The multiple-choice verifier for GPQA-style answers (letters A-D): pure stdlib.

The answer is the letter in the last `\\boxed{}`, else the letter after the last "answer is" /
"Answer:" cue, else the last "(C)" or "**C**", else a reply that is just a letter. A lowercase
letter counts only when it is marked as a choice ("(c)", "**c**", "c." at the end), so the
article in "the answer is a value of 3" is not read as A.
"""

import re
from dataclasses import dataclass

from ponder.verifiers._text import CUE_MARKUP, answer_window, last_boxed

__all__ = ["ChoiceVerifier", "ChoiceVerifierConfig"]

# A choice letter at a given position, in the forms models write it.
_LETTER_AT = re.compile(
    r"(?:option|choice|letter)?\s*(?:"
    r"\(\s*(?P<paren>[A-Da-d])\s*\)"  # (C) or (c)
    r"|(?P<upper>[A-D])(?![A-Za-z])"  # C, C., C) but not "Apple"
    r"|(?P<lower>[a-d])(?=\s*\.?\s*$|[).:,*}$])"  # c at the very end, or c followed by markup
    r")"
)  # case-sensitive on purpose: an upper-case letter is a choice, a lower-case one may be prose
# A cue must say "is" or ":" so that "Answer A is wrong" or "Option B fails" in an explanation
# are not read as the choice.
_CUE = re.compile(r"(?:answer|option|choice)\s*(?:is\b|:|=)\s*:?\s*" + CUE_MARKUP, re.IGNORECASE)
_MARKED = re.compile(r"\(([A-D])\)|\*\*\s*\(?([A-D])\)?\s*\*\*")
_BOXED_LETTER = re.compile(r"\(?([A-Da-d])\)?(?![A-Za-z])")
_BOXED_NOISE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|bf)\b|[{}$\s]")
_BARE = re.compile(r"\W*([A-Da-d])\W*")
_GOLD = re.compile(r"\s*\(?([A-Da-d])\)?\.?\s*")


@dataclass(frozen=True)
class ChoiceVerifierConfig:
    """How much text the choice verifier reads."""

    max_chars: int = 8192
    """Most characters of the answer part that are searched (around the last box)."""


class ChoiceVerifier:
    """Verifies and extracts multiple-choice letters A-D.

    Args:
        config: how much text to read.

    Example:
        >>> ChoiceVerifier().extract("<think>...</think> The answer is (c).")
        'C'
    """

    name = "choice"

    def __init__(self, config: ChoiceVerifierConfig | None = None):
        self.config = config or ChoiceVerifierConfig()

    def extract(self, text: str) -> str | None:
        """The chosen letter, upper case ("C"), or None when no choice is found.

        Args:
            text: the model's output.
        """
        if not isinstance(text, str):
            return None
        window = answer_window(text, self.config.max_chars)
        boxed = last_boxed(window)
        if boxed is not None:
            match = _BOXED_LETTER.match(_BOXED_NOISE.sub("", boxed))
            return match.group(1).upper() if match else None
        for cue in reversed(list(_CUE.finditer(window))):
            match = _LETTER_AT.match(window, cue.end())
            if match:
                return next(g for g in match.groups() if g).upper()
        marked = None
        for marked in _MARKED.finditer(window):
            pass
        if marked:
            return (marked.group(1) or marked.group(2)).upper()
        bare = _BARE.fullmatch(window)
        return bare.group(1).upper() if bare else None

    def verify(self, gold: str, text: str) -> bool | None:
        """Whether the chosen letter is `gold`.

        Args:
            gold: the correct letter, "A" to "D" (any case, optionally in parentheses).
            text: the model's output.

        Returns:
            True or False; None when `gold` is not one of A-D.
        """
        match = _GOLD.fullmatch(gold) if isinstance(gold, str) else None
        if match is None:
            return None
        return self.extract(text) == match.group(1).upper()
