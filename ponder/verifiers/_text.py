"""Where the answer is in a reasoning model's output: shared by all verifiers (stdlib only).

Every function here is linear in its input (or bounded by a constant number of passes), so a
megabyte of hostile text costs milliseconds before any parser sees it.
"""

import re

__all__ = [
    "ANSWER_CUE",
    "CUE_MARKUP",
    "FINAL_ANSWER",
    "answer_region",
    "answer_window",
    "expand_plus_minus",
    "final_boxes",
    "gold_readings",
    "last_boxed",
    "last_boxed_span",
]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOXED = "\\boxed"
# How many \boxed occurrences to try from the end: each try scans to the end of the text, so
# this bounds the work on text full of unterminated boxes.
_MAX_BOXED_TRIES = 4
# "answer is", "Answer:", "final answer is", "The correct answer is" ... followed by optional
# markup; the value follows the match.
# Markup a model may put between the cue and the value: **C**, $33$, \(33\), \text{C}, "C".
CUE_MARKUP = r"(?:\*\*|\$|\\\(|\\\[|\\text(?:bf)?\{|[\"'“‘]|\s)*"
# Math-Verify's top-priority statement ("The final answer is $X$. I hope it is correct."): it
# outranks a box written before it.
FINAL_ANSWER = re.compile(r"final answer is.{0,300}?I hope", re.IGNORECASE | re.DOTALL)
ANSWER_CUE = re.compile(r"answer\s*(?:is|:|=)?\s*(?:is\s*)?[:=]?\s*" + CUE_MARKUP, re.IGNORECASE)


def answer_region(text: str) -> str:
    """The part of `text` that holds the final answer.

    Args:
        text: the model's output, possibly with `<think> ... </think>` first.

    Returns:
        The text after the last `</think>`; "" when a `<think>` was opened and never closed
        (the model was cut off while thinking, so it gave no answer); else all of `text`.
    """
    _, closed, tail = text.rpartition(THINK_CLOSE)
    if closed:
        return tail
    return "" if THINK_OPEN in text else text


