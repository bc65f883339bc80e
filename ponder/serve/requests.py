"""The OpenAI request bodies ``ponder serve`` accepts, declared as pydantic models (as vLLM's
``entrypoints/openai/protocol.py`` declares its own), and their errors as ``(param, message)``.

Only HTTP-level shapes are declared here: types, required fields, the allowed words. What a value
means for a controller (temperature, top_p, seeds, ``max_tokens``, every ``ponder`` option) is
checked once, by the controller it builds (`ponder.controllers.ControllerSpec`); the server's own
limits by `ponder.serve.protocol`. Unknown fields are allowed: OpenAI clients send many that do
not change ponder's answer (``user``, ``metadata``, ...).

    request = ChatRequest.model_validate(body)        # pydantic.ValidationError if malformed
    param, message = first_error(exc)                 # ("messages[0].content", "...")
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from ponder.serve.config import EFFORT_LEVELS
from ponder.types import ANSWER_KINDS

__all__ = ["ChatRequest", "CompletionRequest", "Message", "first_error"]

Effort = Literal[EFFORT_LEVELS]  # type: ignore[valid-type]
AnswerKind = Literal[ANSWER_KINDS]  # type: ignore[valid-type]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    """One chat message; ``content`` is text or a list of text parts."""

    role: str
    content: Any = ""

    @field_validator("content")
    @classmethod
    def _text(cls, content: Any) -> str:
        if content is None or isinstance(content, str):
            return content or ""
        if isinstance(content, list) and all(isinstance(p, dict) for p in content):
            if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
                raise ValueError("only text content parts are supported")
            return "".join(p["text"] for p in content)
        raise ValueError("content must be a string or a list of text parts")


class StreamOptions(_Open):
    include_usage: Optional[StrictBool] = None


class Reasoning(_Open):
    """OpenRouter's ``reasoning`` object."""

    effort: Optional[Effort] = None
    max_tokens: Optional[StrictInt] = Field(None, ge=0)
    exclude: Optional[StrictBool] = None
    enabled: Optional[StrictBool] = None


class PonderOptions(_Open):
    """``extra_body={"ponder": {...}}``: the controller, how answers are read, the race lanes; any
    other key is a controller option, checked by the controller."""

    controller: Optional[str] = None
    answer_kind: Optional[AnswerKind] = None
    lanes: Optional[StrictBool] = None

    def controller_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class _Request(_Open):
    """Fields OpenAI's API lets a client send as null mean their default (None here)."""

    model: Optional[str] = None
    n: Optional[StrictInt] = Field(None, ge=1)
    stream: Optional[StrictBool] = None
    stream_options: Optional[StreamOptions] = None
    stop: Any = ()
    include_reasoning: Optional[StrictBool] = None
    reasoning: Optional[Reasoning] = None
    reasoning_effort: Optional[Effort] = None
    thinking_token_budget: Optional[StrictInt] = Field(None, ge=0)
    ponder: Optional[PonderOptions] = None
    # meaning checked by the controller's sampling settings, named after these fields
    temperature: Any = None
    top_p: Any = None
    seed: Any = None
    max_tokens: Any = None
    max_completion_tokens: Any = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: Any) -> tuple[str, ...]:
        if stop is None:
            return ()
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > 16:
            raise ValueError("stop must be a string or a list of at most 16 non-empty strings")
        return tuple(stops)


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Request):
    prompt: Any

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, prompt: Any) -> tuple[str, ...]:
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a list of strings (token-id prompts are not supported)")
        if not all(p.strip() for p in prompts):
            raise ValueError("prompt must not be empty")
        return tuple(prompts)


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The first problem of a failed validation as (OpenAI ``param``, one-line message)."""
    error = exc.errors(include_url=False)[0]
    param = ""
    for part in error["loc"]:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = f"{param} is required"
    elif not message.startswith(param.split("[")[0].split(".")[-1]):
        message = f"{param}: {message} (got {error.get('input')!r})"[:300]
    return param, message
