"""Streaming answers as server-sent events, and stopping the work when the client goes away.

What a streaming client sees:

- **One sample per run** (``single``, ``budget_forcing``, or any controller with ``n=1``): the
  sample's thinking as ``reasoning`` / ``reasoning_content`` deltas and its answer as
  ``content`` deltas, as the tokens come. An end-of-thinking delimiter is held back until the
  next step shows whether budget forcing keeps it or replaces it by "Wait", so nothing sent is
  ever taken back.
- **Several samples** (``ffs``, ``majority``, ``deepconf``): the answer is known only when the
  controller decides, so the stream opens with the assistant role at once, then sends an SSE
  comment every ``progress_s`` while the samples race (``: ponder {"choice": 0, "samples": 8,
  "running": 5, "finished": 1, "aborted": 2, "tokens": 612}``; clients ignore comments, proxies
  see a live connection), then the chosen sample's whole thinking and answer as deltas.
- With ``ponder.lanes: true`` (the race page), chunks with an empty ``choices`` list and a
  ``ponder`` field also carry every sample's text as it grows
  (``{"choice", "lanes": [{"lane", "back", "text", "tokens", "state"}]}``: drop ``back``
  characters, append ``text``), and each run ends with its final lanes (``won``, ``finished``,
  ``aborted``; every lane is listed) and token accounting.
- Then a chunk with ``finish_reason``; with ``stream_options.include_usage`` a last chunk with
  ``usage`` (``usage.ponder`` included); then ``data: [DONE]``. A run that fails sends
  ``data: {"error": {...}}`` (the ``openai`` client raises it) and ends the stream.

    EventStream(events(work, job, cfg), on_disconnect=...)   # an ASGI response
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from os.path import commonprefix
from typing import Any, AsyncIterator, Callable

from ponder.serve.config import ServeConfig
from ponder.serve.protocol import Job, error_body
from ponder.serve.run import Run, Work
from ponder.serve.shapes import chunk, delta_choice, new_id, sse
from ponder.serve.text import chosen_trace

__all__ = ["events", "EventStream", "wait_for_disconnect"]


def _grow(sent: str, now: str) -> str:
    """What to send so a client holding ``sent`` holds ``now`` (text is never taken back)."""
    return now[len(sent):] if now.startswith(sent) else now[len(commonprefix([sent, now])):]


class _Choice:
    """What one run has streamed so far: the answer deltas and each lane's text."""

    def __init__(self, run: Run, job: Job) -> None:
        self.run, self.job = run, job
        self.reasoning = self.content = self.text = ""
        self.lanes: dict[int, tuple[str, int, str]] = {}  # lane -> (text, tokens, state) sent

    def deltas(self, raw: str, finish_reason: str | None = None, outcome: Any = None) -> list[dict[str, Any]]:
        """The choice delta that brings the client to ``raw`` (a sample's text), if any."""
        display = self.run.display
        reasoning, content, _ = display.split(raw)
        text = display.completion_text(raw, self.job.include_reasoning)
        pieces = dict(reasoning=_grow(self.reasoning, reasoning) if self.job.include_reasoning else "",
                      content=_grow(self.content, content), text=_grow(self.text, text))
        self.reasoning, self.content, self.text = reasoning, content, text
        if not any(pieces.values()) and finish_reason is None:
            return []
        return [delta_choice(self.job, self.run.choice, finish_reason=finish_reason, outcome=outcome, **pieces)]

    def live(self) -> list[dict[str, Any]]:
        lanes = self.run.race.lanes
        if not self.run.live or not lanes:
            return []
        return self.deltas(self.run.display.settled(lanes[0].text()))

    def final(self) -> list[dict[str, Any]]:
        outcome = self.run.outcome(self.job.include_reasoning)
        trace = chosen_trace(outcome.solution)
        return self.deltas(trace.text if trace is not None else "", outcome.finish_reason, outcome)

    def lane_events(self, final: bool = False) -> list[dict[str, Any]]:
        states = self._final_states() if final else {}
        out = []
        for lane in self.run.race.lanes:
            text, tokens, state = states.get(lane.index) or (lane.text(), lane.tokens, lane.state)
            text = self.run.display.clean(text)
            sent_text, sent_tokens, sent_state = self.lanes.get(lane.index, ("", 0, ""))
            if final or (text, tokens, state) != (sent_text, sent_tokens, sent_state):
                common = len(commonprefix([sent_text, text]))
                out.append({"lane": lane.index, "back": len(sent_text) - common, "text": text[common:],
                            "tokens": tokens, "state": state})
                self.lanes[lane.index] = (text, tokens, state)
        return out

    def _final_states(self) -> dict[int, tuple[str, int, str]]:
        """Lane i is trace i (samples start their first stream in launch order)."""
        solution = self.run.task.result()
        if len(solution.traces) != len(self.run.race.lanes):
            return {}
        chosen = chosen_trace(solution)
        return {i: (t.text, t.tokens, "won" if t is chosen or t.info.get("won") else
                    "aborted" if t.aborted else "finished") for i, t in enumerate(solution.traces)}

    def summary(self) -> dict[str, Any]:
        sol = self.run.task.result()
        return {"choice": self.run.choice, "done": True, "answer": sol.answer, "total_tokens": sol.total_tokens,
                "sequential_tokens": sol.sequential, "wasted_tokens": sol.wasted_tokens}


