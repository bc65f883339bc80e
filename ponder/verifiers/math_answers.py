"""The math verifier: Math-Verify run in worker processes with a hard timeout.

Math-Verify (`math_verify.parse` / `math_verify.verify`) is the grader; this module only decides
where it runs. It runs in long-lived child processes (`_worker.py`) because:

- its own timeout is `signal.alarm`, which raises off the main thread (threads, Ray actors);
- sympy can hang, in C, on answers like `10^{10^{10^{10}}}`; only killing a process stops that;
- model output is untrusted, and a separate process with memory and CPU limits, fed plain JSON,
  contains whatever a bad answer makes the parser do (see `_worker.py` for the eval guard).

Workers are started with `subprocess` (fork + immediate exec, safe while the parent holds
threads) rather than `multiprocessing`, whose spawn and forkserver modes re-import the caller's
`__main__` in the child. Safe to call from any thread, concurrently. POSIX only (select on
pipes, rlimits).

A failure of this machinery is never a verdict (`_Pool.call`):

- a worker that dies (killed, crashed, closed its pipe) or runs out of memory is replaced and
  the call retried, twice at most; if it still fails, `VerifierError` names the cause;
- an answer that keeps a worker busy past `timeout_s` (sympy stuck in C on `10^{10^{10^{10}}}`)
  is a property of the answer: the worker is killed and the call retried once on a fresh one
  (the first kill may have hit a worker that was merely starved or stopped); a second timeout
  is the answer's verdict, False (None for extract). Most such answers never get that far: the
  worker's own soft deadline, at 70% of `timeout_s`, answers False without losing the worker.

Semantics are Math-Verify 0.9's, with its `LatexExtractionConfig(boxed_match_priority=0)` and
`ExprExtractionConfig()` both on, at its default precision. Where lighteval 0.13 (which carries an
older copy of the same code) judges differently, e.g. "5\\%" against 5 or 3.14159265 against
`\\pi`, ponder follows Math-Verify 0.9. Where ponder differs, on purpose (each case is marked in
tests/fixtures/verifier_tables/*.jsonl):

- several boxes: the final group is read as Math-Verify joins boxes, except across a
  self-correction or a restated final answer ("\\boxed{4} wait, actually \\boxed{3}" is 3, not
  {3, 4}; "first \\boxed{4}, then the final \\boxed{10}" is 10): `_text.final_boxes`;
- a gold with a decimal comma ("1,22") accepts 1.22 and the list {1, 22}; a gold with `\\pm` is
  written out as its values (latex2sympy cannot parse `\\frac{-1 \\pm \\sqrt{13}}{4}`), so the
  two roots listed match it: `_text.gold_readings`;
- a gold without `$...$` is read as LaTeX, boxed first ("x^2", "2x", "Evelyn", "(C)"), as eval
  datasets write golds; Math-Verify extracts nothing from it and so calls every answer wrong;
- a gold written as several boxes is its final group, read as an answer is ("\\boxed{1}, but
  \\boxed{2} and \\boxed{3}" is {2, 3}), as lighteval's tables expect: `_final_group`;
- the answer text is first brought to what Math-Verify's and lighteval's current test tables
  expect where 0.9 reads it otherwise (`_normalize.py`): "$\\frac{1}{3}.$" is 1/3 and
  "$2^{10}.$" is 1024 (punctuation inside the delimiters), "4 4/9" is 40/9 (a mixed number),
  "有99颗" holds 99, `\\mathrm{e}` is e, and inline math broken across lines
  ("$ \\n 9 \\n $") is not read at all, where 0.9's plain-number fallback reads the 9; and in
  the worker, LaTeX that does not parse supplies none of its embedded numbers (the 0 of
  "$\\sum_{k=0}^n\\bigl(k\\bigr)$"), while a number outside it still counts
  (`_worker._from_failed_latex`);
- one setting for every answer: Math-Verify's tests that run at a looser precision than 6
  digits ("0.3333" for 1/3 at 4), or with set-relation comparison on, disagree accordingly.
"""

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from ponder.verifiers._normalize import normalize_answer
from ponder.verifiers._text import (
    FINAL_ANSWER,
    answer_window,
    expand_plus_minus,
    final_boxes,
    gold_readings,
    last_boxed_span,
)

