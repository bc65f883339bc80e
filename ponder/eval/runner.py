"""The eval runner: one controller over a benchmark's problems on one engine, resumable.

Problems run concurrently (at most ``concurrency`` at a time, all on one engine, which batches
them); each finished problem is appended to ``results.jsonl`` at once (see store.py). A rich
progress bar shows problems done, running accuracy, the engine's tokens per second and the ETA.

    import asyncio
    from ponder.eval.runner import RunConfig, evaluate
    summary = asyncio.run(evaluate(RunConfig(benchmark="arith", limit=16, out="runs/single")))

Row format (one JSON object per line): ``id``, ``index``, ``answer_kind``, ``gold``, ``answer``,
``correct`` (bool; null when skipped), ``skipped`` (why, when the gold answer cannot be parsed),
``error`` (when the controller raised; retried on resume; an engine that died, `EngineError`,
writes no row but stops the run, so the problems it cut short run on resume), ``verifier_error`` (the verifier's
machinery failed: not scored, redone on resume), ``total_tokens``,
``sequential_tokens``, ``wasted_tokens``, ``latency_s``, ``samples`` (per trace: ``tokens``,
``thinking_tokens``, ``finish_reason``, ``aborted``, ``answer``, ``correct``, ``wasted_tokens``,
``text`` with ``save_text``; probed samples add ``probes`` and ``stop``), ``info`` (the controller's own facts).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ponder.engines.base import EngineError
from ponder.eval.store import ResultsWriter, RunDir, RunLock
from ponder.types import Problem

__all__ = ["RunConfig", "RunResult", "RunAborted", "EngineStartError", "prepare", "run_eval", "evaluate", "run_and_summarise",
           "build_engine"]


class EngineStartError(ValueError):
    """The engine could not be made or started (bad model, engine kind or server)."""


class RunAborted(RuntimeError):
    """Too many problems in a row failed (e.g. the engine died); rows written so far are kept."""


@dataclass(frozen=True)
class RunConfig:
    """One evaluation run: what to solve, how, and where the results go."""

    out: str
    """Run directory (created); holds config.json, results.jsonl, summary.json, summary.md."""
    benchmark: str | None = "arith"
    """A key of ``BENCHMARKS``; None evaluates ``data`` in ponder's own schema."""
    data: str | None = None
    """A local file in the benchmark's schema instead of the hub."""
    limit: int | None = None
    """Evaluate the first ``limit`` problems (arith: generate that many; default 500)."""
    controller: str = "single"
    """A key of ``ponder.controllers.REGISTRY``."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Controller options (n, k, temperature, max_tokens, seed, max_thinking_tokens, ...)."""
    model: str | None = None
    """Model path or hub id; None: the embedded tiny reasoner."""
    engine: str = "hf"
    """Engine kind: hf, vllm or openai."""
    base_url: str | None = None
    """Server root for the openai engine."""
    family: str | None = None
    """The model family (``--family``) the engine is opened with (an engine given to `evaluate` keeps
    its own); None: read from the model's tokenizer."""
    ray: Mapping[str, Any] | None = None
    """Serve ``engine`` from a Ray actor pool: ``{"actors": N, "address": A or None}`` (None: in-process)."""
    concurrency: int = 16
    """Most problems in flight at once."""
    resume: bool = False
    """Continue a run directory, skipping the problems it already holds."""
    save_text: bool = False
    """Store every trace's text in the rows (large)."""
    sweep: Mapping[str, Any] | None = None
    """Set for a member of a sweep: ``{"key", "value", "values"}``, used to draw curves."""
    spec: Any = field(init=False, repr=False, compare=False)
    """The controller and its options, checked and built once here (`ControllerSpec`)."""

    def __post_init__(self) -> None:
        from ponder.controllers import ControllerSpec

        if not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise ValueError(f"--concurrency must be >= 1 (got {self.concurrency})")
        object.__setattr__(self, "spec", ControllerSpec.of(self.controller, self.options))

    def identity(self, problems: list[Problem]) -> dict[str, Any]:
        """What must match for results to be comparable (and resumable) in one directory."""
        digest = hashlib.sha256(Path(self.data).read_bytes()).hexdigest() if self.data else None
        ids = hashlib.sha256("\n".join(p.id for p in problems).encode()).hexdigest()[:16]
        return {"benchmark": self.benchmark or "file", "data": Path(self.data).name if self.data else None,
                "data_sha256": digest, "limit": self.limit, "problems": len(problems), "problem_ids": ids,
                "controller": self.controller, "options": dict(sorted(self.options.items())),
                "model": self.model or "tiny-reasoner", "engine": self.engine,
                **({"family": self.family} if self.family else {})}  # absent when read from the model


@dataclass
class RunResult:
    """What a run did, beyond its rows on disk."""

    rows: list[dict[str, Any]]
    """Every row of the run directory (earlier ones included)."""
    new: int = 0
    """Rows produced by this call."""
    wall_s: float = 0.0
    """Seconds this call ran problems."""
    engine_tokens: int = 0
    """Tokens the engine itself counted during this call."""
    runner_s: float = 0.0
    """Seconds spent in the runner's own work (verification, row building, writing, progress)."""


