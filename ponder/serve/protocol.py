"""OpenAI request bodies in, checked `Job`s out; every bad value is a `RequestError` naming its field.

What a request may say, and what it means here:

- ``messages`` (chat): the last user message is the problem, system (or developer) messages go in
  front of it; ``prompt`` (completions): one problem, or a list of them.
- ``temperature``, ``top_p``, ``seed``, ``max_tokens`` / ``max_completion_tokens`` (per sample):
  the controller's sampling settings; sample i of choice j uses seed + j * samples + i.
- ``n``: that many independent controller runs (choices).
- ``stop``: the answer (``content``) ends before the first stop string.
- thinking: ``ponder.max_thinking_tokens`` > vLLM's ``thinking_token_budget`` > OpenRouter's
  ``reasoning.max_tokens`` > ``reasoning.effort`` > ``reasoning_effort`` (the first one given
  wins; efforts go through the server's table) -> budget forcing's cap on thinking tokens;
  ``reasoning.enabled: false`` is effort ``none``. ``include_reasoning: false`` or
  ``reasoning.exclude: true`` leave the thinking out of the response.
- ``extra_body={"ponder": {...}}``: ``controller``, ``answer_kind``, ``lanes`` (stream every
  sample, for the race page) and any controller option (``n``, ``k``, ``min_thinking_tokens``,
  ``extend``, ...); these override everything above.

    job = parse_chat(json.loads(body), ServeConfig())
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ponder.controllers import REGISTRY, get_controller
from ponder.serve.config import EFFORT_LEVELS, ServeConfig
from ponder.types import ANSWER_KINDS

__all__ = ["RequestError", "Job", "error_body", "parse_json", "parse_chat", "parse_completion"]

UNSUPPORTED = {"logprobs": "log-probabilities", "top_logprobs": "log-probabilities", "tools": "tool calls",
               "functions": "function calls", "echo": "echo", "suffix": "suffix"}
RESERVED = {"controller", "answer_kind", "lanes"}


class RequestError(Exception):
    """A request the server refuses, with OpenAI's error fields."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value", status: int = 400,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = message, param, code, status, kind

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass(frozen=True)
class Job:
    """One request, checked: what to run and how to answer."""

    kind: str
    """``chat`` or ``completion``."""
    prompts: tuple[str, ...]
    """The problems (a chat has one; completions may send several)."""
    system: str | None
    """System message text put in front of the problem, if any."""
    model: str
    """The model name the request used (echoed in the response)."""
    controller: str
    """Registered controller name."""
    options: tuple[tuple[str, Any], ...]
    """Controller options (sampling settings included), before per-choice seeds."""
    n: int = 1
    """Independent controller runs per prompt (OpenAI's ``n``)."""
    stream: bool = False
    """Answer as server-sent events."""
    include_usage: bool = False
    """Streaming: end with a chunk carrying ``usage`` (``stream_options.include_usage``)."""
    include_reasoning: bool = True
    """Return the thinking (``reasoning`` and ``reasoning_content``)."""
    stop: tuple[str, ...] = ()
    """The answer ends before the first of these."""
    answer_kind: str = "math"
    """The verifier that extracts answers."""
    lanes: bool = False
    """Streaming: also send every sample's text as it grows (chunks with a ``ponder`` field)."""

    def runs(self) -> list[tuple[int, int]]:
        """(choice index, prompt index) for every controller run, in choice order."""
        return [(p * self.n + j, p) for p in range(len(self.prompts)) for j in range(self.n)]

    def options_for(self, choice: int) -> dict[str, Any]:
        """The controller options of one choice: its own block of seeds."""
        options = dict(self.options)
        if options.get("seed") is not None:
            options["seed"] = options["seed"] + (choice % self.n) * _samples(options)
        return options


def _samples(options: dict[str, Any]) -> int:
    n = options.get("n", 1)
    return n if isinstance(n, int) and n > 0 else 1


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object", code="invalid_json")
    return body


def parse_chat(body: dict[str, Any], cfg: ServeConfig) -> Job:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {role, content} objects", "messages")
    system, problem = [], None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"messages[{i}] must be an object with a role", f"messages[{i}]")
        text = _content(message.get("content"), f"messages[{i}].content")
        if message["role"] in ("system", "developer"):
            system.append(text)
        elif message["role"] == "user":
            problem = text
    if problem is None or not problem.strip():
        raise RequestError("messages needs a user message with the problem (the last one is used)", "messages")
    return _job(body, cfg, "chat", (problem,), "\n\n".join(s for s in system if s) or None)


def parse_completion(body: dict[str, Any], cfg: ServeConfig) -> Job:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise RequestError("prompt must be a string or a list of strings (token-id prompts are not supported)",
                           "prompt")
    if len(prompts) > cfg.max_prompts:
        raise RequestError(f"at most {cfg.max_prompts} prompts per request (got {len(prompts)})", "prompt",
                           "over_limit")
    if not all(p.strip() for p in prompts):
        raise RequestError("prompt must not be empty", "prompt")
    return _job(body, cfg, "completion", tuple(prompts), None)


