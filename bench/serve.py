"""Load on ``ponder serve``: concurrent OpenAI clients against the same work through the Python SDK.

64 concurrent requests from ``openai.AsyncOpenAI`` (FFS@4 on the tiny reasoner, one arith problem
each, seeded) to a real ``ponder serve`` process on 127.0.0.1, and the same 64 problems with the
same seeds as 64 concurrent ``ponder.Solver.asolve`` calls, in the same run. Both engines live in
child processes started the same way (the SDK's is ``python bench/serve.py --sdk-worker``); this
process is only the client and loads no model.

- **Alternating rounds** (SDK then server, server then SDK, ...): requests/s, p50/p95 latency,
  tokens/s, CPU seconds per request (the engine's process, plus the client for the server) and
  errors of each path on its own.
- **Head-to-head rounds**: both bursts start together and share the machine, so the load other
  jobs put on it changes both alike; the ratio of their completion times is the server's
  throughput relative to the SDK's under the same conditions.

The goal is server throughput >= 0.9x the SDK's; both ratios are printed (per round and median)
and written with the table to ``bench/results/serve.txt``.

    python bench/serve.py [--requests 64] [--n 4] [--rounds 4] [--head-to-head 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openai
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ponder.benchmarks.arith import problems  # noqa: E402
sys.path.insert(0, str(ROOT / "tests"))
from serve_process import ServeProcess  # noqa: E402  (the tests' helper: a real `ponder serve` on a free port)

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


async def through_sdk(solver, prompts: list[str], n: int, answer_kind: str) -> dict:
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
    errors = [repr(r[2]) for r in results if isinstance(r[2], Exception)]
    return {"wall": wall, "requests": len(results), "tokens": sum(r[1] for r in results), "errors": len(errors),
            "first_error": errors[0] if errors else None, "latencies": latencies}


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


def report(rows: dict[str, list[dict]], h2h: list[tuple[dict, dict]], args) -> tuple[Table, str]:
    sdk, server = _merge(rows["sdk"]), _merge(rows["server"])
    base = sdk["requests"] / sdk["wall"]
    table = Table(title=f"{args.requests} concurrent FFS@{args.n} requests x {args.rounds} alternating rounds, "
                        f"tiny reasoner, hf engine, 127.0.0.1")
    for col in ("path", "requests/s", "vs SDK", "p50 s", "p95 s", "tokens", "tok/s", "CPU s/request", "errors"):
        table.add_column(col, justify="right")
    for name, row in (("Python SDK (Solver.asolve)", sdk), ("ponder serve + openai.AsyncOpenAI", server)):
        rps = row["requests"] / row["wall"]
        table.add_row(name, f"{rps:.2f}", f"{rps / base:.2f}x", f"{_p(row['latencies'], 50):.2f}",
                      f"{_p(row['latencies'], 95):.2f}", str(row["tokens"]), f"{row['tokens'] / row['wall']:.0f}",
                      f"{row['cpu'] / row['requests']:.3f}", str(row["errors"]))
    alternating = [(b["requests"] / b["wall"]) / (a["requests"] / a["wall"])
                   for a, b in zip(rows["sdk"], rows["server"])]
    together = [a["wall"] / b["wall"] for a, b in h2h]
    errors = server["errors"] + sum(b["errors"] for _, b in h2h)

    def listed(ratios: list[float]) -> str:
        return f"{', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x"

    goal = ""
    if together:
        met = statistics.median(together) >= GOAL and errors == 0
        goal = f" (goal >= {GOAL}x: {'met' if met else 'NOT met'})"
    lines = [f"server/SDK throughput, head-to-head rounds: {listed(together)}{goal}" if together else "",
             f"server/SDK throughput, alternating rounds (each path alone; other jobs' load changes between "
             f"rounds): {listed(alternating)}",
             f"CPU per request, server process + client vs the SDK's process: {server['cpu'] / sdk['cpu']:.2f}x; "
             f"server errors: {errors} of {server['requests'] + sum(b['requests'] for _, b in h2h)} requests"]
    return table, "\n".join(line for line in lines if line)


def sdk_worker(args) -> None:
    """The SDK side, in its own process: one burst per line on stdin, one JSON row per burst on stdout."""
    from ponder.sdk import Solver

    prompts = [p.prompt for p in problems(args.requests, seed=5)]
    with Solver() as solver:
        asyncio.run(through_sdk(solver, prompts[:2], args.n, args.answer_kind))  # warm up
        print(json.dumps({"ready": True}), flush=True)
        for _ in sys.stdin:
            cpu = _cpu()
            row = asyncio.run(through_sdk(solver, prompts, args.n, args.answer_kind))
            print(json.dumps({**row, "cpu": _cpu() - cpu}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    ap.add_argument("--head-to-head", type=int, default=5, help="rounds with both bursts at once")
    ap.add_argument("--answer-kind", default="integer")
    ap.add_argument("--sdk-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sdk_worker:
        return sdk_worker(args)
    prompts = [p.prompt for p in problems(args.requests, seed=5)]
    rows: dict[str, list[dict]] = {"sdk": [], "server": []}
    h2h: list[tuple[dict, dict]] = []
    worker = subprocess.Popen([sys.executable, __file__, "--sdk-worker", *sys.argv[1:]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    async def server_burst() -> dict:
        cpu = _cpu() + _cpu(server.proc.pid)
        row = await through_server(server.base_url, prompts, args.n, args.answer_kind)
        row["cpu"] = _cpu() + _cpu(server.proc.pid) - cpu
        _say(row, "server", server)
        return row

    async def sdk_burst() -> dict:
        worker.stdin.write("go\n")
        worker.stdin.flush()
        row = json.loads(await asyncio.to_thread(worker.stdout.readline))
        _say(row, "sdk", server)
        return row

    async def together() -> tuple[dict, dict]:
        return tuple(await asyncio.gather(sdk_burst(), server_burst()))

    with ServeProcess(["--answer-kind", args.answer_kind, "--log-level", "warning"]) as server, worker:
        asyncio.run(through_server(server.base_url, prompts[:2], args.n, args.answer_kind))  # warm up
        assert json.loads(worker.stdout.readline()).get("ready"), "the SDK worker did not start"
        for r in range(args.rounds):
            for name in ("sdk", "server") if r % 2 == 0 else ("server", "sdk"):
                rows[name].append(asyncio.run(sdk_burst() if name == "sdk" else server_burst()))
        for _ in range(args.head_to_head):
            print("head-to-head:", flush=True)
            h2h.append(asyncio.run(together()))
    table, verdict = report(rows, h2h, args)
    console = Console(record=True, width=130)
    console.print(table)
    console.print(verdict)
    out = ROOT / "bench" / "results" / "serve.txt"
    out.write_text(console.export_text())
    print(f"wrote {out.relative_to(ROOT)}")


def _say(row: dict, name: str, server: ServeProcess) -> None:
    errors = f" (first: {row['first_error']}; server alive: {server.alive()})" if row["errors"] else ""
    print(f"  {name}: {row['requests'] / row['wall']:.2f} req/s, {row['errors']} errors{errors}", flush=True)


if __name__ == "__main__":
    main()
