"""The server's settings: defaults for requests that name no controller, limits, the API key, and
the table that turns ``reasoning_effort`` into a thinking budget.

    from ponder.serve.config import ServeConfig
    cfg = ServeConfig(controller="ffs", options=(("n", 8),), effort=(("low", 64), ("high", None)))

Stdlib only. ``ponder serve`` builds one from its command line (see ponder/cli/serve.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ServeConfig", "EFFORT_BUDGETS", "EFFORT_LEVELS"]

EFFORT_LEVELS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
"""Every ``reasoning_effort`` value a client may send (OpenAI's, plus ``max``), weakest first."""

EFFORT_BUDGETS: tuple[tuple[str, int | None], ...] = (
    ("none", 0), ("minimal", 256), ("low", 1024), ("medium", 4096), ("high", 16384), ("xhigh", 32768), ("max", None),
)
"""Default ``reasoning_effort`` -> budget forcing's ``max_thinking_tokens`` (None: no cap, the
model thinks until it stops; 0: the answer is forced at once). Change it with
``ponder serve --effort low=64 --effort medium=128``."""


@dataclass(frozen=True)
class ServeConfig:
    """What a ``ponder serve`` process applies to every request."""

    controller: str = "single"
    """The controller of requests whose ``extra_body.ponder`` names none."""
    options: tuple[tuple[str, Any], ...] = ()
    """Default options of ``controller`` (``-o KEY=VALUE``); they apply only to requests that use
    the default controller, and a request's own values override them."""
    answer_kind: str = "math"
    """How answers are extracted when a request does not say (``ponder.answer_kind``)."""
    served_name: str = "tiny-reasoner"
    """The model name ``/v1/models`` lists; requests must name it (or the model's path)."""
    model_path: str = ""
    """The model the engine loaded; also accepted as a request's ``model``."""
    api_key: str | None = None
    """When set, every ``/v1/`` request needs ``Authorization: Bearer <api_key>`` (else 401)."""
    max_n: int = 16
    """Most choices (OpenAI's ``n``) one request may ask for."""
    max_samples: int = 64
    """Most samples one controller run may launch (``ponder.n``)."""
    max_tokens: int = 32768
    """Most tokens per sample a request may ask for (``max_tokens`` / ``max_completion_tokens``)."""
    max_prompts: int = 16
    """Most prompts in one ``/v1/completions`` request (a list of prompts)."""
    max_body_bytes: int = 1 << 20
    """Largest request body accepted; a bigger one is answered 400 without being read further."""
    effort: tuple[tuple[str, int | None], ...] = EFFORT_BUDGETS
    """``reasoning_effort`` (and OpenRouter's ``reasoning.effort``) -> ``max_thinking_tokens``."""
    progress_s: float = 0.5
    """While a multi-sample controller races, a streaming client gets a progress comment this often."""
    tick_s: float = 0.05
    """Streamed deltas and lane updates are gathered for this long before being sent."""

    def __post_init__(self) -> None:
        for name in ("max_n", "max_samples", "max_tokens", "max_prompts", "max_body_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")
        default = dict(self.options).get("max_tokens")
        if isinstance(default, int) and default > self.max_tokens:  # else every request would be refused
            raise ValueError(f"the default max_tokens {default} is over the request limit (max_tokens) "
                             f"of {self.max_tokens}")
        if not (isinstance(self.progress_s, (int, float)) and self.progress_s > 0):
            raise ValueError(f"progress_s must be > 0 seconds (got {self.progress_s!r})")
        for level, budget in self.effort:
            if level not in EFFORT_LEVELS:
                raise ValueError(f"effort level must be one of {', '.join(EFFORT_LEVELS)} (got {level!r})")
            if budget is not None and not (isinstance(budget, int) and budget >= 0):
                raise ValueError(f"effort {level}: budget must be an integer >= 0 or none (got {budget!r})")

    def budget_for(self, level: str) -> int | None:
        """The thinking budget of an effort level (None: uncapped)."""
        table = dict(EFFORT_BUDGETS)
        table.update(self.effort)
        return table[level]