def _content(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise RequestError("only text content parts are supported", param)
        return "".join(p["text"] for p in content)
    raise RequestError("content must be a string or a list of text parts", param)


def _job(body: dict[str, Any], cfg: ServeConfig, kind: str, prompts: tuple[str, ...], system: str | None) -> Job:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(f"model is required (this server serves `{cfg.served_name}`)", "model")
    if model not in (cfg.served_name, cfg.model_path):
        raise RequestError(f"The model `{model}` does not exist; this server serves `{cfg.served_name}`", "model",
                           "model_not_found", status=404)
    for key, what in UNSUPPORTED.items():
        if body.get(key) not in (None, False, []):
            raise RequestError(f"ponder serve does not support {what} ({key})", key, "unsupported")
    n = _int(body, "n", 1, cfg.max_n, 1)
    stream = _bool(body, "stream", False)
    options_ = body.get("stream_options") or {}
    if not isinstance(options_, dict):
        raise RequestError("stream_options must be an object", "stream_options")
    ponder = body.get("ponder") or {}
    if not isinstance(ponder, dict):
        raise RequestError("ponder must be an object of controller options", "ponder")
    reasoning = body.get("reasoning") or {}
    if not isinstance(reasoning, dict):
        raise RequestError("reasoning must be an object {effort, max_tokens, exclude}", "reasoning")
    include = _bool(body, "include_reasoning", True) and not _bool(reasoning, "exclude", False, "reasoning.exclude")
    controller, options, answer_kind = _controller(body, ponder, reasoning, cfg)
    lanes = _bool(ponder, "lanes", False, "ponder.lanes")
    return Job(kind, prompts, system, model, controller, tuple(options.items()), n, stream,
               _bool(options_, "include_usage", False, "stream_options.include_usage"), include,
               _stop(body.get("stop")), answer_kind, lanes)


def _controller(body: dict[str, Any], ponder: dict[str, Any], reasoning: dict[str, Any],
                cfg: ServeConfig) -> tuple[str, dict[str, Any], str]:
    name = ponder.get("controller", cfg.controller)
    if name not in REGISTRY:
        raise RequestError(f"unknown controller {name!r}; choose one of {', '.join(sorted(REGISTRY))}",
                           "ponder.controller", "unknown_controller")
    answer_kind = ponder.get("answer_kind", cfg.answer_kind)
    if answer_kind not in ANSWER_KINDS:
        raise RequestError(f"answer_kind must be one of {', '.join(ANSWER_KINDS)} (got {answer_kind!r})",
                           "ponder.answer_kind")
    options = dict(cfg.options) if name == cfg.controller else {}
    for key, ok, rule in (("temperature", lambda v: v >= 0, ">= 0"), ("top_p", lambda v: 0 < v <= 1, "in (0, 1]")):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not ok(value):
                raise RequestError(f"{key} must be a number {rule} (got {value!r})", key)
            options[key] = value
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        options["max_tokens"] = limit
    if body.get("seed") is not None:
        options["seed"] = body["seed"]
    budget = _thinking_budget(body, reasoning, cfg)
    if budget != "unset":
        options["max_thinking_tokens"] = budget
    for key, value in ponder.items():
        if key in ("sample", "sampling"):
            raise RequestError("give sampling and budget options by name (temperature, max_thinking_tokens, ...), "
                               f"not as {key}", f"ponder.{key}")
        if key not in RESERVED:
            options[key] = value
    _check(options, cfg)
    try:
        get_controller(name, **dict(options))
    except (ValueError, TypeError) as exc:
        raise RequestError(str(exc), "ponder") from None
    return name, options, answer_kind


def _check(options: dict[str, Any], cfg: ServeConfig) -> None:
    """The server's limits, and types the controllers do not check themselves."""
    limit = options.get("max_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise RequestError(f"max_tokens must be an integer >= 1 (got {limit!r})", "max_tokens")
    if limit is not None and limit > cfg.max_tokens:
        raise RequestError(f"max_tokens {limit} is over this server's limit of {cfg.max_tokens}", "max_tokens",
                           "over_limit")
    n = options.get("n")
    if isinstance(n, int) and n > cfg.max_samples:
        raise RequestError(f"ponder.n {n} is over this server's limit of {cfg.max_samples} samples", "ponder.n",
                           "over_limit")
    seed = options.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(f"seed must be an integer (got {seed!r})", "seed")


def _thinking_budget(body: dict[str, Any], reasoning: dict[str, Any], cfg: ServeConfig) -> Any:
    """The thinking cap the request asks for: an int, None (uncapped) or "unset" (not asked)."""
    for value, param in ((body.get("thinking_token_budget"), "thinking_token_budget"),
                         (reasoning.get("max_tokens"), "reasoning.max_tokens")):
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise RequestError(f"{param} must be an integer >= 0 (got {value!r})", param)
            return value
    if reasoning.get("enabled") is False and reasoning.get("effort") is None:
        return cfg.budget_for("none")
    for value, param in ((reasoning.get("effort"), "reasoning.effort"),
                         (body.get("reasoning_effort"), "reasoning_effort")):
        if value is not None:
            if value not in EFFORT_LEVELS:
                raise RequestError(f"{param} must be one of {', '.join(EFFORT_LEVELS)} (got {value!r})", param)
            return cfg.budget_for(value)
    return "unset"


def _int(body: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise RequestError(f"{key} must be an integer >= {lo} (got {value!r})", key)
    if value > hi:
        raise RequestError(f"{key} {value} is over this server's limit of {hi}", key, "over_limit")
    return value


def _bool(body: dict[str, Any], key: str, default: bool, param: str | None = None) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"{param or key} must be true or false (got {value!r})", param or key)
    return value


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > 16:
        raise RequestError("stop must be a string or a list of at most 16 non-empty strings", "stop")
    return tuple(stops)
