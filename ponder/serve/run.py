"""Running one request: a controller run per choice on the server's engine, each in its own task,
watched lane by lane (lanes.py), and shaped into OpenAI choices and ``usage`` when done.

The SDK's pattern, once per choice: ``job.controller_for(choice).run(Problem(...), engine,
verifier=get_verifier(kind))``. Cancelling a run's task cancels its controller, whose samples'
streams close, which aborts them inside the engine.

    work = Work(job, engine, get_verifier(job.answer_kind))
    await work.wait()
    work.outcomes(), work.usage()
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ponder.prompts import family_for, render
from ponder.serve.lanes import Race, RaceEngine
from ponder.serve.protocol import Job, RequestError
from ponder.serve.text import Display, chosen_trace
from ponder.types import Problem, Solution

__all__ = ["Work", "Run", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """One choice's answer, shaped for the response."""

    index: int
    """The choice's index in the response."""
    reasoning: str
    """The chosen sample's thinking."""
    content: str
    """The chosen sample's answer part (after the thinking), cut at the client's stop strings."""
    text: str
    """The whole completion (``/v1/completions``): thinking, delimiter and answer."""
    finish_reason: str
    """``stop`` or ``length``, as OpenAI means them."""
    solution: Solution
    """What the controller returned."""


class Run:
    """One controller run (one choice) of a request; it starts when made."""

    def __init__(self, job: Job, choice: int, prompt_index: int, engine: Any, changed: asyncio.Event,
                 verifier: Any) -> None:
        tok, prompt = engine.tokenizer, job.prompts[prompt_index]
        self.choice, self.prompt_index = choice, prompt_index
        self.family = family_for(tok, engine.model_name, getattr(engine, "family", None))
        plain = render(tok, prompt, self.family)
        full = render(tok, prompt, self.family, system=job.system) if job.system else None
        self.race = Race(tok, plain, full, changed)
        context = getattr(engine, "max_model_len", None)
        if isinstance(context, int) and self.race.prompt_tokens >= context:
            raise RequestError(f"the prompt has {self.race.prompt_tokens} tokens; the model's context is {context}",
                               "messages" if job.kind == "chat" else "prompt", "context_length_exceeded")
        self.controller = job.controller_for(choice)
        self.live = getattr(self.controller, "n", 1) == 1
        """One sample per run: its tokens can be streamed as they come (it is the answer)."""
        self.display = Display(tok, self.family, job.stop)
        problem = Problem(prompt, answer_kind=job.answer_kind)
        self.task = asyncio.create_task(self.controller.run(problem, RaceEngine(engine, self.race), verifier=verifier))
        self.task.add_done_callback(lambda _: changed.set())

    def outcome(self, include_reasoning: bool = True) -> Outcome:
        """The finished run as a choice (the run must be done)."""
        solution = self.task.result()
        trace = chosen_trace(solution)
        raw = trace.text if trace is not None else ""
        reasoning, content, cut = self.display.split(raw)
        text = self.display.completion_text(raw, include_reasoning)
        length = trace is not None and trace.finish_reason == "length" and not cut
        return Outcome(self.choice, reasoning if include_reasoning else "", content, text,
                       "length" if length else "stop", solution)


class Work:
    """Every controller run of one request, all started at once."""

    def __init__(self, job: Job, engine: Any, verifier: Any) -> None:
        self.job = job
        self.changed = asyncio.Event()
        self.runs: list[Run] = []
        try:
            for choice, prompt_index in job.runs():
                self.runs.append(Run(job, choice, prompt_index, engine, self.changed, verifier))
        except BaseException:
            for run in self.runs:
                run.task.cancel()
            raise

    @property
    def done(self) -> bool:
        return all(r.task.done() for r in self.runs)

    async def wait(self) -> None:
        """Until every run is done; the first failure cancels the others and is raised."""
        try:
            await asyncio.gather(*(r.task for r in self.runs))
        finally:
            if not self.done:
                await self.cancel()

    async def cancel(self) -> None:
        """Stop every run now: their samples are aborted inside the engine."""
        for run in self.runs:
            run.task.cancel()
        await asyncio.gather(*(r.task for r in self.runs), return_exceptions=True)

    def outcomes(self) -> list[Outcome]:
        return [r.outcome(self.job.include_reasoning) for r in self.runs]

    def usage(self) -> dict[str, Any]:
        """OpenAI's usage, where completion tokens are every token generated (aborted samples and
        tokens decoded after an abort included), plus ponder's own accounting."""
        sols = [r.task.result() for r in self.runs]
        prompt = sum({r.prompt_index: r.race.prompt_tokens for r in self.runs}.values())
        completion = sum(s.total_tokens + s.wasted_tokens for s in sols)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": sum(t.thinking_tokens for s in sols for t in s.traces)},
            "ponder": {
                "sequential_tokens": max((s.sequential for s in sols), default=0),
                "wasted_tokens": sum(s.wasted_tokens for s in sols),
                "samples": sum(len(s.traces) for s in sols),
                "aborted": sum(t.aborted for s in sols for t in s.traces),
                "controller": self.job.controller,
            },
        }

    def partial(self) -> dict[str, int]:
        """What the runs had generated, how many samples they had and how many were aborted
        (for a cancelled request)."""
        lanes = [lane for r in self.runs for lane in r.race.lanes]
        return {"tokens": sum(lane.tokens for lane in lanes), "samples": len(lanes),
                "aborted": sum(lane.state == "aborted" for lane in lanes)}