__all__ = ["MathVerifier", "MathVerifierConfig", "VerifierError", "WorkerStartError"]

_WORKER_PATH = Path(__file__).with_name("_worker.py")
# The worker answers False by itself at this share of timeout_s; the rest is slack for a loaded
# machine, so that a hard kill (and its retry on a fresh worker) stays the exception.
_SOFT_SHARE = 0.7
# Attempts per call after the first when a worker dies or errs (a hard timeout gets one).
_RETRIES = 2


@dataclass(frozen=True)
class MathVerifierConfig:
    """How the math verifier runs Math-Verify."""

    timeout_s: float = 5.0
    """Hard limit on one extract/verify call inside a worker; past it the worker is killed."""
    max_chars: int = 4096
    """Most characters of an answer sent to a worker (the window around the last box)."""
    workers: int = 1
    """Worker processes; concurrent callers beyond this wait for a free one."""
    startup_timeout_s: float = 60.0
    """Limit on starting a worker (importing sympy), which does not count against timeout_s."""
    memory_limit_mb: int = 2048
    """Address-space limit of each worker (RLIMIT_AS; a worker needs about 100 MB); 0 for none."""


class VerifierError(RuntimeError):
    """The verifier's machinery failed (a worker died, ran out of memory, or could not be
    restarted) even after retries: there is no verdict, and none must be made up."""


class WorkerStartError(VerifierError):
    """A worker could not start (Math-Verify missing, no memory): an environment problem that
    must not pass silently as "every answer is wrong"."""


class _WorkerFailed(Exception):
    """The worker died, erred or broke protocol; it must be replaced and the call retried."""


class _HardTimeout(_WorkerFailed):
    """The worker was still busy at the call's deadline (or the kernel's CPU limit killed it)."""


