"""Engine benchmark: decode throughput at batch 1 and 16, and abort latency, for every engine.

All engines serve the embedded tiny reasoner in one run (the OpenAI engine talks to a vLLM server
started on loopback; ``ray`` is a 2-actor pool of hf engines), and each figure is also printed as
a ratio to the hf engine measured in the same run, because absolute numbers on a shared 2-core
machine are noisy. The abort figures come from the engines' own counts: ms from closing a stream
until the *engine* holds no request (vLLM's engine core, the vLLM server's ``/metrics``, the Ray
actor's engine; not the client's stream), and the tokens it decoded beyond what the reader got.
FFS waste per engine: bench/waste.py.

    python bench/engines.py [--engines hf,vllm,openai,ray] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import aclosing

from pathlib import Path

from ponder.engines import complete, make_engine
from ponder.prompts import family_for, render
from ponder.types import SamplingParams


async def throughput(engine, ids: list[int], batch: int, tokens: int) -> float:
    params = [SamplingParams(max_tokens=tokens, temperature=0.7, seed=i, ignore_eos=True) for i in range(batch)]
    await complete(engine, ids, params[0].replace(max_tokens=8))  # warm-up
    start = time.perf_counter()
    outs = await asyncio.gather(*(complete(engine, ids, p) for p in params))
    return sum(len(o.token_ids) for o in outs) / (time.perf_counter() - start)


async def abort_latency(engine, ids: list[int], trials: int = 5) -> tuple[float, float]:
    """Mean (ms from closing the stream until the engine holds no request, tokens decoded after the abort)."""
    times, extra = [], []
    for t in range(trials):
        params = SamplingParams(max_tokens=400, temperature=0.7, seed=100 + t, ignore_eos=True)
        received, before = 0, engine.stats.generated_tokens
        async with aclosing(engine.stream(ids, params)) as chunks:
            async for chunk in chunks:
                received += len(chunk.token_ids)
                if received >= 20:
                    start = time.perf_counter()
                    break
        while engine.unfinished():  # the engine's own count (vLLM core, server metrics, actor)
            await asyncio.sleep(0.001)
        times.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(0.2)  # let any in-flight step land in the engine's counters
        extra.append(engine.stats.generated_tokens - before - received)
    return sum(times) / trials, sum(extra) / trials


async def bench_engine(kind: str, tokens: int, server_url: str | None) -> dict:
    engine = make_engine(kind, **({"base_url": server_url} if kind == "openai" else {}))
    if kind == "vllm":
        await engine.start()
    ids = render(engine.tokenizer, "Compute 110+057+004", family_for(engine.tokenizer, engine.model_name))
    row = {"batch1": await throughput(engine, ids, 1, tokens), "batch16": await throughput(engine, ids, 16, tokens)}
    row["abort_ms"], row["abort_tokens"] = await abort_latency(engine, ids)
    row["engine_side"] = engine.stats.engine_side
    await engine.aclose()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="hf,vllm,openai,ray")
    ap.add_argument("--tokens", type=int, default=200, help="tokens per request")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "engines.md"))
    args = ap.parse_args()
    kinds = args.engines.split(",")
    server = None
    if "openai" in kinds:
        from ponder.engines.server import VLLMServer

        server = VLLMServer().start()
    try:
        rows = {k: asyncio.run(bench_engine(k, args.tokens, server and server.base_url)) for k in kinds}
    finally:
        if server:
            server.stop()
    base = rows.get("hf") or next(iter(rows.values()))
    lines = [f"engines on the tiny reasoner ({args.tokens} tokens per request; ratios vs hf, same run)", "",
             "| engine | batch 1 tok/s | batch 16 tok/s | abort: ms until the engine holds no request | "
             "tokens decoded after the reader left | engine-side counts |", "|---|---|---|---|---|---|"]
    for kind, r in rows.items():
        lines.append(f"| {kind} | {r['batch1']:.0f} ({r['batch1'] / base['batch1']:.2f}x) | "
                     f"{r['batch16']:.0f} ({r['batch16'] / base['batch16']:.2f}x) | {r['abort_ms']:.1f} | "
                     f"{r['abort_tokens']:.1f} | {r['engine_side']} |")
    print("\n".join(lines))
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