def prepare(config: RunConfig, problems: list[Problem]) -> tuple[RunDir, dict[str, Any]]:
    """Check the run directory against the run (writes nothing; the options were checked when
    ``config`` was made)."""
    rundir = RunDir(config.out)
    identity = config.identity(problems)
    rundir.check(identity, config.resume)
    record = {"identity": identity, "label": config.spec.label(),
              "settings": {"concurrency": config.concurrency, "base_url": config.base_url,
                           "ray": dict(config.ray) if config.ray else None,
                           "save_text": config.save_text},
              **({"sweep": dict(config.sweep)} if config.sweep else {})}
    return rundir, record


async def build_engine(kind: str, model: str | None = None, base_url: str | None = None,
                       ray: Mapping[str, Any] | None = None, family: str | None = None) -> Any:
    """`open_engine`, with a failure that is not already an `EngineError` said in one line, so that
    a bad model fails before any problem runs. With ``ray`` the engine is a Ray actor pool."""
    from ponder.engines import open_engine
    from ponder.benchmarks.data import first_line

    try:
        return await open_engine(kind, ray=ray, family=family, model=model,
                                 **({"base_url": base_url} if base_url else {}))
    except EngineError:  # already one line naming the engine, the model and the cause
        raise
    except Exception as exc:
        what = f"ray pool of {kind}" if ray else kind
        raise EngineStartError(f"cannot start the {what} engine with model {model or 'tiny-reasoner'}: "
                               f"{first_line(exc)}") from exc


class _Run:
    """The per-problem work of one run, and the runner's own time."""

    def __init__(self, config: RunConfig, engine: Any, controller: Any):
        from ponder.verifiers import get_verifier

        self.config, self.engine, self.controller = config, engine, controller
        self.verifier = get_verifier
        self.runner_s = 0.0
        self.failures = 0
        self.last_error = ""
        self.dead: EngineError | None = None
        """Set when the engine died: no more problems start, and the run raises it."""

    async def call(self, kind: str, fn: Any, *args: Any) -> Any:
        # the math verifier waits on a worker process: keep the event loop free meanwhile
        return await asyncio.to_thread(fn, *args) if kind == "math" else fn(*args)

    async def row(self, index: int, problem: Problem) -> dict[str, Any]:
        """One problem's row. A verifier that fails (not a verdict) gives a ``verifier_error`` row:
        not scored, and redone by ``--resume``."""
        from ponder.verifiers import VerifierError

        row: dict[str, Any] = {"id": problem.id, "index": index, "answer_kind": problem.answer_kind,
                               "gold": problem.gold, "answer": None, "correct": None, "total_tokens": 0,
                               "sequential_tokens": 0, "wasted_tokens": 0, "latency_s": 0.0, "samples": []}
        try:
            return await self._fill(row, problem, self.verifier(problem.answer_kind))
        except VerifierError as exc:
            row.update(answer=None, correct=None, samples=[], verifier_error=_one_line(exc))
            return row

    async def _fill(self, row: dict[str, Any], problem: Problem, v: Any) -> dict[str, Any]:
        from ponder.verifiers import VerifierError

        kind = problem.answer_kind
        t0 = time.perf_counter()
        unparseable = problem.gold is None or await self.call(kind, v.verify, problem.gold, "") is None
        self.runner_s += time.perf_counter() - t0
        if unparseable:
            row["skipped"] = f"gold answer {problem.gold!r} cannot be parsed by the {kind} verifier"
            return row
        start = time.perf_counter()
        try:
            solution = await self.controller.run(problem, self.engine, verifier=v)
        except (VerifierError, EngineError):  # a dead engine is no fact about this problem: no row
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, retried on resume
            row.update(correct=False, latency_s=time.perf_counter() - start, error=_one_line(exc))
            return row
        latency = time.perf_counter() - start
        t0 = time.perf_counter()
        row.update(await self._judged(problem, solution, v), latency_s=round(latency, 4))
        self.runner_s += time.perf_counter() - t0
        return row

    async def _judged(self, problem: Problem, solution: Any, v: Any) -> dict[str, Any]:
        """The solution's answer, correctness, token accounting and per-sample facts."""
        from ponder.verifiers import judge

        kind = problem.answer_kind
        truth: dict[str, bool] = {}
        correct = bool(await self.call(kind, judge, solution, problem.gold, v))
        if solution.answer is not None:
            truth[solution.answer] = correct
        samples = []
        for t in solution.traces:
            if t.answer is not None and t.answer not in truth:
                truth[t.answer] = bool(await self.call(kind, v.verify, problem.gold, t.text))
            sample = {"tokens": t.tokens, "thinking_tokens": t.thinking_tokens, "finish_reason": t.finish_reason,
                      "aborted": t.aborted, "answer": t.answer, "correct": truth.get(t.answer, False) if t.answer
                      is not None else False, "wasted_tokens": t.wasted_tokens}
            if self.config.save_text:
                sample["text"] = t.text
            if "probes" in t.info:  # a probing policy's record: each probe, and why the sample stopped
                sample.update(probes=t.info["probes"], stop=t.info["stop"])
            samples.append(sample)
        return dict(answer=solution.answer, correct=correct, total_tokens=solution.total_tokens,
                    sequential_tokens=solution.sequential, wasted_tokens=solution.wasted_tokens, samples=samples,
                    **({"info": solution.info} if solution.info else {}))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


