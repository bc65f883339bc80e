"""A verifier whose worker process is killed during an eval never changes a row: calls are retried
on a fresh worker, and a call that still fails is a ``verifier_error`` row (not scored, redone by
--resume), never a verdict."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from ponder.benchmarks import load_problems
from ponder.benchmarks.arith import problems as arith_problems
from ponder.eval import RunConfig, run_eval, summarize
from ponder.verifiers import VerifierError, get_verifier

N = 24


def _math_file(tmp_path):
    """Arith problems judged by the *math* verifier (the one with worker processes)."""
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "problem": p.prompt, "answer": str(p.answer),
                                        "answer_kind": "math"}) + "\n" for p in arith_problems(N, seed=5)))
    return path


def _stable(rows):
    keep = ("answer", "correct", "total_tokens", "verifier_error")
    return {r["id"]: ({k: r.get(k) for k in keep},
                      [(s["answer"], s["correct"], s["tokens"]) for s in r["samples"]]) for r in rows}


async def _run(path, out, engine, resume=False):
    config = RunConfig(out=str(out), benchmark=None, data=str(path), controller="majority",
                       options={"n": 2, "seed": 3, "temperature": 0.7}, concurrency=4, resume=resume)
    result = await run_eval(config, load_problems(None, str(path)), engine, progress=False)
    return result.rows


async def test_killing_the_math_worker_during_an_eval_changes_no_row(hf_engine, tmp_path, monkeypatch):
    path = _math_file(tmp_path)
    quiet = await _run(path, tmp_path / "quiet", hf_engine)
    verifier = get_verifier("math")
    stop, kills, served = threading.Event(), [], [0]
    for name in ("verify", "extract"):  # count answered calls, to know a worker is up and serving
        real = getattr(verifier, name)

        def counted(*args, _real=real):
            out = _real(*args)
            served[0] += 1
            return out

        monkeypatch.setattr(verifier, name, counted)

    def killer() -> None:
        # about once a second, kill the worker once it has answered a call since it was first
        # seen: a worker killed again and again while it still imports sympy would be a verifier
        # that cannot start at all (a different fault, and one the verifier reports as such)
        seen: dict[int, int] = {}
        while not stop.wait(0.2):
            for pid in verifier.worker_pids():
                first = seen.setdefault(pid, served[0])
                if served[0] > first and (not kills or time.monotonic() - kills[-1][1] >= 1.0):
                    try:
                        os.kill(pid, signal.SIGKILL)
                        kills.append((pid, time.monotonic()))
                    except ProcessLookupError:
                        pass

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        noisy = await _run(path, tmp_path / "noisy", hf_engine)
    finally:
        stop.set()
        thread.join()
    assert kills, "the worker was never killed: the test proved nothing"
    for _ in range(3):  # rows whose verifier failed even after retries are redone by --resume
        if not any(r.get("verifier_error") for r in noisy):
            break
        noisy = await _run(path, tmp_path / "noisy", hf_engine, resume=True)
    assert len(noisy) == N and _stable(noisy) == _stable(quiet)
    assert summarize(noisy)["accuracy"] == summarize(quiet)["accuracy"]


async def test_a_verifier_error_row_is_not_scored_and_is_redone_on_resume(hf_engine, tmp_path, monkeypatch):
    path = _math_file(tmp_path)
    verifier = get_verifier("math")
    real = verifier.verify

    def broken(gold, text):
        if text and int(gold) % 3 == 0:  # the gold check passes; judging some answers fails like a dead worker
            raise VerifierError("math verifier worker died 3 times: worker exited")
        return real(gold, text)

    monkeypatch.setattr(verifier, "verify", broken)
    rows = await _run(path, tmp_path / "run", hf_engine)  # (all failing would stop the run: RunAborted)
    failed = [r for r in rows if r.get("verifier_error")]
    assert failed and all(r["correct"] is None for r in failed)
    summary = summarize(rows)
    assert summary["verifier_errors"] == [r["id"] for r in failed]
    assert summary["scored"] == N - len(failed)
    monkeypatch.setattr(verifier, "verify", real)
    redone = await _run(path, tmp_path / "run", hf_engine, resume=True)
    assert len(redone) == N and not any(r.get("verifier_error") for r in redone)
    assert summarize(redone)["scored"] == N
