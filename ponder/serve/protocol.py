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

The body's shape is declared in `ponder.serve.requests` (pydantic); the controller and its options
are checked once, by building the request's `ControllerSpec`; what stays here is the server's own
limits and the precedence of the ways to ask for a thinking budget.

    job = parse_chat(json.loads(body), ServeConfig())
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ponder.controllers import ControllerSpec, UnknownController
from ponder.serve.config import ServeConfig
from ponder.serve.requests import ChatRequest, CompletionRequest, first_error

__all__ = ["RequestError", "Job", "error_body", "parse_json", "parse_chat", "parse_completion"]

UNSUPPORTED = {"logprobs": "log-probabilities", "top_logprobs": "log-probabilities", "tools": "tool calls",
               "functions": "function calls", "echo": "echo", "suffix": "suffix"}
SAMPLING_PARAMS = ("temperature", "top_p", "seed", "max_completion_tokens", "max_tokens")
"""Body fields that become the controller's sampling settings (an error about one names it)."""


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
    spec: ControllerSpec
    """The controller with its options (sampling settings included), built once for the request."""
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

    @property
    def controller(self) -> str:
        return self.spec.name

    def runs(self) -> list[tuple[int, int]]:
        """(choice index, prompt index) for every controller run, in choice order."""
        return [(p * self.n + j, p) for p in range(len(self.prompts)) for j in range(self.n)]

    def controller_for(self, choice: int) -> Any:
        """The controller of one choice: its own block of seeds (seed + j * samples + i)."""
        return self.spec.reseeded((choice % self.n) * getattr(self.spec.controller, "n", 1))


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object", code="invalid_json")
    return body


