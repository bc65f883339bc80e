"""Plain data shared by every layer: problems, sampling parameters, streamed chunks, traces, solutions.

Stdlib only, so importing ponder stays fast and unit tests need no model. Token accounting
(design.md §3) lives on `Solution`:

- ``total_tokens``: every token generated for the problem, aborted samples included;
- ``sequential_tokens``: the longest chain that had to be generated one after another;
- ``wasted_tokens``: tokens generated for a sample after the controller had decided to abort it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "AnswerKind",
    "ANSWER_KINDS",
    "FinishReason",
    "Problem",
    "SamplingParams",
    "Chunk",
    "Trace",
    "Solution",
]

AnswerKind = Literal["math", "integer", "choice"]
ANSWER_KINDS: tuple[str, ...] = get_args(AnswerKind)
"""Every answer kind, each judged by the verifier registered under its name."""
FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class Problem:
    """One question for a controller."""

    prompt: str
    """The user message, before chat templating."""
    gold: str | None = None
    """The reference answer as a string, or None when unknown (plain solving)."""
    answer_kind: AnswerKind = "math"
    """Which verifier judges and extracts answers for this problem."""
    id: str = ""
    """A stable identifier (benchmark row id); used for resuming and reports."""

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"Problem {self.id!r}: prompt must be a non-empty string")
        if self.answer_kind not in ANSWER_KINDS:
            raise ValueError(
                f"Problem {self.id!r}: answer_kind must be one of {', '.join(ANSWER_KINDS)} (got {self.answer_kind!r})"
            )


@dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded. Field meanings follow vLLM's ``SamplingParams``."""

    max_tokens: int = 256
    """Most new tokens to generate; reaching it ends the request with ``finish_reason='length'``."""
    temperature: float = 0.0
    """0 means greedy decoding; otherwise logits are divided by it before sampling."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables the filter."""
    seed: int | None = None
    """Per-request seed: the same seed, prompt and parameters give the same tokens."""
    stop: tuple[str, ...] = ()
    """Stop strings: generation ends once the decoded output contains one (the tokens that
    completed it are kept in the output, like vLLM's token ids)."""
    stop_token_ids: tuple[int, ...] = ()
    """Token ids that end generation (kept in the output)."""
    ignore_eos: bool = False
    """Keep generating past the end-of-sequence token."""
    logprobs: int | None = None
    """None: no log-probabilities; 0: the sampled token's; k > 0: also the top-k candidates'."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1 (got {self.max_tokens})")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be >= 0 (got {self.top_k})")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError(f"SamplingParams.logprobs must be None or >= 0 (got {self.logprobs})")
        if isinstance(self.stop, str):  # a lone string is a common slip; treat it as one stop string
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))

    def replace(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed completion: new token ids, and on the last chunk the finish reason."""

    token_ids: tuple[int, ...]
    """Token ids generated since the previous chunk."""
    logprobs: tuple[float, ...] | None = None
    """Log-probability of each token in ``token_ids`` (when requested)."""
    top_logprobs: tuple[dict[int, float], ...] | None = None
    """For each token, the top-k candidates' log-probabilities (when ``logprobs`` = k > 0)."""
    finish_reason: FinishReason | None = None
    """Set on the final chunk only: ``stop`` (EOS, stop string or stop token), ``length`` or ``abort``."""
    stop_reason: str | int | None = None
    """The stop string or stop token id that ended the request, if any."""


@dataclass
class Trace:
    """One sample's life: what it generated and how it ended."""

    token_ids: list[int] = field(default_factory=list)
    """Every token the engine generated for this sample (forced/injected tokens excluded)."""
    text: str = ""
    """The decoded completion, including any injected strings (e.g. "Wait", the answer cue)."""
    finish_reason: FinishReason | None = None
    """How the last engine request of this sample ended."""
    aborted: bool = False
    """The controller stopped this sample before it finished."""
    answer: str | None = None
    """The extracted answer (verifier ``extract``), None when there is none."""
    thinking_tokens: int = 0
    """Generated tokens inside the thinking section."""
    wasted_tokens: int = 0
    """Tokens generated after the controller decided to abort this sample."""
    logprobs: list[float] | None = None
    """Per-token log-probabilities of ``token_ids`` when they were requested."""
    info: dict[str, Any] = field(default_factory=dict)
    """Strategy-specific facts: number of forced "Wait"s, confidence, whether it won, ..."""

    @property
    def tokens(self) -> int:
        return len(self.token_ids)

    @property
    def sequential(self) -> int:
        """Tokens generated one after another for this sample: ``tokens``, unless some of them ran
        beside the others (a probing policy's probes) and ``info["sequential_tokens"]`` says less."""
        return self.info.get("sequential_tokens", self.tokens)

    def to_dict(self, with_ids: bool = False) -> dict[str, Any]:
        out = {
            "text": self.text,
            "tokens": self.tokens,
            "thinking_tokens": self.thinking_tokens,
            "finish_reason": self.finish_reason,
            "aborted": self.aborted,
            "answer": self.answer,
            "wasted_tokens": self.wasted_tokens,
            **({"info": self.info} if self.info else {}),
        }
        if with_ids:
            out["token_ids"] = list(self.token_ids)
        return out


@dataclass
class Solution:
    """What a controller returns for one problem."""

    answer: str | None
    """The chosen answer, or None when no sample produced one."""
    traces: list[Trace]
    """Every sample the controller started, in launch order."""
    wall_s: float = 0.0
    """Wall-clock seconds the controller ran."""
    controller: str = ""
    """The name of the strategy that produced this solution."""
    correct: bool | None = None
    """Whether ``answer`` matches the problem's gold answer (None: no gold, or unparseable gold)."""
    sequential_tokens: int | None = None
    """Set by controllers whose samples did not all run side by side; default: the longest trace's
    ``Trace.sequential``."""
    info: dict[str, Any] = field(default_factory=dict)
    """Strategy-specific facts (vote counts, winner index, threshold, ...)."""

    @property
    def total_tokens(self) -> int:
        return sum(t.tokens for t in self.traces)

    @property
    def wasted_tokens(self) -> int:
        return sum(t.wasted_tokens for t in self.traces)

    @property
    def sequential(self) -> int:
        if self.sequential_tokens is not None:
            return self.sequential_tokens
        return max((t.sequential for t in self.traces), default=0)

    def to_dict(self, with_ids: bool = False) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "correct": self.correct,
            "controller": self.controller,
            "total_tokens": self.total_tokens,
            "sequential_tokens": self.sequential,
            "wasted_tokens": self.wasted_tokens,
            "wall_s": round(self.wall_s, 4),
            "traces": [t.to_dict(with_ids) for t in self.traces],
            **({"info": self.info} if self.info else {}),
        }
