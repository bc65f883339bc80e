"""A scripted Engine for controller unit tests: exact, instant, no model.

Each request's text comes from a script; the engine emits it one token per step, every running
request in the same step (like a batched engine), so concurrent samples interleave exactly the
way they do on hf or vLLM and decisions are reproducible. It honours max_tokens, stop strings,
stop token ids, EOS and logprobs, counts what it decodes in `EngineStats`, and stops decoding a
request at the step after its stream is closed or its reader cancelled -- the step in flight
still counts one token after the abort, as on a real engine (``in_flight=False`` turns that off).

    engine = ScriptedEngine({0: ["<think>\\nso 7\\n</think>\\\\boxed{7}</s>"], 1: [...]})
    # script keys are seeds: the i-th request with seed s gets script[s][i] (the last one repeats)

A script string that runs out keeps emitting ``filler`` (a model that never stops). Characters in
``unsure`` get flat top-k log-probabilities (low DeepConf confidence), all others peaked ones.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

from ponder.controllers import Sampling
from ponder.engines.base import EngineStats, request_ids
from ponder.types import Chunk, Problem, SamplingParams
from ponder.verifiers import get_verifier

ABORT_SLACK = 2
"""Tokens an aborted request may have decoded beyond what reached its reader: the step in flight,
plus one already delivered to its queue whose reader was cancelled before it woke up to read it
(asyncio delivers the cancellation instead of the pending result). Seen under load in CI."""

SPECIAL = ["<pad>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<think>", "</think>", "\\boxed{"]
CHARS = list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \n")


class CharTokenizer:
    """The tiny reasoner's vocabulary: a few special tokens, then one token per character."""

    name_or_path = "scripted/tiny-reasoner"
    chat_template = None  # `render` then encodes the prompt text as is
    eos_token_id = 1
    pad_token_id = 0

    def __init__(self) -> None:
        self.vocab = SPECIAL + CHARS
        self.ids = {t: i for i, t in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out, i = [], 0
        while i < len(text):
            special = next((s for s in SPECIAL if text.startswith(s, i)), None)
            token = special or text[i]
            out.append(self.ids.get(token, 2))
            i += len(token)
        return out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(self.vocab[i] for i in ids if not (skip_special_tokens and self.vocab[i] in SPECIAL[:5]))

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.ids[token]


@dataclass(eq=False)
class _Request:
    id: str
    text: list[int]  # the scripted completion's token ids
    params: SamplingParams
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    out: list[int] = field(default_factory=list)
    aborted: bool = False
    finished: bool = False

    @property
    def alive(self) -> bool:
        return not (self.aborted or self.finished)


Script = dict | list | Callable[[str, SamplingParams], str]


class ScriptedEngine:
    """An Engine whose completions are written in advance.

    Args:
        script: ``{seed: [text of 1st request, 2nd, ...]}``, or a list (request i gets
            ``script[i]``, the last repeats), or ``fn(prompt_text, params) -> text``.
        step: seconds per decode step (every running request gets one token per step).
        filler: emitted forever once a script text is used up.
        unsure: characters decoded with low confidence (flat top-k log-probabilities).
        in_flight: count one token for a request aborted while a step was running.
    """

    name = "scripted"
    model_name = "scripted/tiny-reasoner"

    def __init__(self, script: Script, *, step: float = 0.002, filler: str = ".", unsure: str = "?",
                 in_flight: bool = True) -> None:
        self.tokenizer = CharTokenizer()
        self.script, self.step, self.unsure, self.in_flight = script, step, unsure, in_flight
        self.filler = self.tokenizer.encode(filler)[0]
        self.stats = EngineStats()
        self.calls: dict = {}  # requests served per seed (or in total for list scripts)
        self.requests: list[tuple[list[int], SamplingParams]] = []  # every (prompt, params) received
        self._running: list[_Request] = []
        self._task: asyncio.Task | None = None

    def _text(self, prompt: list[int], params: SamplingParams) -> str:
        if callable(self.script):
            return self.script(self.tokenizer.decode(prompt), params)
        key = params.seed if isinstance(self.script, dict) else None
        texts = self.script[key] if isinstance(self.script, dict) else self.script
        i = self.calls[key] = self.calls.get(key, -1) + 1
        return texts[min(i, len(texts) - 1)]

    async def stream(self, prompt_ids, params: SamplingParams, *, request_id: str | None = None):
        self.requests.append((list(prompt_ids), params))
        req = _Request(request_id or next(request_ids), self.tokenizer.encode(self._text(prompt_ids, params)), params)
        self.stats.requests += 1
        self._running.append(req)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            while True:
                chunk = await req.queue.get()
                yield chunk
                if chunk.finish_reason is not None:
                    return
        finally:
            if req.alive:  # the reader left early: abort; the loop drops it at the next step
                req.aborted = True
                self.stats.aborted_requests += 1

    def unfinished(self) -> int:
        return sum(r.alive for r in self._running)

    async def start(self) -> None:
        """Ready when made."""

    async def aclose(self) -> None:
        for r in self._running:
            r.aborted = True

    async def _run(self) -> None:
        while any(r.alive for r in self._running):
            batch = [r for r in self._running if r.alive]  # the step "in flight" covers these rows
            await asyncio.sleep(self.step)
            for req in batch:
                if req.aborted:  # aborted while the step ran: its token was computed anyway
                    if self.in_flight:
                        self.stats.count(req.id)
                        self.stats.tokens_after_abort += 1
                    continue
                self._deliver(req)
            self._running = [r for r in self._running if r.alive]

    def _deliver(self, req: _Request) -> None:
        tok = self.tokenizer
        pos = len(req.out)
        token = req.text[pos] if pos < len(req.text) else self.filler
        req.out.append(token)
        self.stats.count(req.id)
        p, finish, reason = req.params, None, None
        if token == tok.eos_token_id and not p.ignore_eos:
            finish = "stop"
        elif token in p.stop_token_ids:
            finish, reason = "stop", token
        elif p.stop and (hit := next((s for s in p.stop if s in tok.decode(req.out[-len(s) - 2:])), None)):
            finish, reason = "stop", hit
        elif len(req.out) >= p.max_tokens:
            finish = "length"
        lp, top = self._logprobs(token, p.logprobs)
        req.queue.put_nowait(Chunk((token,), lp, top, finish, reason))
        if finish:
            req.finished = True

    def _logprobs(self, token: int, k: int | None):
        if k is None:
            return None, None
        unsure = self.tokenizer.vocab[token] in self.unsure
        chosen, other = (-1.0, -1.5) if unsure else (-0.01, -10.0)
        if not k:
            return (chosen,), None
        top = {token: chosen}
        for alt in range(len(self.tokenizer)):
            if len(top) >= k:
                break
            top.setdefault(alt, other)
        return (chosen,), (top,)


# -- scenario helpers shared by the controller tests -------------------------------------------

PROBLEM = Problem("Compute 1+2", answer_kind="integer")
SEEDED = Sampling(temperature=0.6, seed=0, max_tokens=400)


def done(thinking: str, answer: str | None) -> str:
    """A complete tiny-reasoner completion (``answer`` None: an answer part with no number)."""
    tail = "\\boxed{" + answer + "}" if answer is not None else "no idea"
    return "<think>\n" + thinking + "\n</think>" + tail + "</s>"


async def solve(controller, engine):
    return await controller.run(PROBLEM, engine, verifier=get_verifier("integer"))
