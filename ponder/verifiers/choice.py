"""The multiple-choice verifier for GPQA-style answers (letters A-D): pure stdlib.

The answer is, in this order:

1. the letter in the last `\\boxed{}`;
2. the letter after the last answer cue: "answer is", "Answer:", "answer would be", "The correct
   option is", "réponse est", with markup ("**C**", "$C$", `Answer: "C"`) and a few words between ("The answer
   is for sure D"), as long as none of them negates ("The answer is not A");
3. the last "(C)" or "**C**";
4. a letter that opens the reply as a choice: "D. it can't be A or B", "(B) because ...",
   "B。不是 A";
   else one that opens its last line: "...\nC. the third option";
5. the last letter named by a choosing phrase: "therefore I think it's B", "I'd go with C",
   "it is clearly option D", "B is correct", or a concluding word with the letter ending the
   line ("hence C");
6. a reply that is just a letter.

Upper-case letters are choices. A lower-case letter counts only right after a cue and marked
as a choice ("answer is (c)", "Answer: c" at the end), so the article in "the answer is a value
of 3" or "I think a ..." is never read as A.

Where this differs from lighteval's letter extraction (the reference for GPQA), on purpose (each
case is marked in tests/fixtures/verifier_tables/lighteval_choice.jsonl):
- `Answer: c`, `Answer: "C"`, a reply "a" and a gold "c" are read as C (lighteval reads only
  capitals, unquoted);
- the letter right after a cue counts before a line break too ("Answer: A\n\nExplanation: ...
  B ..." is A; lighteval's suffix rule skips it and reads the later B);
- a capital letter in the prose is not an answer unless a cue, a marker, the reply's start or
  last line (as a choice: "C.", "(C)") or a choosing phrase makes it one: "A fails the check, so
  I pick B" is B and "So A is wrong." is none, where lighteval takes a letter opening the reply
  ("A fails") or, as a last resort, the last free-standing capital A-D.
"""

import re
from dataclasses import dataclass

from ponder.verifiers._text import CUE_MARKUP, answer_region, answer_window, last_boxed

__all__ = ["ChoiceVerifier", "ChoiceVerifierConfig"]

