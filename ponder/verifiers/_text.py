"""Where the answer is in a reasoning model's output: shared by all verifiers (stdlib only).

Every function here is linear in its input (or bounded by a constant number of passes), so a
megabyte of hostile text costs milliseconds before any parser sees it.
"""

import re

__all__ = ["ANSWER_CUE", "CUE_MARKUP", "answer_region", "answer_window", "last_boxed"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
BOXED = "\\boxed"
# How many \boxed occurrences to try from the end: each try scans to the end of the text, so
# this bounds the work on text full of unterminated boxes.
_MAX_BOXED_TRIES = 4
# "answer is", "Answer:", "final answer is", "The correct answer is" ... followed by optional
# markup; the value follows the match.
# Markup a model may put between the cue and the value: **C**, $33$, \(33\), \text{C}.
CUE_MARKUP = r"(?:\*\*|\$|\\\(|\\\[|\\text(?:bf)?\{|\s)*"
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
                return content
        end = start
    return None
