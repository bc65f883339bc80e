"""The Ray pool's bookkeeping: a caller's request, an actor as the pool sees it, and the record
of a request moved off a dead actor (`RayPool.resubmissions`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ponder.types import SamplingParams

__all__ = ["Resubmission", "Request", "Died", "Actor"]


@dataclass
class Resubmission:
    """A request moved off a dead actor."""

    request_id: str
    dead_actor: int
    new_actor: int
    tokens_carried: int
    """Tokens already streamed, passed on as prompt so the continuation starts where the stream was."""
    error: str


@dataclass
class Request:
    """Pool side: one caller's request."""

    rid: str
    prompt_ids: list[int]
    params: SamplingParams
    queue: asyncio.Queue
    received: list[int] = field(default_factory=list)
    attempt: int = 0
    arid: str = ""
    actor: Any = None
    carried: int = 0
    """Tokens received before the current attempt (sent to it as prompt)."""
    held: Any = None
    """An item taken from the queue while merging chunks, read next."""
    counts: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    engine_deaths: int = 0
    """Actors whose engine died while serving it."""


@dataclass
class Died:
    arid: str
    actor: int
    error: str


@dataclass
class Actor:
    index: int
    handle: Any
    group: Any = None
    """Its placement group (tensor-parallel vLLM with vLLM's Ray executor), removed with it."""
    alive: bool = True
    requests: dict[str, Request] = field(default_factory=dict)
    reader: asyncio.Task | None = None
    to_abort: list[Request] = field(default_factory=list)
    channel: tuple | None = None
    """(host, port, key) of the actor's direct stream; None: use Ray's streaming generator."""
    writer: asyncio.StreamWriter | None = None
    tickets: dict[int, asyncio.Future] = field(default_factory=dict)
    error: str = ""
    reviving: bool = False
    """Dead, and Ray is restarting it: requests wait for it when no other actor is alive."""
