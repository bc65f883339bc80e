"""Engine conformance: every engine (hf, vllm, openai; later the Ray pool) must pass all of these.

They run the embedded tiny reasoner, whose greedy traces end with EOS after ``\\boxed{N}``.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from ponder.engines import complete
from ponder.prompts import family_for, render
from ponder.types import SamplingParams

pytestmark = pytest.mark.timeout(900)

PROMPT = "Compute 110+057+004"


def prompt_ids(engine, text: str = PROMPT) -> list[int]:
    return render(engine.tokenizer, text, family_for(engine.tokenizer, engine.model_name))


async def settle(engine, seconds: float = 3.0) -> None:
    """Wait until the engine reports no unfinished request (aborts take effect asynchronously)."""
    for _ in range(int(seconds / 0.05)):
        if engine.unfinished() == 0:
            return
        await asyncio.sleep(0.05)


async def test_eos_finishes_with_stop(engine):
    c = await complete(engine, prompt_ids(engine), SamplingParams(max_tokens=400))
    assert c.finish_reason == "stop"
    assert c.token_ids[-1] == engine.tokenizer.eos_token_id
    text = engine.tokenizer.decode(c.token_ids)
    assert "</think>" in text and "\\boxed{" in text


async def test_max_tokens_finishes_with_length(engine):
    c = await complete(engine, prompt_ids(engine), SamplingParams(max_tokens=7))
    assert c.finish_reason == "length"
    assert len(c.token_ids) == 7


async def test_stop_string_and_stop_token(engine):
    ids = prompt_ids(engine)
    c = await complete(engine, ids, SamplingParams(max_tokens=400, stop=("answer is",)))
    assert c.finish_reason == "stop" and c.stop_reason == "answer is"
    text = engine.tokenizer.decode(c.token_ids)
    assert text.endswith("answer is") and text.count("answer is") == 1
    end_think = engine.tokenizer.convert_tokens_to_ids("</think>")
    c = await complete(engine, ids, SamplingParams(max_tokens=400, stop_token_ids=(end_think,)))
    assert c.finish_reason == "stop" and c.stop_reason == end_think
    assert c.token_ids[-1] == end_think and end_think not in c.token_ids[:-1]


async def test_exact_prefix_continuation(engine):
    ids = prompt_ids(engine)
    full = await complete(engine, ids, SamplingParams(max_tokens=400))
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


async def test_abort_stops_generation_and_engine_stays_healthy(engine):
    ids = prompt_ids(engine)
    params = SamplingParams(max_tokens=400, ignore_eos=True, temperature=0.7, seed=3)
    before = engine.stats.generated_tokens
    received = 0
    async with aclosing(engine.stream(ids, params)) as chunks:
        async for chunk in chunks:
            received += len(chunk.token_ids)
            if received >= 5:
                break  # leaving the block closes the stream: abort
    await settle(engine)
    assert engine.unfinished() == 0
    after_abort = engine.stats.generated_tokens
    # a remote engine (the Ray pool) may also have decoded tokens that were still on their way to
    # the reader when it left: at most one poll round trip's worth, which it declares
    in_transit = getattr(engine, "in_transit_tokens", 0)
    assert after_abort - before <= received + 1 + in_transit, "tokens were generated after the abort took effect"
    await asyncio.sleep(0.3)
    assert engine.stats.generated_tokens == after_abort
    # cancelling the task that reads a stream aborts too
    task = asyncio.create_task(complete(engine, ids, params))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle(engine)
    assert engine.unfinished() == 0
    c = await complete(engine, ids, SamplingParams(max_tokens=400))
    assert c.finish_reason == "stop"


async def test_seeded_sampling_is_reproducible(engine):
    ids = prompt_ids(engine)
    runs = [await complete(engine, ids, SamplingParams(max_tokens=80, temperature=1.0, seed=s)) for s in (11, 11, 12, 13)]
    assert runs[0].token_ids == runs[1].token_ids
    assert len({tuple(r.token_ids) for r in runs}) >= 2


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
