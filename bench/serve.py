"""Load on ``ponder serve``: concurrent OpenAI clients against the same work through the Python SDK.

64 concurrent requests from ``openai.AsyncOpenAI`` (FFS@4 on the tiny reasoner, one arith problem
each, seeded) to a real ``ponder serve`` process on 127.0.0.1, and the same 64 problems with the
same seeds through ``ponder.Solver.asolve`` in this process, in the same run, interleaved over
``--rounds`` (SDK then server, server then SDK, ...). Prints requests/s, p50/p95 latency,
tokens/s, CPU seconds per request (the server process plus the client, against this process for
the SDK) and errors for both, and writes ``bench/results/serve.txt``.

The goal is server throughput >= 0.9x the SDK's. On a machine shared with other jobs the load
changes from minute to minute, so each round pairs an SDK run with a server run next to it in
time, and the verdict is the median of the per-round ratios; the CPU-time ratio, which other
jobs disturb much less, shows whether the server itself costs anything.

    python bench/serve.py [--requests 64] [--n 4] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
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


def _cpu(pid: int | None = None) -> float:
    """CPU seconds used so far by this process (or by process ``pid``)."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1]


def _merge(rows: list[dict]) -> dict:
    return {"wall": sum(r["wall"] for r in rows), "requests": sum(r["requests"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows), "errors": sum(r["errors"] for r in rows),
            "cpu": sum(r["cpu"] for r in rows), "latencies": sorted(x for r in rows for x in r["latencies"])}


def report(rows: dict[str, list[dict]], args) -> tuple[Table, str]:
    sdk, server = _merge(rows["sdk"]), _merge(rows["server"])
    base = sdk["requests"] / sdk["wall"]
    table = Table(title=f"{args.requests} concurrent FFS@{args.n} requests x {args.rounds} rounds, tiny reasoner, "
                        f"hf engine, 127.0.0.1")
    for col in ("path", "requests/s", "vs SDK", "p50 s", "p95 s", "tokens", "tok/s", "CPU s/request", "errors"):
        table.add_column(col, justify="right")
    for name, row in (("Python SDK (in process)", sdk), ("ponder serve + openai.AsyncOpenAI", server)):
        rps = row["requests"] / row["wall"]
        table.add_row(name, f"{rps:.2f}", f"{rps / base:.2f}x", f"{_p(row['latencies'], 50):.2f}",
                      f"{_p(row['latencies'], 95):.2f}", str(row["tokens"]), f"{row['tokens'] / row['wall']:.0f}",
                      f"{row['cpu'] / row['requests']:.3f}", str(row["errors"]))
    paired = [(b["requests"] / b["wall"]) / (a["requests"] / a["wall"]) for a, b in zip(rows["sdk"], rows["server"])]
    ratio = statistics.median(paired)
    met = "met" if ratio >= GOAL and server["errors"] == 0 else "NOT met"
    verdict = (f"server/SDK throughput per round: {', '.join(f'{r:.2f}x' for r in paired)}; median {ratio:.2f}x, "
               f"all rounds together {server['requests'] / server['wall'] / base:.2f}x (goal >= {GOAL}x: {met})\n"
               f"CPU per request, server process + client vs SDK process: {server['cpu'] / sdk['cpu']:.2f}x; "
               f"server errors: {server['errors']} of {server['requests']} requests")
    return table, verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
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
                cpu = _cpu() + (_cpu(server.proc.pid) if name == "server" else 0.0)
                row = asyncio.run(run)
                row["cpu"] = _cpu() + (_cpu(server.proc.pid) if name == "server" else 0.0) - cpu
                rows[name].append(row)
                print(f"round {r + 1} {name}: {row['requests'] / row['wall']:.2f} req/s, {row['errors']} errors",
                      flush=True)
    table, verdict = report(rows, args)
    console = Console(record=True, width=130)
    console.print(table)
    console.print(verdict)
    out = ROOT / "bench" / "results" / "serve.txt"
    out.write_text(console.export_text())
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