class _Worker:
    """One child process and its line-buffered pipe. Used by one thread at a time."""

    def __init__(self, config: MathVerifierConfig):
        self._config = config
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._owner = os.getpid()
        self.starts = 0
        """How many times a process of this worker started and said it was ready."""

    @property
    def pid(self) -> int | None:
        """The running process's id, or None before the first call and after a kill."""
        proc = self._proc
        return None if proc is None else proc.pid

    def call(self, request: dict):
        """Send one request; return its result or raise _WorkerFailed."""
        if self._owner != os.getpid():  # we were forked: that process belongs to the parent
            self._proc, self._buffer, self._owner = None, b"", os.getpid()
        if self._proc is None:
            self._start()
        request = {**request, "soft_timeout": self._config.timeout_s * _SOFT_SHARE}
        try:
            self._proc.stdin.write((json.dumps(request) + "\n").encode())
            self._proc.stdin.flush()
        except OSError as exc:
            raise _WorkerFailed(f"worker pipe closed ({exc})") from exc
        reply = self._read(time.monotonic() + self._config.timeout_s)
        if "error" in reply:
            raise _WorkerFailed(f"worker error: {reply['error']}")
        if "result" not in reply:
            raise _WorkerFailed("worker broke protocol")
        return reply["result"]

    def _start(self) -> None:
        memory = str(self._config.memory_limit_mb)
        command = [sys.executable, "-P", str(_WORKER_PATH), memory]  # -P: its folder stays off sys.path
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C in the terminal is the parent's to handle
            )
        except OSError as exc:
            raise WorkerStartError(f"cannot run {sys.executable}: {exc}") from exc
        self._buffer = b""
        try:
            hello = self._read(time.monotonic() + self._config.startup_timeout_s)
        except _WorkerFailed as exc:
            self.kill()
            raise WorkerStartError(f"math verifier worker did not start: {exc}") from exc
        if not hello.get("ready"):
            self.kill()
            raise WorkerStartError(f"math verifier worker failed to start: {hello.get('error')}")
        self.starts += 1

    def _read(self, deadline: float) -> dict:
        """Read one JSON line from the worker before `deadline` (time.monotonic)."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _HardTimeout("timed out")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._exit_cause()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError as exc:
            raise _WorkerFailed("worker broke protocol") from exc

    def _exit_cause(self) -> _WorkerFailed:
        """Why the worker's output ended: the kernel's CPU limit is a timeout, anything else
        (killed from outside, crashed) a death."""
        try:
            code = self._proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return _WorkerFailed("worker closed its output")
        if code == -signal.SIGXCPU:
            return _HardTimeout("worker hit its CPU limit")
        return _WorkerFailed(f"worker exited unexpectedly (status {code})")

    def kill(self) -> None:
        """Stop the process (if any); the next call starts a fresh one."""
        proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():  # never kill a parent's worker
            return
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class _Pool:
    """A fixed set of lazily started workers shared by all threads of one verifier."""

    def __init__(self, config: MathVerifierConfig):
        self.closed = False
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self.workers = [_Worker(config) for _ in range(max(1, config.workers))]
        for worker in self.workers:
            self._idle.put(worker)
        # Runs on close(), on garbage collection, and at interpreter exit: workers exit by
        # themselves when their stdin closes, but one stuck in C would not notice, and an
        # orphan burning CPU (or a pytest run that never ends) is worse than a kill.
        self._finalizer = weakref.finalize(self, _kill_all, self.workers)

    def call(self, request: dict, failed):
        """Run `request` on a free worker, retrying on a fresh one when the worker fails.

        Args:
            request: the JSON request.
            failed: the verdict for an answer that times out twice (False or None).

        Raises:
            WorkerStartError: when no worker of this pool ever started (Math-Verify missing, no
                memory): nothing ever worked, so it is the environment.
            VerifierError: when workers keep dying, erring or failing to restart.
        """
        causes: list[str] = []
        timeouts = 0
        for _ in range(1 + _RETRIES):
            if self.closed:
                raise VerifierError("the math verifier was closed during the call")
            worker = self._idle.get()  # LIFO: the warm worker is reused before a cold one starts
            try:
                return worker.call(request)
            except WorkerStartError as exc:
                if not any(w.starts for w in self.workers):
                    raise  # no worker ever started here: an environment problem, said as such
                causes.append(f"could not be restarted ({exc})")
            except _HardTimeout as exc:
                worker.kill()
                timeouts += 1
                if timeouts >= 2:
                    return failed  # twice on fresh workers: the answer is what hangs
                causes.append(str(exc))
            except (_WorkerFailed, OSError, ValueError) as exc:  # OSError/ValueError: pipe closed
                worker.kill()
                causes.append(str(exc))
            except BaseException:
                worker.kill()  # e.g. KeyboardInterrupt mid-read: the pipe is out of step now
                raise
            finally:
                self._idle.put(worker)
        raise VerifierError(f"math verifier worker failed {len(causes)} times: {'; '.join(causes)}")

    def warm(self) -> None:
        """Start one worker in a background thread (a first call waits for it, not for a cold start)."""
        def start() -> None:
            worker = self._idle.get()
            try:
                if worker.pid is None:
                    worker._start()
                    # Math-Verify loads its parsers lazily on the first answer: do that now too
                    worker.call({"op": "extract", "text": "\\boxed{1}"})
            except Exception:  # the first real call raises the clear start error
                worker.kill()
            finally:
                self._idle.put(worker)

        threading.Thread(target=start, name="math-verifier-warm", daemon=True).start()

    def close(self) -> None:
        """Kill every worker; a caller mid-request gets a VerifierError."""
        self.closed = True
        self._finalizer()


def _kill_all(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.kill()


def _final_group(gold: str) -> str:
    """A gold written as several boxes, read as an answer is: its final group only.

    "\\boxed{1} and and and or thus but \\boxed{2} and \\boxed{3}" is {2, 3}, as lighteval's
    tables expect (Math-Verify alone joins all three); a gold whose boxes all join is unchanged.
    """
    count = gold.count("\\boxed")
    if count < 2:
        return gold
    group = final_boxes(gold)
    if not group or len(group) >= count:
        return gold
    return ", ".join("\\boxed{" + box + "}" for box in group)


class MathVerifier:
    r"""Verifies and extracts math answers (numbers, LaTeX expressions, sets, intervals, tuples).

    Args:
        config: timeouts, answer size and worker settings.

    Example:
        >>> v = MathVerifier()
        >>> v.verify(r"\frac{1}{2}", r"... so the answer is $\boxed{0.5}$")
        True
    """

    name = "math"

    def __init__(self, config: MathVerifierConfig | None = None):
        self.config = config or MathVerifierConfig()
        self._pool: _Pool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                self._pool = _Pool(self.config)
            return self._pool

    def warm(self) -> None:
        """Start a worker in the background, once: controllers call this when they start, so the
        first finished sample is not judged while a cold worker imports sympy (meanwhile a remote
        engine would keep decoding the samples that are about to be aborted)."""
        with self._lock:
            first = not getattr(self, "_warmed", False)
            self._warmed = True
        if first:
            self._get_pool().warm()

    def _answer(self, text: str) -> str:
        """What the worker gets: the final group of boxes, else the answer window.

        The group is the last box and the boxes joined to it as Math-Verify joins them
        ("\\boxed{1}, \\boxed{2} and \\boxed{3}" is {1, 2, 3}), except across a self-correction:
        "\\boxed{4} wait, actually \\boxed{3}" means 3, where Math-Verify alone would read {3, 4}
        (see `_text.final_boxes`). A `\\pm` in a box is written out as its two values. A
        "The final answer is $X$. I hope it is correct." after the last box outranks it, as in
        Math-Verify (the window goes to the worker whole).
        """
        if not isinstance(text, str):
            return ""
        window = normalize_answer(answer_window(text, self.config.max_chars))
        boxes = final_boxes(window)
        if not boxes or FINAL_ANSWER.search(window, last_boxed_span(window)[2]):
            return window
        return ", ".join("\\boxed{" + expand_plus_minus(box) + "}" for box in boxes)

    def extract(self, text: str) -> str | None:
        """The final answer as a canonical string for voting.

        Args:
            text: the model's output.

        Returns:
            str() of the parsed, lightly evaluated sympy answer ("1/2" for `\\dfrac12` and 0.5,
            "33" for 033), or None when no answer is found or parsing timed out.

        Raises:
            WorkerStartError: when no worker can start (an environment problem, not an answer's).
            VerifierError: when workers keep failing: no answer could be read.
        """
        window = self._answer(text)
        if not window.strip():
            return None
        result = self._get_pool().call({"op": "extract", "text": window}, None)
        return result if isinstance(result, str) else None

    def verify(self, gold: str, text: str) -> bool | None:
        """Whether `text` answers with something equivalent to `gold`.

        Args:
            gold: the reference answer, plain LaTeX ("\\frac{\\sqrt{3}}{2}", "(1,2)", "3"). A
                decimal comma ("1,22") matches both 1.22 and the pair {1, 22}; a `\\pm` is
                written out as its two values (see `_text.gold_readings`).
            text: the model's output.

        Returns:
            True or False; None only when `gold` itself cannot be parsed. A missing, malformed
            or timed-out answer is False.

        Raises:
            WorkerStartError: when no worker can start (an environment problem, not an answer's).
            VerifierError: when workers keep failing: no verdict could be made.
        """
        if not isinstance(gold, str) or not gold.strip():
            return None
        window = self._answer(text)
        golds = [
            _final_group(normalize_answer(reading[: self.config.max_chars]))
            for reading in gold_readings(gold)
        ]
        result = self._get_pool().call({"op": "verify", "golds": golds, "text": window}, False)
        return result if result is None or isinstance(result, bool) else False

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring and tests)."""
        with self._lock:
            pool = self._pool
        return [] if pool is None else [w.pid for w in pool.workers if w.pid is not None]

    def close(self) -> None:
        """Stop this verifier's workers; later calls start new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