def _validate(model: type, body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        param, message = first_error(exc)
        raise RequestError(message, param or None) from None


def parse_chat(body: dict[str, Any], cfg: ServeConfig) -> Job:
    _check_model(body.get("model"), cfg)
    request = _validate(ChatRequest, body)
    system = [m.content for m in request.messages if m.role in ("system", "developer")]
    users = [m.content for m in request.messages if m.role == "user"]
    if not users or not users[-1].strip():
        raise RequestError("messages needs a user message with the problem (the last one is used)", "messages")
    return _job(request, body, cfg, "chat", (users[-1],), "\n\n".join(s for s in system if s) or None)


def parse_completion(body: dict[str, Any], cfg: ServeConfig) -> Job:
    _check_model(body.get("model"), cfg)
    request = _validate(CompletionRequest, body)
    if len(request.prompt) > cfg.max_prompts:
        raise RequestError(f"at most {cfg.max_prompts} prompts per request (got {len(request.prompt)})", "prompt",
                           "over_limit")
    return _job(request, body, cfg, "completion", request.prompt, None)


def _check_model(model: Any, cfg: ServeConfig) -> None:
    """First of all (as OpenAI's API does): a model this server does not serve is a 404."""
    if not isinstance(model, str) or not model:
        raise RequestError(f"model is required (this server serves `{cfg.served_name}`)", "model")
    if model not in (cfg.served_name, cfg.model_path):
        raise RequestError(f"The model `{model}` does not exist; this server serves `{cfg.served_name}`",
                           "model", "model_not_found", status=404)


def _job(request: Any, body: dict[str, Any], cfg: ServeConfig, kind: str, prompts: tuple[str, ...],
         system: str | None) -> Job:
    for key, what in UNSUPPORTED.items():
        if body.get(key) not in (None, False, []):
            raise RequestError(f"ponder serve does not support {what} ({key})", key, "unsupported")
    n = 1 if request.n is None else request.n  # null: the default, as OpenAI's API reads it
    if n > cfg.max_n:
        raise RequestError(f"n {n} is over this server's limit of {cfg.max_n}", "n", "over_limit")
    ponder, reasoning = request.ponder, request.reasoning
    include = request.include_reasoning is not False and not (reasoning is not None and reasoning.exclude)
    spec = _spec(request, cfg)
    return Job(kind, prompts, system, request.model, spec, n, bool(request.stream),
               bool(request.stream_options and request.stream_options.include_usage), include, request.stop,
               (ponder and ponder.answer_kind) or cfg.answer_kind, bool(ponder and ponder.lanes))


def _spec(request: Any, cfg: ServeConfig) -> ControllerSpec:
    """The request's controller, built (and so checked) once, then held to the server's limits."""
    ponder = request.ponder
    name = (ponder and ponder.controller) or cfg.controller
    options = dict(cfg.options) if name == cfg.controller else {}
    given = {key: getattr(request, key) for key in SAMPLING_PARAMS if getattr(request, key) is not None}
    options.update({("max_tokens" if key == "max_completion_tokens" else key): value
                    for key, value in reversed(given.items())})  # max_completion_tokens wins
    budget, budget_param = _thinking_budget(request, cfg)
    if budget != "unset":
        options["max_thinking_tokens"] = budget
    own = ponder.controller_options() if ponder else {}
    for key, value in own.items():
        if key == "sampling" or (key == "sample" and not isinstance(value, str)):
            raise RequestError("give sampling and budget options by name (temperature, max_thinking_tokens, ...) and "
                               "a per-sample policy by its name (sample: probe)", f"ponder.{key}")
        options[key] = value
    try:
        spec = ControllerSpec.of(name, options)
    except UnknownController as exc:
        raise RequestError(str(exc), "ponder.controller", "unknown_controller") from None
    except (ValueError, TypeError) as exc:
        raise RequestError(str(exc), _blamed(exc, given, own, budget_param)) from None
    _limits(spec, given, own, cfg)
    return spec


def _blamed(exc: Exception, given: dict[str, Any], own: dict[str, Any], budget_param: str | None) -> str:
    """The request field a controller's error is about: ``ponder.KEY`` for the request's own
    controller options, the body field that set a sampling setting or the thinking budget, else ``ponder``."""
    key = getattr(exc, "option", None)  # an OptionError names it; a TypeError does not
    if key in own:
        return f"ponder.{key}"
    if key == "max_tokens" and (given.keys() & {"max_completion_tokens", "max_tokens"}):
        return "max_completion_tokens" if "max_completion_tokens" in given else "max_tokens"
    if key in given:
        return key
    if "max_thinking_tokens" in str(exc) and "max_thinking_tokens" in own:  # ponder's cap over the body's budget
        return "ponder.max_thinking_tokens"
    if "max_thinking_tokens" in str(exc) and budget_param is not None:  # the budget, or a minimum over it
        return budget_param
    return "ponder"


def _limits(spec: ControllerSpec, given: dict[str, Any], own: dict[str, Any], cfg: ServeConfig) -> None:
    """The server's own limits on samples and on the tokens per sample that were asked for (by the
    body, its ``ponder`` options or the server's defaults; the controllers' own default stands)."""
    asked = [param for param, set_there in (("ponder.max_tokens", "max_tokens" in own),
                                             ("max_completion_tokens", "max_completion_tokens" in given),
                                             ("max_tokens", "max_tokens" in given or "max_tokens" in dict(cfg.options)))
             if set_there]  # the first one set is the one that won
    sampling = getattr(spec.controller, "sampling", None)
    if asked and sampling is not None and sampling.max_tokens > cfg.max_tokens:
        param = asked[0]
        raise RequestError(f"max_tokens {sampling.max_tokens} is over this server's limit of {cfg.max_tokens}",
                           param, "over_limit")
    n = getattr(spec.controller, "n", 1)
    if n > cfg.max_samples:
        raise RequestError(f"ponder.n {n} is over this server's limit of {cfg.max_samples} samples", "ponder.n",
                           "over_limit")


def _thinking_budget(request: Any, cfg: ServeConfig) -> tuple[Any, str | None]:
    """The thinking cap the request asks for (an int, None: uncapped, or "unset": not asked) and
    the field that asked. The first one given wins: vLLM's budget, OpenRouter's max_tokens, then
    the efforts."""
    reasoning = request.reasoning
    for value, param in ((request.thinking_token_budget, "thinking_token_budget"),
                         (reasoning and reasoning.max_tokens, "reasoning.max_tokens")):
        if value is not None:
            return value, param
    if reasoning is not None and reasoning.enabled is False and reasoning.effort is None:
        return cfg.budget_for("none"), "reasoning.enabled"
    for value, param in ((reasoning and reasoning.effort, "reasoning.effort"),
                         (request.reasoning_effort, "reasoning_effort")):
        if value is not None:
            return cfg.budget_for(value), param
    return "unset", None
