"""The math verifier never turns a failure of its own machinery into a verdict.

Real worker processes throughout: killed from another thread, stopped, unable to restart, or
(a stand-in worker speaking the same protocol) out of memory.

Run: PYTHONPATH=. .venv/bin/python -m pytest -q tests/test_verifier_reliability.py
"""

import logging
import os
import signal
import sys
import textwrap
import threading
import time

import pytest

import ponder.verifiers.math_answers as math_module
from ponder.verifiers import MathVerifier, MathVerifierConfig, VerifierError, WorkerStartError
from ponder.verifiers import _worker

pytestmark = pytest.mark.timeout(180)

CASES = [
    ("3", r"so the answer is \boxed{3}", True),
    ("3", r"so the answer is \boxed{4}", False),
    (r"\frac{1}{2}", r"\boxed{0.5}", True),
    ("x^2-1", r"\boxed{(x-1)(x+1)}", True),
]


def test_killed_workers_never_change_a_verdict():
    verifier = MathVerifier(MathVerifierConfig(workers=1))
    verifier.verify("1", "1")  # started: the first kill hits a warm worker
    killed: list[int] = []
    results: list[tuple[bool | None, bool]] = []
    done = threading.Event()

    def killer() -> None:
        # One kill per call at most: after each kill, wait for a call that began after it to
        # finish, so every retry has a live worker (three kills in one call are a real failure).
        while not done.is_set() and len(killed) < 3:
            time.sleep(0.3)
            seen = len(results)
            for pid in verifier.worker_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            while not done.is_set() and len(results) < seen + 2:
                time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while (len(killed) < 3 or len(results) < 20) and time.monotonic() < deadline:
            gold, text, expected = CASES[len(results) % len(CASES)]
            results.append((verifier.verify(gold, text), expected))
    finally:
        done.set()
        thread.join()
        verifier.close()
    assert len(killed) >= 3
    assert all(got is expected for got, expected in results), results


def test_worker_that_cannot_be_restarted_raises_verifier_error(monkeypatch):
    verifier = MathVerifier()
    try:
        assert verifier.verify("2", r"\boxed{2}") is True
        (pid,) = verifier.worker_pids()
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # every restart fails
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(VerifierError) as info:
            verifier.verify("2", r"\boxed{2}")
        assert type(info.value) is VerifierError  # not a start problem: the worker died
        assert "exited unexpectedly" in str(info.value)
        assert "could not be restarted" in str(info.value)
        assert verifier.worker_pids() == []
    finally:
        verifier.close()


def test_first_start_failure_is_still_a_worker_start_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    verifier = MathVerifier()
    with pytest.raises(WorkerStartError):
        verifier.verify("1", r"\boxed{1}")
    verifier.close()


def test_pathological_answer_is_false_without_an_exception():
    verifier = MathVerifier(MathVerifierConfig(timeout_s=2.0))
    try:
        assert verifier.verify("1", r"\boxed{10^{10^{10^{10}}}}") is False
        assert verifier.verify("1", r"\boxed{1}") is True
    finally:
        verifier.close()


def test_answer_that_hangs_every_worker_is_a_verdict(monkeypatch):
    """A hard timeout is retried once on a fresh worker; a second one is the answer's fault."""
    verifier = MathVerifier(MathVerifierConfig(timeout_s=1.0))
    try:
        assert verifier.verify("1", r"\boxed{1}") is True
        original_start = math_module._Worker._start

        def start_then_hang(worker) -> None:
            original_start(worker)
            os.kill(worker.pid, signal.SIGSTOP)  # like sympy stuck in C from the first request

        monkeypatch.setattr(math_module._Worker, "_start", start_then_hang)
        (pid,) = verifier.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        assert verifier.verify("1", r"\boxed{1}") is False
        assert verifier.extract(r"\boxed{1}") is None
    finally:
        verifier.close()  # SIGKILL ends stopped processes too


# --- out of memory: a stand-in worker that speaks the protocol ------------------------------

FAKE_WORKER = textwrap.dedent(
    """
    import json, os, sys
    marker = os.environ["PONDER_TEST_MARKER"]
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "always" in request["text"] or not os.path.exists(marker):
            open(marker, "w").close()
            reply = {"error": "MemoryError"}
        else:
            reply = {"result": True}
        print(json.dumps(reply), flush=True)
    """
)


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    marker = tmp_path / "ran_out_once"
    monkeypatch.setattr(math_module, "_WORKER_PATH", script)
    monkeypatch.setenv("PONDER_TEST_MARKER", str(marker))
    return marker


def test_out_of_memory_is_retried_on_a_fresh_worker(fake_worker):
    verifier = MathVerifier()
    try:
        assert verifier.verify("1", r"\boxed{1}") is True  # the first reply was an error
        assert fake_worker.exists() and len(verifier.worker_pids()) == 1
    finally:
        verifier.close()


def test_out_of_memory_every_time_raises_verifier_error(fake_worker):
    verifier = MathVerifier()
    try:
        with pytest.raises(VerifierError, match="MemoryError"):
            verifier.verify("1", r"\boxed{always}")
    finally:
        verifier.close()


def test_worker_reports_memory_errors_instead_of_a_verdict(monkeypatch):
    def exhausted(golds, text):
        raise MemoryError

    monkeypatch.setattr(_worker, "_verify", exhausted)
    with pytest.raises(_worker._OutOfMemory):
        _worker.handle({"op": "verify", "golds": ["1"], "text": "1", "soft_timeout": 5})


def test_worker_notices_memory_errors_math_verify_swallowed(monkeypatch):
    def swallowed(golds, text):
        try:
            raise MemoryError
        except MemoryError:  # what Math-Verify does: log at debug level, answer False
            logging.getLogger("math_verify").debug("Error during comparison", exc_info=True)
        return False

    monkeypatch.setattr(_worker, "_verify", swallowed)
    logger = logging.getLogger("math_verify")
    saved = logger.handlers[:], logger.propagate, logger.level
    _worker._watch_memory()
    try:
        with pytest.raises(_worker._OutOfMemory, match="inside Math-Verify"):
            _worker.handle({"op": "verify", "golds": ["1"], "text": "1", "soft_timeout": 5})
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
        _worker._memory_watch.tripped = False
