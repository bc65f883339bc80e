"""Response bodies shaped like vLLM's OpenAI server, so the official ``openai`` client reads them.

The thinking goes in ``reasoning`` (vLLM's current field; vLLM 0.32 writes no other) and also in
``reasoning_content`` (DeepSeek's API, SGLang, older vLLM), in messages and in streamed deltas
alike. As in vLLM, a message's ``content`` is ``null`` when the sample has no answer text (its
thinking never closed), and its ``reasoning`` is ``null`` when there is no thinking or the
request left it out. A choice also carries a ``ponder`` object: the controller's answer, the
winning sample and the vote.

    chat_response(job, "chatcmpl-1", 1700000000, outcomes, usage)
    chunk(job, "chatcmpl-1", 1700000000, [delta_choice(job, 0, content="...")])
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ponder.serve.protocol import Job
from ponder.serve.run import Outcome

__all__ = ["new_id", "chat_response", "completion_response", "chunk", "delta_choice", "sse", "models_body"]


def new_id(job: Job) -> tuple[str, int]:
    """A response id (``chatcmpl-...`` / ``cmpl-...``) and its creation time."""
    return f"{'chatcmpl' if job.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}", int(time.time())


def _ponder(outcome: Outcome) -> dict[str, Any]:
    sol = outcome.solution
    info = {k: v for k, v in sol.info.items() if k in ("winner", "votes", "voters", "threshold", "waits", "forced")}
    return {"answer": sol.answer, **info}


def _reasoning(job: Job, text: str) -> dict[str, Any]:
    value = text if job.include_reasoning and text else None
    return {"reasoning": value, "reasoning_content": value}


def chat_response(job: Job, rid: str, created: int, outcomes: list[Outcome], usage: dict[str, Any]) -> dict[str, Any]:
    choices = [{
        "index": o.index,
        "message": {"role": "assistant", "content": o.content or None, **_reasoning(job, o.reasoning),
                    "tool_calls": []},
        "logprobs": None,
        "finish_reason": o.finish_reason,
        "stop_reason": None,
        "ponder": _ponder(o),
    } for o in outcomes]
    return {"id": rid, "object": "chat.completion", "created": created, "model": job.model, "choices": choices,
            "usage": usage}


def completion_response(job: Job, rid: str, created: int, outcomes: list[Outcome],
                        usage: dict[str, Any]) -> dict[str, Any]:
    choices = [{"index": o.index, "text": o.text, "logprobs": None, "finish_reason": o.finish_reason,
                "stop_reason": None, "ponder": _ponder(o)} for o in outcomes]
    return {"id": rid, "object": "text_completion", "created": created, "model": job.model, "choices": choices,
            "usage": usage}


def delta_choice(job: Job, index: int, *, role: bool = False, reasoning: str = "", content: str = "", text: str = "",
                 finish_reason: str | None = None, outcome: Outcome | None = None) -> dict[str, Any]:
    """One streamed choice: a chat delta (``reasoning``, ``content``) or a completion's ``text`` piece."""
    if job.kind == "chat":
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if reasoning and job.include_reasoning:
            delta.update(_reasoning(job, reasoning))
        if content:
            delta["content"] = content
        out = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    else:
        out = {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}
    if outcome is not None:
        out["ponder"] = _ponder(outcome)
    return out


def chunk(job: Job, rid: str, created: int, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None,
          ponder: dict[str, Any] | None = None) -> str:
    """One server-sent event holding a chunk."""
    body: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk" if job.kind == "chat" else "text_completion",
                            "created": created, "model": job.model, "choices": choices}
    if usage is not None:
        body["usage"] = usage
    if ponder is not None:
        body["ponder"] = ponder
    return sse(body)


def sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def models_body(served_name: str, model_path: str, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": served_name, "object": "model", "created": created,
                                        "owned_by": "ponder", "root": model_path, "parent": None}]}
