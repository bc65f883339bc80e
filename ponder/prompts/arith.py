"""The embedded tiny reasoner's input format, and a normaliser that brings sums into it.

The tiny reasoner was trained only on prompts like ``Compute 110+057+004``: 2-4 terms of 1-3
digits, each zero-padded to three digits, so that every digit of a column sits at a fixed offset
(``ponder.benchmarks.arith`` makes them; these numbers mirror it, since prompts may not import
benchmarks). Unpadded operands put digits in the wrong columns: ``Compute 12+34`` gave eight
different answers over eight seeds, ``Compute 012+034`` gives 46. `format_sum` rewrites a
recognisable sum into the trained format and says, in one line, when a prompt is outside it.

    from ponder.prompts.arith import format_sum
    format_sum("Compute 12 + 34")    # ('Compute 012+034', None)
    format_sum("Compute 4721+389")   # ('Compute 4721+389', 'outside the tiny reasoner's format: ...')
"""

from __future__ import annotations

import re

__all__ = ["format_sum", "MAX_DIGITS", "MIN_TERMS", "MAX_TERMS", "EXAMPLE"]

MAX_DIGITS = 3
"""Most digits of one term (terms are zero-padded to this width)."""
MIN_TERMS, MAX_TERMS = 2, 4
"""How many terms a trained sum has."""
EXAMPLE = "Compute 012+034"
"""A prompt in the trained format."""

_SUM = re.compile(r"^\s*(?:(?:compute|calculate|evaluate|what\s+is|what's)\s*:?\s*)?"
                  r"(\d+(?:\s*\+\s*\d+)+)\s*[=?.]?\s*$", re.IGNORECASE)


def format_sum(prompt: str) -> tuple[str, str | None]:
    """``(prompt in the trained format, None)``, or ``(prompt unchanged, one-line warning)``.

    Recognised: an optional lead word (compute, calculate, evaluate, what is), then terms joined
    by ``+`` with any spaces, then an optional ``=``, ``?`` or ``.``. Warned: no such sum, more than
    4 terms, or a term over 3 digits -- the model would answer, but not reliably.
    """
    match = _SUM.match(prompt)
    if match is None:
        return prompt, (f"outside the tiny reasoner's format: it only answers sums of {MIN_TERMS}-{MAX_TERMS} "
                        f"terms of 1-{MAX_DIGITS} digits like {EXAMPLE!r}; its answer will likely be wrong")
    terms = [int(t) for t in re.split(r"\s*\+\s*", match.group(1))]
    if len(terms) > MAX_TERMS:
        return prompt, (f"outside the tiny reasoner's format: {len(terms)} terms, it was trained on "
                        f"{MIN_TERMS}-{MAX_TERMS} (like {EXAMPLE!r}); its answer will likely be wrong")
    big = [t for t in terms if t >= 10**MAX_DIGITS]
    if big:
        return prompt, (f"outside the tiny reasoner's format: {big[0]} has {len(str(big[0]))} digits, it was "
                        f"trained on terms of 1-{MAX_DIGITS} digits (like {EXAMPLE!r}); its answer will likely "
                        f"be wrong")
    return "Compute " + "+".join(f"{t:0{MAX_DIGITS}d}" for t in terms), None
