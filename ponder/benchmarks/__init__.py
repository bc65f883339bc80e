"""Problem loading, below the wings: eval and rl both load problems from here.

    from ponder.benchmarks import load_problems
    load_problems("arith", limit=2)                 # the built-in held-out set (offline)
    load_problems("aime24")                         # the hub (or --data FILE in the dataset's schema)
    load_problems(None, data="my_problems.jsonl")   # ponder's own schema

Modules: ``registry`` (benchmarks by name and their loaders), ``data`` (local files, ponder's
schema, row-level errors), ``arith`` (the built-in arithmetic task and the tiny reasoner's traces).
"""

from ponder.benchmarks.data import DataError, load_ponder_file
from ponder.benchmarks.registry import BENCHMARKS, Benchmark, HubError, get_benchmark, load_problems, shuffle_choices

__all__ = ["BENCHMARKS", "Benchmark", "HubError", "DataError", "get_benchmark", "load_problems", "load_ponder_file",
           "shuffle_choices"]