def answer_window(text: str, max_chars: int) -> str:
    """`answer_region(text)` cut to at most `max_chars` characters around the final answer.

    Args:
        text: the model's output.
        max_chars: the most characters to keep.

    Returns:
        The whole region when short enough; else a window that starts a little before the last
        `\\boxed` (when there is one), or the region's tail.
    """
    region = answer_region(text)
    if len(region) <= max_chars:
        return region
    start = region.rfind(BOXED)
    if start < 0:
        return region[-max_chars:]
    # A little context before the box keeps cues like "answer is $\boxed{...}$" intact.
    start = max(0, start - min(256, max_chars // 8))
    return region[start : start + max_chars]


def _braced(text: str, open_at: int) -> str | None:
    """The content of the brace group opening at `open_at`, or None if it never closes."""
    depth, i, n = 0, open_at, len(text)
    while i < n:
        char = text[i]
        if char == "\\":  # an escaped brace like \{ does not count
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last balanced `\\boxed{...}` in `text`.

    Args:
        text: any text.

    Returns:
        The content between the braces, or None when there is no complete box. An unterminated
        last box falls back to the box before it.
    """
    span = last_boxed_span(text)
    return None if span is None else span[0]


def last_boxed_span(text: str) -> tuple[str, int, int] | None:
    """Like `last_boxed`, with where the box starts (its backslash) and ends (after its brace).

    Returns:
        (content, start, end), or None when there is no complete box.
    """
    end = len(text)
    for _ in range(_MAX_BOXED_TRIES):
        start = text.rfind(BOXED, 0, end)
        if start < 0:
            return None
        brace = start + len(BOXED)
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace < len(text) and text[brace] == "{":
            content = _braced(text, brace)
            if content is not None:
                return content, start, brace + len(content) + 2
        end = start
    return None


# --- the final group of boxes (math) ------------------------------------------------------

# Most boxes read as one final answer: "\boxed{1}, \boxed{2} and \boxed{3}" is {1, 2, 3}.
_MAX_GROUP = 8
# Math-Verify's rule for boxes that belong together (latex2sympy2_extended's
# extract_boxed_content): a gap under 10 characters, or under 70 with a separator in it.
_CLOSE_GAP, _FAR_GAP = 10, 70
_SEPARATOR = re.compile(r"\b(?:and|or)\b|[,;]")
# Where ponder deliberately differs from Math-Verify: a gap that corrects or restates the final
# answer ("\boxed{4} wait, actually \boxed{3}", "\boxed{5}, so the answer is \boxed{6}") ends
# the group, so the later box alone is the answer (Math-Verify would join them into {3, 4}).
# A bare "so", "hence" or "thus" does not: "\boxed{1}, so the other root is \boxed{2}" lists
# two roots, as Math-Verify reads it.
_CORRECTION = re.compile(
    r"\b(?:wait|actually|no|nope|not|instead|rather|but|however|hmm+|oops|sorry|mistake|wrong"
    r"|incorrect|correct(?:ion|ed)?|re-?check|double-check|reconsider|final|answer)\b",
    re.IGNORECASE,
)


def _box_at(text: str, start: int, limit: int) -> tuple[str, int] | None:
    """The content and closing-brace index of the box whose `\\boxed` starts at `start`, if it
    closes before `limit`."""
    brace = start + len(BOXED)
    while brace < limit and text[brace] == " ":
        brace += 1
    if brace >= limit or text[brace] != "{":
        return None
    content = _braced(text[:limit], brace)
    return None if content is None else (content, brace + 1 + len(content))


def _joins(gap: str, left: str, right: str) -> bool:
    """Whether two boxes separated by `gap` are parts of one answer."""
    if _CORRECTION.search(gap):
        return False
    if len(gap) < _CLOSE_GAP:
        return True
    return len(gap) < _FAR_GAP and left != right and bool(_SEPARATOR.search(gap))


def final_boxes(text: str) -> list[str]:
    """The contents of the boxes that together form the final answer, left to right.

    The last complete box, plus the boxes just before it that Math-Verify would join to it
    (see `_joins`), except across a self-correction: "\\boxed{4} wait, actually \\boxed{3}"
    is ["3"], while "\\boxed{1}, \\boxed{2} and \\boxed{3}" is ["1", "2", "3"]. Repeated
    neighbours count once. At most 8 boxes.

    Args:
        text: any text (the answer window).

    Returns:
        The box contents, or [] when there is no complete box.
    """
    span = last_boxed_span(text)
    if span is None:
        return []
    last, start, _ = span
    group = [last]
    while len(group) < _MAX_GROUP:
        before = text.rfind(BOXED, 0, start)
        if before < 0:
            break
        found = _box_at(text, before, start)
        if found is None:
            break
        content, close = found
        if not _joins(text[close + 1 : start], content, group[0]):
            break
        if content != group[0]:
            group.insert(0, content)
        start = before
    return group


# --- reference answers (math) ---------------------------------------------------------------

# "1,22" or "0,5": a comma that is not a thousands separator (those have exactly 3 digits after
# a 1-3 digit lead, as in "12,000,023", which Math-Verify already reads as one number).
_ONE_COMMA = re.compile(r"\s*-?(\d+),(\d+)\s*")
_THOUSANDS_LEAD = re.compile(r"[1-9]\d{0,2}")
_PLUS_MINUS = re.compile(r"\\(?:pm|mp)(?![A-Za-z])")
_MATH_DELIMITERS = re.compile(r"\s*(\$\$?|\\\(|\\\[)(.*?)(\$\$?|\\\)|\\\])\s*", re.DOTALL)
_MAX_ITEMS = 32


def _top_level_split(text: str) -> list[str]:
    """`text` split at commas and semicolons outside any bracket."""
    items, depth, begin = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char in ",;" and depth == 0 and text[i - 1 : i] != "\\":
            items.append(text[begin:i])
            begin = i + 1
    items.append(text[begin:])
    return items


def expand_plus_minus(latex: str) -> str:
    """Rewrite each comma-separated item holding `\\pm` (or `\\mp`) as its two sign variants.

    latex2sympy parses `2 \\pm \\sqrt{3}` but not `\\frac{-1 \\pm \\sqrt{13}}{4}` or an equation
    list with a `\\pm` in it; written out, both parse: "x = 1, x = 2 \\pm 3" becomes
    "x = 1, x = 2 + 3, x = 2 - 3". Within one item every `\\pm` takes the same sign and every
    `\\mp` the other (the usual convention).

    Args:
        latex: a reference or boxed answer, without `$` delimiters.

    Returns:
        The rewritten text; `latex` itself when it has no `\\pm`/`\\mp` or too many items.
    """
    if not _PLUS_MINUS.search(latex):
        return latex
    items = _top_level_split(latex)
    if len(items) > _MAX_ITEMS:
        return latex
    out = []
    for item in items:
        if not _PLUS_MINUS.search(item):
            out.append(item.strip())
            continue
        for sign, other in (("+", "-"), ("-", "+")):
            variant = _PLUS_MINUS.sub(lambda m: sign if m.group() == "\\pm" else other, item)
            out.append(variant.strip())
    return ", ".join(out)


def gold_readings(gold: str) -> list[str]:
    """The ways a reference answer can be read; an answer matching any of them is right.

    - "1,22" (a decimal comma, as Math-Verify reads a bare number) is both 1.22 and the pair
      {1, 22}, which is what the same text means in a boxed answer list.
    - a `\\pm` / `\\mp` is written out (see `expand_plus_minus`); `$...$` around it is dropped.
    - anything else is read as it is.

    Args:
        gold: the reference answer.

    Returns:
        One or two readings, most literal first.
    """
    pair = _ONE_COMMA.fullmatch(gold)
    if pair and not (_THOUSANDS_LEAD.fullmatch(pair.group(1)) and len(pair.group(2)) == 3):
        return [gold.strip().replace(",", "."), gold]
    if _PLUS_MINUS.search(gold):
        delimited = _MATH_DELIMITERS.fullmatch(gold)
        inner = delimited.group(2) if delimited and "$" not in delimited.group(2) else gold
        if "$" not in inner:
            return [expand_plus_minus(inner)]
    return [gold]
