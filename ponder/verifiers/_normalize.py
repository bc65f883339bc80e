"""Rewrites of a model's answer text before Math-Verify reads it (stdlib only, linear time).

Each rewrite brings ponder to Math-Verify's and lighteval's own test tables where Math-Verify
0.9 (the version ponder runs) reads the text differently from what those tables expect:

- `drop_broken_inline_math`: inline math that opens at a line end and closes on a later line
  ("Answer $ \\n 9 \\n $") is no LaTeX to Math-Verify, whose tables call the 9 unread; ponder's
  plain-number fallback would otherwise read it. Display math (`$$`, `\\[`) may span lines.
- `strip_closing_punctuation`: sentence punctuation written inside the math delimiters
  ("$\\frac{1}{3}.$", "$2^{10}.$") is dropped, so the expression parses instead of the number
  fallback reading "2" out of "2^{10}."; an ellipsis ("1, 2, 3, ...") is kept.
- `rewrite_mixed_numbers`: "4 4/9" is the mixed number 40/9 (with a percent sign, 40/900), not
  the last number 4/9; one with a zero denominator or a numerator not below its denominator
  ("4 0/0", "11 7/6") is no number at all, so that none of its parts is read as the answer.
  Only a single space joins the parts ("11\\n5/6" is two numbers).
- `space_scripts`: digits glued to Chinese, Japanese, Korean, Arabic or Devanagari letters
  ("有99颗") are set apart, so Math-Verify's number pattern (which wants a word boundary) finds
  them, as lighteval's multilingual tables expect.
- `\\mathrm{e}` is Euler's number, written plainly so latex2sympy reads it as such.
"""

import re

__all__ = [
    "drop_broken_inline_math",
    "normalize_answer",
    "rewrite_mixed_numbers",
    "space_scripts",
    "strip_closing_punctuation",
]

# A single `$` (not `\$`, not `$$`) followed by a line break, up to a line break and a single `$`;
# the same for `\( ... \)`. A currency sign ("$5") is never followed by a line break.
_BROKEN_INLINE = re.compile(
    r"(?<![\\$])\$[ \t]*\r?\n[^$]{0,4000}?\n[ \t]*\$(?!\$)|\\\([ \t]*\r?\n.{0,4000}?\n[ \t]*\\\)",
    re.DOTALL,
)
_DELIMITER = re.compile(r"\\\$|\$\$|\$|\\\[|\\\]|\\\(|\\\)")
_CLOSER = {"$": "$", "$$": "$$", "\\[": "\\]", "\\(": "\\)"}
# [+]whole (digits, or digits in spaced thousands), one space, numerator/denominator; not part of
# a longer number, fraction, decimal or name ("11/10 4/9", "11.0 4/9", "x2 1/2").
_MIXED = re.compile(
    r"(?<![\w.,/\\^_{}])\+?(\d{1,3}(?: \d{3})+|\d+) (\d+)/(\d+)"
    r"(?:[ ]?(percentage|percent|pct|%)|(?![\w/]|[.,]\d))"
)
_SCRIPTS = (
    "\u0600-\u06ff\u0900-\u097f\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uff00-\uffef"
)
_GLUED_DIGIT = re.compile(rf"(?<=[{_SCRIPTS}])(?=[0-9])|(?<=[0-9])(?=[{_SCRIPTS}])")
_MATHRM_E = re.compile(r"\\mathrm\s*\{\s*e\s*\}")


def drop_broken_inline_math(text: str) -> str:
    """`text` with inline math that breaks across lines removed (see the module docstring)."""
    return _BROKEN_INLINE.sub(" ", text)


def _without_final_punctuation(content: str) -> str:
    body = content.rstrip()
    if body[-1:] not in (".", ","):
        return content
    core = body[:-1].rstrip()
    # "1, 2, 3, ..." is an ellipsis and "\," a LaTeX space: both stay as written
    if not core or core[-1] in ".\\" or core.endswith(("\\dots", "\\ldots", "\\cdots")):
        return content
    return core


def strip_closing_punctuation(text: str) -> str:
    """`text` with a full stop or comma just inside a closing math delimiter removed.

    Delimiters are paired left to right, as Math-Verify pairs them; `\\$` is a dollar sign.
    """
    out: list[str] = []
    done = 0
    opener = None
    content_start = 0
    for match in _DELIMITER.finditer(text):
        token = match.group()
        if token == "\\$":
            continue
        if opener is None:
            if token in _CLOSER:
                opener, content_start = token, match.end()
            continue
        if token != _CLOSER[opener]:
            continue
        content = text[content_start : match.start()]
        trimmed = _without_final_punctuation(content)
        if trimmed != content:
            out.append(text[done:content_start])
            out.append(trimmed)
            done = match.start()
        opener = None
    out.append(text[done:])
    return "".join(out)


def _mixed_value(match: re.Match) -> str:
    if len(match.group(0)) > 40:
        return match.group(0)  # no int() of a megabyte of digits; no one writes such a number
    whole = int(match.group(1).replace(" ", ""))
    numerator, denominator = int(match.group(2)), int(match.group(3))
    if denominator == 0 or numerator >= denominator:
        return " "  # "4 0/0", "11 7/6": not a number; none of its parts is the answer
    scale = 100 if match.group(4) else 1
    return f"{whole * denominator + numerator}/{denominator * scale}"


def rewrite_mixed_numbers(text: str) -> str:
    """`text` with each mixed number ("4 4/9") written as one improper fraction ("40/9")."""
    if "/" not in text:
        return text
    return _MIXED.sub(_mixed_value, text)


def space_scripts(text: str) -> str:
    """`text` with a space between ASCII digits and a glued non-Latin letter ("有 99 颗")."""
    return _GLUED_DIGIT.sub(" ", text)


def normalize_answer(text: str) -> str:
    """All the rewrites above, in an order where none undoes another."""
    text = text.replace("\r\n", "\n")  # Windows line ends read as Unix ones
    text = drop_broken_inline_math(text)
    text = strip_closing_punctuation(text)
    text = rewrite_mixed_numbers(text)
    text = space_scripts(text)
    return _MATHRM_E.sub("e", text)
