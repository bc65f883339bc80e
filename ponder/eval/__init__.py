"""Evaluation: a resumable runner, metrics and reports behind ``ponder eval``.

    ponder eval --controller ffs -n 8 --limit 16 --out runs/ffs8   # arith, tiny reasoner, hf engine
    ponder eval report runs/ffs8 runs/single

    import asyncio
    from ponder.eval import RunConfig, evaluate, load_problems
    summary = asyncio.run(evaluate(RunConfig(out="runs/single", limit=16)))

Modules: ``runner`` (concurrency, resume), ``store`` (run directory, fsynced JSONL), ``metrics``,
``report`` (tables, plots), ``progress``. Problems come from `ponder.benchmarks` (re-exported
here); the command is `ponder.cli.eval`. Nothing here imports torch or vllm at module level.
"""

from ponder.benchmarks import (BENCHMARKS, Benchmark, DataError, HubError, get_benchmark, load_ponder_file,
                               load_problems, shuffle_choices)
from ponder.eval.metrics import majority_at_k, pass_at_k, summarize, wilson
from ponder.eval.report import compare, finish_run, summarize_run
from ponder.eval.runner import RunAborted, RunConfig, RunResult, build_engine, evaluate, run_eval
from ponder.eval.store import RunDirError, read_results

__all__ = ["BENCHMARKS", "Benchmark", "HubError", "get_benchmark", "load_problems", "shuffle_choices", "DataError",
           "load_ponder_file", "majority_at_k", "pass_at_k", "summarize", "wilson", "compare", "finish_run",
           "summarize_run", "RunAborted", "RunConfig", "RunResult", "build_engine", "evaluate", "run_eval",
           "RunDirError", "read_results"]