async def events(work: Work, job: Job, cfg: ServeConfig) -> AsyncIterator[str]:
    """The server-sent events of one streaming request (see the module docstring)."""
    rid, created = new_id(job)
    choices = [_Choice(run, job) for run in work.runs]
    if job.kind == "chat":
        yield chunk(job, rid, created, [delta_choice(job, c.run.choice, role=True) for c in choices])
    watch_tokens = job.lanes or any(c.run.live for c in choices)
    loop = asyncio.get_running_loop()
    next_note = loop.time() + cfg.progress_s
    while not work.done:
        if watch_tokens:
            try:
                await asyncio.wait_for(work.changed.wait(), timeout=cfg.progress_s)
            except TimeoutError:
                pass
            work.changed.clear()
        else:
            await asyncio.wait([r.task for r in work.runs], timeout=max(next_note - loop.time(), 0.0))
        out = []
        for c in choices:
            if job.lanes and (lanes := c.lane_events()):
                out.append(chunk(job, rid, created, [], ponder={"choice": c.run.choice, "lanes": lanes}))
            if c.run.live and (deltas := c.live()):
                out.append(chunk(job, rid, created, deltas))
        if loop.time() >= next_note and not work.done:
            next_note = loop.time() + cfg.progress_s
            out += [f": ponder {json.dumps({'choice': c.run.choice, **c.run.race.counts()})}\n\n"
                    for c in choices if not c.run.live]
        if out:
            yield "".join(out)
        if any(r.task.done() and not r.task.cancelled() and r.task.exception() for r in work.runs):
            break  # a run failed: the others are stopped and the client told
        if watch_tokens and not work.done:
            await asyncio.sleep(cfg.tick_s)  # let a few tokens gather into one event
    async for piece in _ending(work, job, choices, rid, created):
        yield piece


async def _ending(work: Work, job: Job, choices: list[_Choice], rid: str, created: int) -> AsyncIterator[str]:
    if any(r.task.cancelled() for r in work.runs):
        return  # the client went away
    failed = next((r.task.exception() for r in work.runs if r.task.exception() is not None), None)
    if failed is not None:
        await work.cancel()
        yield sse(error_body(f"generation failed: {failed!r}", "server_error", None, "server_error"))
        yield "data: [DONE]\n\n"
        return
    for c in choices:
        if job.lanes:
            yield chunk(job, rid, created, [], ponder={**c.summary(), "lanes": c.lane_events(final=True)})
        yield chunk(job, rid, created, c.final())
    if job.include_usage:
        yield chunk(job, rid, created, [], usage=work.usage())
    yield "data: [DONE]\n\n"


async def wait_for_disconnect(receive: Callable) -> None:
    """Return when the client has gone away (the request body must have been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream:
    """An ASGI response sending server-sent events; ``on_disconnect`` runs the moment the client
    goes away (the work is stopped at once, not when the next event would have been sent)."""

    def __init__(self, events: AsyncIterator[str], on_disconnect: Callable[[], Any],
                 on_close: Callable[[], Any] | None = None) -> None:
        self.events, self.on_disconnect, self.on_close = events, on_disconnect, on_close

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no")]
        finished = False  # uvicorn also says "disconnect" once the response is complete

        def gone(task: asyncio.Task) -> None:
            if not task.cancelled() and not finished:
                self.on_disconnect()

        watcher = asyncio.create_task(wait_for_disconnect(receive))
        watcher.add_done_callback(gone)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async with aclosing(self.events) as pieces:
                async for piece in pieces:
                    await send({"type": "http.response.body", "body": piece.encode(), "more_body": True})
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # uvicorn's ClientDisconnected: the watcher has seen it too
            pass
        finally:
            watcher.cancel()
            if self.on_close is not None:
                await self.on_close()
