"""Watching a controller's samples as they stream, without touching the controller.

Each controller run of a request gets a `RaceEngine`: a thin view of the server's one engine
that forwards every call and records each stream it opens. Every sample of a controller runs in
its own asyncio task (one per sample for ffs, majority and deepconf; the request's own task for
single and budget forcing), so the streams of one task are one sample: its *lane*. A lane holds
the sample's continuation as the model sees it (generated tokens plus injected strings such as
budget forcing's "Wait" or forced answer cue), its token count and its state:

- ``running`` while a stream is open, ``finished`` when a stream ended by itself (stop or length;
  budget forcing may continue it), ``aborted`` when the controller closed it early.

The view also puts a system message in front of the problem: controllers render only the problem
(`ponder.prompts.render`), so every prompt that starts with that rendering is sent with the
rendering that includes the system message instead.

    race = Race(tokenizer, plain_prompt_ids, full_prompt_ids, changed=asyncio.Event())
    solution = await controller.run(problem, RaceEngine(engine, race), verifier=verifier)
    [(lane.state, lane.tokens, lane.text()) for lane in race.lanes]
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, AsyncIterator

from ponder.types import Chunk, SamplingParams

__all__ = ["Lane", "Race", "RaceEngine"]


class Lane:
    """One sample of a controller run, as streamed so far."""

    def __init__(self, index: int, decode: Any) -> None:
        self.index = index
        self.state = "running"
        self.tokens = 0
        """Tokens the engine generated for this sample (injected ones excluded)."""
        self.finish_reason: str | None = None
        self._decode = decode
        self._ids: list[int] = []  # the continuation after the prompt, injected tokens included
        self._text = ""
        self._prefix = self._read = 0  # incremental decoding: context start, decoded up to

    def restart(self, continuation: list[int]) -> None:
        """A new stream of this sample continues ``continuation`` (what the model sees now)."""
        if continuation != self._ids:
            self._ids = list(continuation)
            self._text = self._decode(self._ids)
            self._prefix = self._read = len(self._ids)
        self.state, self.finish_reason = "running", None

    def add(self, token_ids: tuple[int, ...]) -> None:
        self._ids.extend(token_ids)
        self.tokens += len(token_ids)

    def end(self, reason: str) -> None:
        self.finish_reason = reason
        self.state = "aborted" if reason == "abort" else "finished"

    def text(self) -> str:
        """The decoded continuation (decoded lazily: nothing is decoded unless someone reads it)."""
        if self._read < len(self._ids):
            before = self._decode(self._ids[self._prefix:self._read])
            after = self._decode(self._ids[self._prefix:])
            if not after.endswith("\ufffd") or self.state != "running":  # a multi-byte character may be incomplete
                self._text += after[len(before):]
                self._prefix, self._read = self._read, len(self._ids)
        return self._text


class Race:
    """Every lane of one controller run.

    Args:
        tokenizer: decodes the lanes' text.
        plain_prompt: the prompt ids a controller renders for the problem alone.
        full_prompt: what is really sent instead (the same plus a system message), or None.
        changed: set whenever a lane moves (shared by all runs of one request).
    """

    def __init__(self, tokenizer: Any, plain_prompt: list[int], full_prompt: list[int] | None = None,
                 changed: asyncio.Event | None = None) -> None:
        self.plain = list(plain_prompt)
        self.full = list(full_prompt) if full_prompt is not None and full_prompt != self.plain else None
        self.changed = changed or asyncio.Event()
        self.lanes: list[Lane] = []
        self._by_task: dict[Any, Lane] = {}
        self._decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)

    @property
    def prompt_tokens(self) -> int:
        return len(self.full if self.full is not None else self.plain)

    @property
    def generated(self) -> int:
        return sum(lane.tokens for lane in self.lanes)

    def open(self, prompt_ids: list[int]) -> tuple[Lane, list[int]]:
        """The lane of the calling task for a new stream from ``prompt_ids``, and the ids to send."""
        task = asyncio.current_task()
        lane = self._by_task.get(task)
        if lane is None:
            lane = self._by_task[task] = Lane(len(self.lanes), self._decode)
            self.lanes.append(lane)
        n = len(self.plain)
        known = list(prompt_ids[:n]) == self.plain
        lane.restart(list(prompt_ids[n:]) if known else [])
        self.changed.set()
        send = self.full + list(prompt_ids[n:]) if known and self.full is not None else list(prompt_ids)
        return lane, send

    def counts(self) -> dict[str, int]:
        """How many lanes are in each state, and the tokens generated so far."""
        out = {"samples": len(self.lanes), "running": 0, "finished": 0, "aborted": 0}
        for lane in self.lanes:
            out[lane.state] += 1
        out["tokens"] = self.generated
        return out


class RaceEngine:
    """The server's engine as one controller run sees it; every other attribute is the engine's."""

    def __init__(self, engine: Any, race: Race) -> None:
        self._engine = engine
        self.race = race

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    async def stream(self, prompt_ids: list[int], params: SamplingParams, *,
                     request_id: str | None = None) -> AsyncIterator[Chunk]:
        lane, send = self.race.open(prompt_ids)
        finished = False
        try:
            async with aclosing(self._engine.stream(send, params, request_id=request_id)) as chunks:
                async for chunk in chunks:
                    lane.add(chunk.token_ids)
                    if chunk.finish_reason:
                        finished = True
                        lane.end(chunk.finish_reason)
                    self.race.changed.set()
                    yield chunk
        finally:
            if not finished:  # closed early by the controller (or the client went away): an abort
                lane.end("abort")
                self.race.changed.set()
