"""The eval runner's own overhead (scheduling, verification, row building, fsynced writes, progress bar)
as a fraction of engine time, on `arith` with the tiny reasoner and the hf engine.

Two passes over the same problems with the same controller, seed and concurrency on one engine:
``bare`` only awaits ``controller.run`` for each problem (the engine time), ``runner`` is
``ponder.eval.run_eval`` into a fresh run directory. Printed: both wall times, their relative
difference (noisy on a shared machine: either sign is possible), and the time the runner spent in
its own code (measured inside it), which bounds what it can have added. No asserts.

    .venv/bin/python bench/eval_overhead.py                     # 500 problems, concurrency 64
    .venv/bin/python bench/eval_overhead.py --problems 100 --controller majority --option n=4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.controllers import get_controller  # noqa: E402
from ponder.eval import RunConfig, load_problems, run_eval  # noqa: E402
from ponder.eval.runner import build_engine  # noqa: E402
from ponder.verifiers import get_verifier  # noqa: E402


async def bare(problems, controller, engine, concurrency: int) -> tuple[float, int]:
    """Wall seconds and total tokens of the controller alone over the problems (bounded concurrency)."""
    verifier = get_verifier("integer")
    queue = list(reversed(problems))
    tokens = 0

    async def worker() -> None:
        nonlocal tokens
        while queue:
            solution = await controller.run(queue.pop(), engine, verifier=verifier)
            tokens += solution.total_tokens

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, tokens


async def main(args: argparse.Namespace) -> None:
    options = {"seed": 0, **{k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}}
    problems = load_problems("arith", limit=args.problems)
    controller = get_controller(args.controller, **options)
    engine = await build_engine(args.engine)
    try:
        await bare(problems[:16], controller, engine, 16)  # warm-up
        bares, runs = [], []
        for _ in range(args.repeat):  # interleaved, so that load from other processes hits both alike
            bares.append(await bare(problems, controller, engine, args.concurrency))
            with tempfile.TemporaryDirectory() as tmp:
                config = RunConfig(out=f"{tmp}/run", limit=args.problems, controller=args.controller,
                                   options=options, engine=args.engine, concurrency=args.concurrency)
                runs.append(await run_eval(config, problems, engine, progress=not args.no_progress))
    finally:
        await engine.aclose()
    print(f"problems {len(problems)}  controller {args.controller} {options}  engine {args.engine}  "
          f"concurrency {args.concurrency}  repeats {args.repeat} (best of each shown)")
    t_bare, tok_bare = min(bares)
    result = min(runs, key=lambda r: r.wall_s)
    tok_run = sum(r["total_tokens"] for r in result.rows)
    print(f"bare controller.run : {t_bare:7.2f} s  {tok_bare} tokens  {tok_bare / t_bare:.0f} tok/s   "
          f"(all: {', '.join(f'{t:.2f}' for t, _ in bares)})")
    print(f"ponder.eval runner  : {result.wall_s:7.2f} s  {tok_run} tokens  {tok_run / result.wall_s:.0f} tok/s   "
          f"(all: {', '.join(f'{r.wall_s:.2f}' for r in runs)})")
    print(f"wall-time overhead  : {100 * (result.wall_s - t_bare) / t_bare:+.2f}% of engine time (noisy)")
    print(f"runner's own code   : {result.runner_s:.3f} s = {100 * result.runner_s / t_bare:.2f}% of engine time "
          f"({1000 * result.runner_s / len(problems):.2f} ms per problem: verify, row, write+fsync, progress)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--controller", default="single")
    parser.add_argument("--option", action="append", default=[], help="controller option KEY=JSON_VALUE")
    parser.add_argument("--engine", default="hf")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved bare/runner pass pairs")
    parser.add_argument("--no-progress", action="store_true")
    asyncio.run(main(parser.parse_args()))
