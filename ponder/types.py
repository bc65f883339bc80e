"""Plain data shared by every layer: problems, sampling parameters, streamed chunks, traces, solutions.

Stdlib only, so importing ponder stays fast and unit tests need no model. Token accounting
(docs/design.md §3) lives on `Solution`:

- ``total_tokens``: every token generated for the problem, aborted samples included;
- ``sequential_tokens``: the longest chain that had to be generated one after another;
- ``wasted_tokens``: tokens generated for a sample after the controller had decided to abort it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "MAX_SEED",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_MAX_PROBLEM_BYTES",
    "max_samples",
    "max_problem_bytes",
    "check_seed",
    "OptionError",
    "AnswerKind",
    "ANSWER_KINDS",
    "FinishReason",
    "Problem",
    "SamplingParams",
    "Chunk",
    "Trace",
    "Solution",
]

MAX_SEED = 2**64 - 1
"""Largest seed: engines seed a 64-bit generator (torch's ``manual_seed`` refuses more)."""
DEFAULT_MAX_SAMPLES = 1024
"""Most samples one controller may launch per problem, unless ``PONDER_MAX_SAMPLES`` says otherwise."""
DEFAULT_MAX_PROBLEM_BYTES = 65536
"""Most bytes of problem text (UTF-8), unless ``PONDER_MAX_PROBLEM_BYTES`` says otherwise."""


class OptionError(ValueError):
    """A bad controller or sampling option. ``option`` is its name as the caller gave it
    (``max_thinking_tokens``, ``sample_rule``), so the CLI can name the flag that set it and serve
    the request field; the message is the one line said to the user."""

    def __init__(self, option: str, message: str, *, others: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.option = option
        self.options = (option, *others)
        """Every option the message is about (several unknown ones), ``option`` first."""


def _env_limit(name: str, default: int) -> int:
    # read at each call, so a test or a user can change it without reimporting ponder
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be a positive integer (got {text!r})") from None
    if value < 1:
        raise ValueError(f"environment variable {name} must be a positive integer (got {text!r})")
    return value


def max_samples() -> int:
    """Most samples per problem (``n`` of majority, ffs, deepconf): env ``PONDER_MAX_SAMPLES``, default 1024.

    A typo like ``-n 10000`` would otherwise launch ten thousand requests at once."""
    return _env_limit("PONDER_MAX_SAMPLES", DEFAULT_MAX_SAMPLES)


def max_problem_bytes() -> int:
    """Most UTF-8 bytes of one problem's text: env ``PONDER_MAX_PROBLEM_BYTES``, default 65536 (64 KB).

    Checked while problem files are read and when a `Problem` is made, so an over-long problem
    fails in milliseconds instead of after being tokenized (a 10 MB line took 24 s and 4.4 GB)."""
    return _env_limit("PONDER_MAX_PROBLEM_BYTES", DEFAULT_MAX_PROBLEM_BYTES)


def check_seed(seed: Any, name: str = "seed") -> None:
    """Refuse a seed that is not an integer in 0..2^64-1 (ValueError naming ``name``).

    Floats are refused even when whole (``1e23``): JSON and ``-o seed=...`` turn big numbers into
    floats that have lost their low digits, so the run would not be the one asked for."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(name, f"{name} must be an integer in 0..2^64-1 (got {seed!r})")
    if not 0 <= seed <= MAX_SEED:
        raise OptionError(name, f"{name} must be an integer in 0..2^64-1 (got {seed})")


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
        limit = max_problem_bytes()
        # a character is at most 4 bytes: encode only a prompt that may be over
        if len(self.prompt) > limit // 4 and len(self.prompt.encode("utf-8")) > limit:
            raise ValueError(f"Problem {self.id!r}: prompt is {len(self.prompt.encode('utf-8'))} bytes, over the "
                             f"limit of {limit} (PONDER_MAX_PROBLEM_BYTES)")


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
        if not (_finite_number(self.temperature) and self.temperature >= 0):
            raise ValueError(f"SamplingParams.temperature must be a number >= 0 and finite (got {self.temperature})")
        if not (_finite_number(self.top_p) and 0 < self.top_p <= 1):
            raise ValueError(f"SamplingParams.top_p must be in (0, 1] (got {self.top_p})")
        check_seed(self.seed, "SamplingParams.seed")
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
    context_ids: list[int] | None = None
    """The continuation after the prompt exactly as the model last saw it: generated ids and
    injected ones (an answer cue, "Wait") in order, a stripped delimiter left out; None when nothing
    was injected (then it equals ``token_ids``)."""
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
            if self.context_ids is not None:
                out["context_ids"] = list(self.context_ids)
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
