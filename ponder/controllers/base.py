"""What every controller shares: the sampling settings and the per-problem context.

A controller is a frozen dataclass with ``async def run(problem, engine, *, verifier=None) ->
Solution``, built only from ``engine.stream`` calls, and registered by name in
``ponder.controllers.REGISTRY``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from ponder.controllers.trace import SampleContext
from ponder.prompts import family_for, render
from ponder.types import MAX_SEED, OptionError, Problem, SamplingParams, Solution, check_seed, max_samples
from ponder.verifiers import warm

__all__ = ["Controller", "Sampling", "make_context", "check_n"]


class Controller(Protocol):
    name: str

    async def run(self, problem: Problem, engine: Any, *, verifier: Any = None) -> Solution: ...


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of each sample (defaults: DeepSeek-R1's recommended 0.6 / 0.95)."""

    temperature: float = 0.6
    """Sampling temperature; 0 is greedy."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    max_tokens: int = 32768
    """Most tokens per sample (engines also stop at the model's context length)."""
    seed: int | None = None
    """Base seed; sample i uses seed + i, so a run is reproducible."""

    def __post_init__(self) -> None:
        # fail when the controller is built (CLI: before a model loads), not at the first request
        if not (_number(self.temperature) and math.isfinite(self.temperature) and self.temperature >= 0):
            raise OptionError("temperature", f"temperature must be a number >= 0 and finite (got {self.temperature!r})")
        if not (_number(self.top_p) and 0 < self.top_p <= 1):  # NaN fails the comparison too
            raise OptionError("top_p", f"top_p must be a number in (0, 1] (got {self.top_p!r})")
        if not (isinstance(self.max_tokens, int) and not isinstance(self.max_tokens, bool) and self.max_tokens >= 1):
            raise OptionError("max_tokens", f"max_tokens must be an integer >= 1 (got {self.max_tokens!r})")
        check_seed(self.seed)

    def params(self, index: int = 0, **changes: Any) -> SamplingParams:
        """Engine parameters for sample ``index``; ``changes`` override fields.

        Sample seeds wrap around at 2^64, so a base seed near the top stays a valid engine seed."""
        seed = None if self.seed is None else (self.seed + index) % (MAX_SEED + 1)
        fields = dict(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, seed=seed)
        return SamplingParams(**{**fields, **changes})


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_n(controller: str, n: Any) -> None:
    """Refuse a sample count that is not an integer in 1..`max_samples()` (ValueError naming ``n``)."""
    limit = max_samples()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise OptionError("n", f"{controller}: n must be an integer >= 1 (got {n!r})")
    if n > limit:
        raise OptionError("n", f"{controller}: n must be at most {limit} samples per problem (got {n}; "
                               f"set PONDER_MAX_SAMPLES to raise the limit)")


def make_context(problem: Problem, engine: Any, verifier: Any = None, family: str | None = None) -> SampleContext:
    """Render the problem for the engine's model family (``family``, else the one the engine was
    opened with, else read from its tokenizer), and warm the verifier's workers."""
    warm(verifier)
    fam = family_for(engine.tokenizer, engine.model_name, family or getattr(engine, "family", None))
    return SampleContext(engine, render(engine.tokenizer, problem.prompt, fam), fam, verifier)
