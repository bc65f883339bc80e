"""Load on ``ponder serve``: concurrent OpenAI clients against the same work through the Python SDK.

64 concurrent requests from ``openai.AsyncOpenAI`` (FFS@4 on the tiny reasoner, one arith problem
each, seeded) to a real ``ponder serve`` process on 127.0.0.1, and the same 64 problems with the
same seeds through ``ponder.Solver.asolve`` in this process, in the same run, interleaved over
``--rounds``. Prints requests/s, p50/p95 latency, tokens/s and errors for both, the server's
throughput as a ratio of the SDK's (goal: >= 0.9x), and writes ``bench/results/serve.txt``.

    python bench/serve.py [--requests 64] [--n 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ponder.benchmarks.arith import problems  # noqa: E402
from ponder.sdk import Solver  # noqa: E402
from ponder.serve.process import ServeProcess  # noqa: E402

GOAL = 0.9


async def through_server(base_url: str, prompts: list[str], n: int, answer_kind: str) -> dict:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=600) as client:
        async def one(i: int, prompt: str):
            start = time.perf_counter()
            try:
                r = await client.chat.completions.create(
                    model="tiny-reasoner", messages=[{"role": "user", "content": prompt}], seed=1000 * i,
                    extra_body={"ponder": {"controller": "ffs", "n": n, "answer_kind": answer_kind}})
                return time.perf_counter() - start, r.usage.completion_tokens, r.choices[0].message.content
            except openai.OpenAIError as exc:
                return time.perf_counter() - start, 0, exc

        return await _measure([one(i, p) for i, p in enumerate(prompts)])


async def through_sdk(solver: Solver, prompts: list[str], n: int, answer_kind: str) -> dict:
    async def one(i: int, prompt: str):
        start = time.perf_counter()
        try:
            sol = await solver.asolve(prompt, "ffs", n=n, seed=1000 * i, answer_kind=answer_kind)
            return time.perf_counter() - start, sol.total_tokens + sol.wasted_tokens, sol.answer
        except Exception as exc:  # counted as an error, like the server's
            return time.perf_counter() - start, 0, exc

    return await _measure([one(i, p) for i, p in enumerate(prompts)])


async def _measure(calls) -> dict:
    start = time.perf_counter()
    results = await asyncio.gather(*calls)
    wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    return {"wall": wall, "requests": len(results), "tokens": sum(r[1] for r in results),
            "errors": sum(isinstance(r[2], Exception) for r in results), "latencies": latencies}


def _p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1]


def _merge(rows: list[dict]) -> dict:
    return {"wall": sum(r["wall"] for r in rows), "requests": sum(r["requests"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows), "errors": sum(r["errors"] for r in rows),
            "latencies": sorted(x for r in rows for x in r["latencies"])}


def report(sdk: dict, server: dict, args) -> tuple[Table, str]:
    base = sdk["requests"] / sdk["wall"]
    table = Table(title=f"{args.requests} concurrent FFS@{args.n} requests x {args.rounds} rounds, tiny reasoner, "
                        f"hf engine, 127.0.0.1")
    for col in ("path", "requests/s", "vs SDK", "p50 s", "p95 s", "tokens", "tok/s", "errors"):
        table.add_column(col, justify="right")
    for name, row in (("Python SDK (in process)", sdk), ("ponder serve + openai.AsyncOpenAI", server)):
        rps = row["requests"] / row["wall"]
        table.add_row(name, f"{rps:.2f}", f"{rps / base:.2f}x", f"{_p(row['latencies'], 50):.2f}",
                      f"{_p(row['latencies'], 95):.2f}", str(row["tokens"]), f"{row['tokens'] / row['wall']:.0f}",
                      str(row["errors"]))
    ratio = server["requests"] / server["wall"] / base
    met = "met" if ratio >= GOAL and server["errors"] == 0 else "NOT met"
    verdict = f"server throughput {ratio:.2f}x the SDK's (goal >= {GOAL}x: {met}); server errors: {server['errors']}"
    return table, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--answer-kind", default="integer")
    args = ap.parse_args()
    prompts = [p.prompt for p in problems(args.requests, seed=5)]
    rows: dict[str, list[dict]] = {"sdk": [], "server": []}
    with ServeProcess(["--answer-kind", args.answer_kind, "--log-level", "warning", "--max-samples", str(args.n)]) \
            as server, Solver() as solver:
        asyncio.run(through_server(server.base_url, prompts[:2], args.n, args.answer_kind))  # warm both up
        asyncio.run(through_sdk(solver, prompts[:2], args.n, args.answer_kind))
        for r in range(args.rounds):
            for name in ("sdk", "server") if r % 2 == 0 else ("server", "sdk"):
                run = (through_sdk(solver, prompts, args.n, args.answer_kind) if name == "sdk"
                       else through_server(server.base_url, prompts, args.n, args.answer_kind))
                rows[name].append(asyncio.run(run))
                row = rows[name][-1]
                print(f"round {r + 1} {name}: {row['requests'] / row['wall']:.2f} req/s, {row['errors']} errors",
                      flush=True)
    table, verdict = report(_merge(rows["sdk"]), _merge(rows["server"]), args)
    console = Console(record=True, width=130)
    console.print(table)
    console.print(verdict)
    out = ROOT / "bench" / "results" / "serve.txt"
    out.write_text(console.export_text())
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