async def run_eval(config: RunConfig, problems: list[Problem], engine: Any, *, controller: Any = None,
                   progress: bool = True, console: Any = None) -> RunResult:
    """Run the problems not yet in ``config.out`` and append their rows; returns every row.

    Args:
        config: the run.
        problems: the benchmark's problems (``load_problems``).
        engine: a ready engine (``build_engine``); not closed here.
        controller: a controller object to use instead of ``config.spec.controller``.
        progress: show the rich progress bar.
        console: the rich console for the bar.

    Raises:
        RunDirError, ValueError: the run directory or the options cannot be used, or another process
            is writing it (nothing written).
        RunAborted: more than ``concurrency + 4`` problems in a row raised.
        EngineError: the engine died; the rows finished before are written, the others are not.
    """
    prepare(config, problems)  # bad options fail before the lock creates the directory
    with RunLock(config.out):  # the only writer from here until the last row is written
        # checked again under the lock: another run may have written rows since the check above
        rundir, record = prepare(config, problems)
        return await _run_locked(config, problems, engine, rundir, record, controller, progress, console)


async def _run_locked(config: RunConfig, problems: list[Problem], engine: Any, rundir: RunDir,
                      record: dict[str, Any], controller: Any, progress: bool, console: Any) -> RunResult:
    """The body of `run_eval`, run while this process holds the folder's lock."""
    from ponder.eval.progress import RunProgress

    controller = controller or config.spec.controller
    rundir.commit(record)
    rows = list(rundir.done)
    done = {str(r["id"]) for r in rows}
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in done]
    queue: asyncio.Queue = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    stats = getattr(engine, "stats", None)
    tokens0 = stats.generated_tokens if stats is not None else 0
    run = _Run(config, engine, controller)
    limit_failures = config.concurrency + 4
    start = time.perf_counter()

    with ResultsWriter(rundir.results_path) as writer, RunProgress(len(problems), rows, enabled=progress,
                                                                   console=console, title=config.out) as bar:
        async def worker() -> None:
            while not queue.empty() and run.failures < limit_failures and run.dead is None:
                index, problem = queue.get_nowait()
                try:
                    row = await run.row(index, problem)
                except EngineError as exc:  # every problem in flight fails with it: stop taking more
                    run.dead = run.dead or exc
                    return
                t0 = time.perf_counter()
                writer.append(row)
                rows.append(row)
                run.failures = run.failures + 1 if row.get("error") or row.get("verifier_error") else 0
                run.last_error = row.get("error") or row.get("verifier_error") or run.last_error
                made = (stats.generated_tokens - tokens0) if stats is not None else None
                bar.update(row, time.perf_counter() - start, made)
                run.runner_s += time.perf_counter() - t0

        await asyncio.gather(*(worker() for _ in range(min(config.concurrency, len(todo)) or 1)))
    wall = time.perf_counter() - start
    if run.dead is not None:
        raise run.dead
    if run.failures >= limit_failures:
        raise RunAborted(f"stopped after {run.failures} problems in a row failed ({run.last_error}); "
                         f"the {len(rows)} rows written are kept in {rundir.results_path}; fix and --resume")
    new = len(rows) - len(rundir.done)
    made = stats.generated_tokens - tokens0 if stats is not None else sum(r["total_tokens"] for r in rows[len(rows) - new:])
    return RunResult(rows, new, wall, made, run.runner_s)


async def evaluate(config: RunConfig, problems: list[Problem] | None = None, engine: Any = None, *,
                   progress: bool = True, console: Any = None) -> dict[str, Any]:
    """Load, run, summarise: the whole of ``ponder eval`` for one setting. Returns the summary."""
    from ponder.benchmarks.registry import load_problems

    problems = problems if problems is not None else load_problems(config.benchmark, config.data, config.limit)
    prepare(config, problems)
    own = engine is None
    engine = engine or await build_engine(config.engine, config.model, config.base_url, config.ray, config.family)
    try:
        return await run_and_summarise(config, problems, engine, progress=progress, console=console)
    finally:
        if own:
            await engine.aclose()


async def run_and_summarise(config: RunConfig, problems: list[Problem], engine: Any, *, progress: bool = True,
                            console: Any = None) -> dict[str, Any]:
    """`run_eval`, then the run's summary, both under the run's lock. An engine that died leaves
    the rows written and a summary that says why the run stopped, and is raised again."""
    from ponder.eval.report import finish_run

    with RunLock(config.out):  # held through the summary too (run_eval takes it again, re-entrantly)
        try:
            result = await run_eval(config, problems, engine, progress=progress, console=console)
        except EngineError as exc:
            finish_run(config.out, {"stopped": str(exc)})
            raise
        return finish_run(config.out, extra={"wall_s": result.wall_s, "engine_tokens": result.engine_tokens})
