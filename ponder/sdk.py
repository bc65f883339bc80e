"""The Python face of ponder: `solve()` one problem with a named controller, sync or async.

    import ponder
    sol = ponder.solve("Compute 472+389")                        # tiny reasoner, hf engine
    with ponder.Solver(model="Qwen/Qwen3-8B", engine="vllm") as s:  # keeps the engine warm
        sol = s.solve(problem, controller="single", temperature=0.6)

A `Solver` runs its engine on a private event loop in a background thread, so the sync calls
work anywhere, inside Jupyter's running loop included.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ponder.controllers import get_controller
from ponder.types import AnswerKind, Problem, Solution

__all__ = ["Solver", "solve", "asolve", "as_problem"]


def as_problem(problem: str | Problem, answer_kind: AnswerKind = "math", gold: str | None = None) -> Problem:
    return problem if isinstance(problem, Problem) else Problem(problem, gold=gold, answer_kind=answer_kind)


async def _run(problem: Problem, engine: Any, controller: str, verifier: Any, options: dict[str, Any]) -> Solution:
    from ponder.verifiers import get_verifier, judge

    ctrl = get_controller(controller, **options)
    verifier = verifier or get_verifier(problem.answer_kind)
    solution = await ctrl.run(problem, engine, verifier=verifier)
    if problem.gold is not None:
        solution.correct = judge(solution, problem.gold, verifier)
    return solution


class Solver:
    """An engine kept warm across calls.

    Args:
        model: path or hub id (default: the embedded tiny reasoner).
        engine: ``hf``, ``vllm`` or ``openai``, or an Engine object.
        ray: serve ``engine`` from a Ray actor pool, e.g. ``{"actors": 4, "address": "auto"}``
            (see `ponder.engines.ray.RayPool` for every option).
        engine_options: passed to the engine's constructor (e.g. ``base_url`` for openai).
    """

    def __init__(self, model: str | None = None, engine: str | Any = "hf", *, ray: dict[str, Any] | None = None,
                 **engine_options: Any) -> None:
        from ponder.engines import make_engine

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ponder-solver", daemon=True)
        self._thread.start()
        if ray is not None and isinstance(engine, str):
            engine_options = {**engine_options, **ray, "engine": engine}
            engine = "ray"
        self.engine = make_engine(engine, model=model, **engine_options) if isinstance(engine, str) else engine

    def solve(self, problem: str | Problem, controller: str = "single", *, verifier: Any = None,
              answer_kind: AnswerKind = "math", gold: str | None = None, **options: Any) -> Solution:
        """Solve one problem; blocks until the controller returns."""
        coro = _run(as_problem(problem, answer_kind, gold), self.engine, controller, verifier, options)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def asolve(self, problem: str | Problem, controller: str = "single", *, verifier: Any = None,
                     answer_kind: AnswerKind = "math", gold: str | None = None, **options: Any) -> Solution:
        """The async twin of `solve`, awaitable from any event loop."""
        coro = _run(as_problem(problem, answer_kind, gold), self.engine, controller, verifier, options)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def close(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.engine.aclose(), self._loop).result(timeout=60)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_solvers: dict[tuple[str | None, str], Solver] = {}


def solve(problem: str | Problem, controller: str = "single", *, model: str | None = None, engine: str = "hf",
          **options: Any) -> Solution:
    """Solve one problem with a named controller; the engine stays warm for the next call."""
    key = (model, engine)
    if key not in _solvers:
        _solvers[key] = Solver(model, engine)
    return _solvers[key].solve(problem, controller, **options)


async def asolve(problem: str | Problem, controller: str = "single", *, model: str | None = None,
                 engine: str = "hf", **options: Any) -> Solution:
    """The async twin of `solve`."""
    key = (model, engine)
    if key not in _solvers:
        _solvers[key] = Solver(model, engine)
    return await _solvers[key].asolve(problem, controller, **options)
