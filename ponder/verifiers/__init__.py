"""Verifiers: find a model's final answer and check it against the reference.

    from ponder.verifiers import get_verifier
    v = get_verifier("math")          # or "integer" (AIME), "choice" (GPQA)
    v.extract(text)                   # canonical answer string for voting, or None
    v.verify(gold, text)              # True / False; None only when gold cannot be parsed

To check them on your own judged completions: `python -m ponder.verifiers FILE.jsonl` (see
`ponder.verifiers.audit`).

A verdict is only ever about the answer: when the verifier's own machinery fails (a math worker
dies or runs out of memory and retries do not help) the call raises `VerifierError`.

Importing this package loads only the standard library: the math verifier runs sympy and
Math-Verify in worker processes, started on first use.
"""

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ponder.verifiers.choice import ChoiceVerifier, ChoiceVerifierConfig
from ponder.verifiers.integer import IntegerVerifier, IntegerVerifierConfig
from ponder.verifiers.judge import judge
from ponder.verifiers.math_answers import (
    MathVerifier,
    MathVerifierConfig,
    VerifierError,
    WorkerStartError,
)

__all__ = [
    "REGISTRY",
    "AuditInputError",
    "AuditReport",
    "ChoiceVerifier",
    "ChoiceVerifierConfig",
    "IntegerVerifier",
    "IntegerVerifierConfig",
    "MathVerifier",
    "MathVerifierConfig",
    "Verifier",
    "VerifierError",
    "WorkerStartError",
    "audit",
    "format_report",
    "get_verifier",
    "judge",
    "warm",
]


@runtime_checkable
class Verifier(Protocol):
    """What controllers, eval and RL rewards need from a verifier."""

    name: str
    """The registry name: "math", "integer" or "choice"."""

    def extract(self, text: str) -> str | None:
        """The final answer in `text` as a canonical, hashable string for voting; None if absent."""
        ...

    def verify(self, gold: str, text: str) -> bool | None:
        """Whether `text` answers `gold`; None only when `gold` itself cannot be parsed."""
        ...


REGISTRY: dict[str, Callable[[], Verifier]] = {
    "math": MathVerifier,
    "integer": IntegerVerifier,
    "choice": ChoiceVerifier,
}
"""Verifier factories by name; each returns a verifier with its default config."""

_instances: dict[str, Verifier] = {}
_instances_lock = threading.Lock()


def get_verifier(name: str) -> Verifier:
    """The shared verifier registered as `name` (one instance per name, so one worker pool).

    Args:
        name: "math", "integer" or "choice".

    Returns:
        The verifier, built by its REGISTRY factory on first use.

    Raises:
        ValueError: when `name` is not registered.
    """
    if name not in REGISTRY:
        allowed = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown verifier {name!r}; allowed: {allowed}")
    with _instances_lock:
        if name not in _instances:
            _instances[name] = REGISTRY[name]()
        return _instances[name]


def warm(verifier: Verifier | str | None) -> None:
    """Start a verifier's workers in the background, if it has any (math does; the others need
    nothing). Call it before the first answer is judged: controllers do when they start, the CLI
    while the engine loads."""
    if isinstance(verifier, str):
        verifier = get_verifier(verifier)
    start = getattr(verifier, "warm", None)
    if start is not None:
        start()


# Last: audit uses get_verifier and REGISTRY from this module.
from ponder.verifiers.audit import AuditInputError, AuditReport, audit, format_report  # noqa: E402
