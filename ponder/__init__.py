"""ponder: control how much a reasoning model thinks at test time, and teach it to stop early.

    import ponder
    solution = ponder.solve("Compute 472+389")      # the embedded tiny reasoner on CPU
    print(solution.answer, solution.total_tokens)

Importing ponder loads no torch, vLLM or Ray; engines import them when they are made.
"""

from ponder.sdk import Solver, asolve, solve
from ponder.types import Chunk, Problem, SamplingParams, Solution, Trace

__all__ = ["solve", "asolve", "Solver", "Problem", "SamplingParams", "Solution", "Trace", "Chunk"]
__version__ = "0.1.0"