# A choice letter at a given position, in the forms models write it.
_LETTER_AT = re.compile(
    r"(?:option|choice|letter)?\s*(?:"
    r"\(\s*(?P<paren>[A-Da-d])\s*\)"  # (C) or (c)
    r"|(?P<upper>[A-D])(?![A-Za-z])"  # C, C., C) but not "Apple"
    # c at the very end, or c followed by markup
    r"|(?P<lower>[a-d])(?=\s*\.?\s*$|[).:,*}$\"'”’])"
    r")"
)  # case-sensitive on purpose: an upper-case letter is a choice, a lower-case one may be prose
# Up to three plain words between a cue and the letter ("for sure", "definitely option"),
# none of them a negation: "The answer is not A" must not read as A.
_FILLER = re.compile(
    r"(?:(?!(?:not|never|no|neither|nor|isn't|cannot|can't)\b)(?:[a-z]+|I),?\s+){1,3}?"
    r"(?:\(\s*(?P<paren>[A-D])\s*\)|\*\*(?P<bold>[A-D])\*\*|(?P<upper>[A-D]))(?![A-Za-z'’])"
)
# A cue must say "is", "be" or ":" so that "Answer A is wrong" or "Option B fails" in an
# explanation are not read as the choice.
_CUE = re.compile(
    r"(?:answer|option|choice|r[ée]ponse)\s*"  # "réponse est C": lighteval's French cue
    r"(?:is\b|est\b|(?:would|should|must|will)\s+be\b|:|=|[-–—](?=\s))\s*:?\s*"
    + CUE_MARKUP,
    re.IGNORECASE,
)
_MARKED = re.compile(r"\(([A-D])\)|\*\*\s*\(?([A-D])\)?\s*\*\*")
# "D. it can't be A or B", "**(B)** because", "C: ...": a letter opening the reply as a choice.
# A CJK full stop or a CJK word right after the letter ends it too: "B。不是 A", "B不是 A".
_LEADING = re.compile(
    r"\s*(?:\*\*)?\(?([A-D])(?:\)|\.|:|。|\*\*|\s*$|(?=[\u3000-\u9fff]))(?![A-Za-z])"
)
# "it's B", "I'd go with C", "it is clearly option D", "I choose (A)", "... hence C.", "B is
# correct": the last letter named by a choosing phrase; after "hence", "thus", "therefore" or
# "so" only when the letter ends the line ("so A is wrong" names no choice).
_CHOSEN = re.compile(
    r"(?:(?i:\bit's|\bit\s+is|\bwould\s+be|\bshould\s+be|\bmust\s+be|\bchoose|\bpick|\bselect"
    r"|\bgo\s+with|\bgoing\s+with|\bwould\s+say|\bI'd\s+say)\s+(?:(?i:[a-z]+ly)\s+)?"
    r"(?:(?i:option|choice)\s+)?(?:\*\*)?\(?([A-D])\)?(?![\w'’-])"
    r"|(?i:\bhence|\bthus|\btherefore|\bso),?\s+(?:(?i:option|choice)\s+)?(?:\*\*)?\(?([A-D])\)?"
    r"(?:\*\*)?(?=[ \t]*[.!]?[ \t]*(?:\n|$))"
    r"|(?<![\w'’-])\(?([A-D])\)?\s+(?i:is\s+(?:the\s+)?(?:correct|right|best)\b))"
)  # only the phrases ignore case: "it is a hard one" names no choice
# "...\nC. the third option": a letter opening the last line as a choice (lighteval reads a
# letter at any line start; the last line is where a reply that ends in a choice puts it).
_LAST_LINE = re.compile(r"[ \t]*(?:\*\*)?\(?([A-D])(?:\)|\.|:|\*\*)(?![A-Za-z])")
_BOXED_LETTER = re.compile(r"\(?([A-Da-d])\)?(?![A-Za-z])")
_BOXED_NOISE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|bf)\b|[{}$\s]")
_BARE = re.compile(r"\W*([A-Da-d])\W*")
_GOLD = re.compile(r"\s*\(?([A-Da-d])\)?\.?\s*")
# A gold label followed by its option text: "(D) Alina", "C Cecile", "A Peter\n...".
_GOLD_LABELLED = re.compile(r"\s*\(?([A-D])(?:[.):]|\s)")


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
        >>> ChoiceVerifier().extract("It is not A, so therefore I think it's B")
        'B'
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
        letter = _after_cue(window) or _last_marked(window)
        if letter is None:
            leading = _LEADING.match(answer_region(text))  # anchored: cheap on any length
            letter = leading.group(1) if leading else None
        if letter is None:
            last_line = window.rstrip().rpartition("\n")[2]
            leading = _LAST_LINE.match(last_line)
            letter = leading.group(1) if leading else None
        if letter is None:
            chosen = None
            for chosen in _CHOSEN.finditer(window):
                pass
            letter = next(g for g in chosen.groups() if g) if chosen else None
        if letter is None:
            bare = _BARE.fullmatch(window)
            letter = bare.group(1) if bare else None
        return letter.upper() if letter else None

    def verify(self, gold: str, text: str) -> bool | None:
        """Whether the chosen letter is `gold`.

        Args:
            gold: the correct letter, "A" to "D" (any case, optionally in parentheses), or a
                label with its option text ("(D) Alina", "C Cecile").
            text: the model's output.

        Returns:
            True or False; None when `gold` names none of A-D.
        """
        if not isinstance(gold, str):
            return None
        match = _GOLD.fullmatch(gold) or _GOLD_LABELLED.match(gold)
        letter = match.group(1).upper() if match else self.extract(gold)
        if letter is None:
            return None
        return self.extract(text) == letter


def _after_cue(window: str) -> str | None:
    """The letter after the last answer cue that is followed by one."""
    for cue in reversed(list(_CUE.finditer(window))):
        match = _LETTER_AT.match(window, cue.end())
        if match:
            return next(g for g in match.groups() if g)
        match = _FILLER.match(window, cue.end())
        if match:
            return next(g for g in match.groups() if g)
    return None


def _last_marked(window: str) -> str | None:
    marked = None
    for marked in _MARKED.finditer(window):
        pass
    return (marked.group(1) or marked.group(2)) if marked else None
