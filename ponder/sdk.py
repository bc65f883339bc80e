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
import contextlib
import threading
from typing import Any

from ponder.controllers import ControllerSpec
from ponder.types import AnswerKind, Problem, Solution

__all__ = ["Solver", "solve", "asolve", "as_problem", "controller_spec"]


def as_problem(problem: str | Problem, answer_kind: AnswerKind = "math", gold: str | None = None) -> Problem:
    return problem if isinstance(problem, Problem) else Problem(problem, gold=gold, answer_kind=answer_kind)


def controller_spec(controller: str | ControllerSpec, options: dict[str, Any]) -> ControllerSpec:
    """The one check of a call's controller and options (a ready spec passes through)."""
    if isinstance(controller, ControllerSpec):
        if options:
            raise ValueError(f"options {', '.join(sorted(options))} given with a ready ControllerSpec; put them in it")
        return controller
    return ControllerSpec.of(controller, options)


async def _run(problem: Problem, engine: Any, spec: ControllerSpec, verifier: Any) -> Solution:
    from ponder.verifiers import get_verifier, judge

    verifier = verifier or get_verifier(problem.answer_kind)
    solution = await spec.controller.run(problem, engine, verifier=verifier)
    if problem.gold is not None:
        solution.correct = judge(solution, problem.gold, verifier)
    return solution


async def _settled() -> None:
    """Until every other task on this loop has ended."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await asyncio.gather(*others, return_exceptions=True)


class Solver:
    """An engine kept warm across calls.

    Args:
        model: path or hub id (default: the embedded tiny reasoner).
        engine: ``hf``, ``vllm`` or ``openai`` (opened with `ponder.engines.open_engine`), or an
            Engine object (used as it is).
        ray: serve ``engine`` from a Ray actor pool, e.g. ``{"actors": 4, "address": "auto"}``
            (see `ponder.engines.ray.RayPool` for every option).
        engine_options: passed to the engine's constructor (e.g. ``base_url`` for openai).
    """

    def __init__(self, model: str | None = None, engine: str | Any = "hf", *, ray: dict[str, Any] | None = None,
                 **engine_options: Any) -> None:
        from ponder.engines import open_engine

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ponder-solver", daemon=True)
        self._thread.start()
        if isinstance(engine, str):
            opening = asyncio.run_coroutine_threadsafe(open_engine(engine, ray=ray, model=model, **engine_options),
                                                       self._loop)
            try:
                engine = opening.result()
            except BaseException:
                opening.cancel()  # Ctrl-C while it loads: open_engine closes what it had started...
                with contextlib.suppress(Exception):  # ...which the loop finishes before it stops
                    asyncio.run_coroutine_threadsafe(_settled(), self._loop).result(timeout=60)
                self._stop_loop()
                raise
        self.engine = engine

    def solve(self, problem: str | Problem, controller: str | ControllerSpec = "single", *, verifier: Any = None,
              answer_kind: AnswerKind = "math", gold: str | None = None, **options: Any) -> Solution:
        """Solve one problem with a controller (a registered name and its options, or a ready
        `ControllerSpec`); blocks until the controller returns."""
        spec = controller_spec(controller, options)
        coro = _run(as_problem(problem, answer_kind, gold), self.engine, spec, verifier)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def asolve(self, problem: str | Problem, controller: str | ControllerSpec = "single", *,
                     verifier: Any = None, answer_kind: AnswerKind = "math", gold: str | None = None,
                     **options: Any) -> Solution:
        """The async twin of `solve`, awaitable from any event loop."""
        spec = controller_spec(controller, options)
        coro = _run(as_problem(problem, answer_kind, gold), self.engine, spec, verifier)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def close(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.engine.aclose(), self._loop).result(timeout=60)
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_solvers: dict[tuple[str | None, str], Solver] = {}


def solve(problem: str | Problem, controller: str | ControllerSpec = "single", *, model: str | None = None, engine: str = "hf",
          **options: Any) -> Solution:
    """Solve one problem with a named controller; the engine stays warm for the next call."""
    key = (model, engine)
    if key not in _solvers:
        _solvers[key] = Solver(model, engine)
    return _solvers[key].solve(problem, controller, **options)


async def asolve(problem: str | Problem, controller: str | ControllerSpec = "single", *, model: str | None = None,
                 engine: str = "hf", **options: Any) -> Solution:
    """The async twin of `solve`."""
    key = (model, engine)
    if key not in _solvers:
        _solvers[key] = Solver(model, engine)
    return await _solvers[key].asolve(problem, controller, **options)
