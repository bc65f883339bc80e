"""A run directory on disk: ``config.json`` (what was run) and ``results.jsonl`` (one line per problem).

Rows are appended with one ``os.write`` each on an ``O_APPEND`` descriptor and fsynced before the
next, so a run killed at any moment (SIGKILL included) leaves whole rows plus at most one torn last
line. Resuming drops that torn line, the rows of problems that failed with an error or a
verifier error (to retry them) and any duplicate id, rewriting the file atomically (temp file, fsync, rename); rows already
written are never lost. A directory made with a different configuration is refused, before
anything is written.

One process at a time writes a run directory: `RunLock` holds an advisory ``flock`` on
``run.lock`` from before the results file is touched until the run ends, with the holder's pid
and host written in the file. A second writer (another run into the same ``--out``, or a
``--resume`` of a run still going) fails at once with one line naming that pid; two writers
would otherwise duplicate rows, or one would compact the file while the other appends to the
replaced copy. The kernel drops the lock when its process dies, however it dies, so the lock of
a killed run is simply taken over.

    from ponder.eval.store import read_results, RunLock
    rows, intact_bytes = read_results("runs/x/results.jsonl")
    with RunLock("runs/x"):
        ...  # the only writer of runs/x
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "RunDirError", "RunLock", "ResultsWriter", "read_results", "write_atomic", "to_json",
           "CONFIG", "RESULTS", "LOCK"]

CONFIG = "config.json"
"""What was run: ``identity`` (must match to resume), ``settings`` (may change), ``problems``."""
RESULTS = "results.jsonl"
"""One JSON object per line, one line per problem, in the order they finished."""
LOCK = "run.lock"
"""Locked (flock) by the process writing the run; holds its pid, host and start time."""


class RunDirError(ValueError):
    """An output directory that cannot be used as asked; one line naming the directory."""


def to_json(obj: Any, indent: int | None = None) -> str:
    """JSON with NaN/inf written as null and unknown objects as strings."""
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(obj), indent=indent, default=str, ensure_ascii=False)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: two writers never share one
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_results(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of a results file and the byte length of its intact part.

    A last line without its newline, or one that is not a JSON object, is a torn write and is
    left out; a bad line before the last is corruption and raises RunDirError naming it.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    rows: list[dict[str, Any]] = []
    pos = number = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break  # torn: the write of this line did not finish
        number += 1
        line = data[pos:end]
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError("not a result row")
        except ValueError as exc:
            if data[end + 1:].strip(b"\0\n \t"):
                raise RunDirError(f"{path}:{number}: corrupt result line ({exc}); move it away to continue") from None
            break  # torn last line (e.g. zeros after a crash)
        rows.append(row)
        pos = end + 1
    return rows, pos


class RunDir:
    """One run's directory; `check` validates (writes nothing), `commit` writes config and compacts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / CONFIG
        self.results_path = self.path / RESULTS
        self._rewrite = False
        self.done: list[dict[str, Any]] = []

    def read_config(self) -> dict[str, Any] | None:
        if not self.config_path.exists():
            return None
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{self.config_path}: unreadable ({exc})") from None
        if not isinstance(config, dict) or not isinstance(config.get("identity"), dict):
            raise RunDirError(f"{self.config_path}: not a ponder eval config")
        return config

    def check(self, identity: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
        """Whether this directory can hold a run of ``identity``; returns the rows already done.

        Raises:
            RunDirError: a file in the way, a different configuration, results without ``--resume``.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a directory")
        RunLock(self.path).probe()
        config = self.read_config()
        rows, intact = read_results(self.results_path)
        if config is None and self.results_path.exists():
            raise RunDirError(f"{self.path}: has {RESULTS} but no {CONFIG}; not a ponder eval run directory")
        if config is not None and config["identity"] != identity:
            raise RunDirError(f"{self.path} holds a different configuration ({_diff(config['identity'], identity)}); "
                              "choose another --out, or resume it with the options it was made with")
        if rows and not resume:
            raise RunDirError(f"{self.path} already holds {len(rows)} results; pass --resume to continue it, "
                              "or choose another --out")
        kept: dict[str, dict[str, Any]] = {}
        for row in rows:
            if not (row.get("error") or row.get("verifier_error")):
                kept.setdefault(str(row["id"]), row)
        size = self.results_path.stat().st_size if self.results_path.exists() else 0
        self._rewrite = len(kept) != len(rows) or intact != size
        self.done = list(kept.values())
        return self.done

    def commit(self, config: dict[str, Any]) -> None:
        """Write ``config.json`` and, when `check` found torn or retried rows, the compacted results."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_path, to_json(config, indent=2) + "\n")
        if self._rewrite:
            write_atomic(self.results_path, "".join(to_json(row) + "\n" for row in self.done))
            self._rewrite = False


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if a != b:
                parts.append(_diff(a, b, f"{prefix}{key}."))
        elif a != b:
            parts.append(f"{prefix}{key}: {a!r} there, {b!r} now")
    return "; ".join(parts)


_HELD: dict[str, list[int]] = {}
"""Run directories this process has locked: resolved path -> [fd, depth] (the lock is re-entrant)."""


class RunLock:
    """The advisory lock of one run directory (see the module docstring); a context manager.

    Re-entrant within a process, so a caller may hold it around `run_eval` (which takes it too)
    and the summary written after it.
    """

    def __init__(self, path: str | Path):
        self.dir = Path(path)
        self.path = self.dir / LOCK

    @property
    def _key(self) -> str:
        return str(self.dir.resolve())

    def acquire(self) -> RunLock:
        """Take the lock (creating the directory), or raise RunDirError naming its holder."""
        if self._key in _HELD:
            _HELD[self._key][1] += 1
            return self
        if self.dir.exists() and not self.dir.is_dir():
            raise RunDirError(f"{self.dir}: exists and is not a directory")
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + 0.5  # outlasts another process's `probe`, which locks for an instant
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RunDirError(self._busy()) from None
                time.sleep(0.05)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)  # a killed holder's record is replaced
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        os.fsync(fd)
        _HELD[self._key] = [fd, 1]
        return self

    def release(self) -> None:
        """Give the lock back (the file stays: removing it would let two processes lock two files)."""
        entry = _HELD.get(self._key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _HELD[self._key]
        try:
            os.ftruncate(entry[0], 0)  # nobody holds it now
            fcntl.flock(entry[0], fcntl.LOCK_UN)
        finally:
            os.close(entry[0])

    def probe(self) -> None:
        """Raise RunDirError when another process holds the lock; takes and creates nothing."""
        if self._key in _HELD or not self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunDirError(self._busy()) from None
        finally:
            os.close(fd)  # closing drops a lock taken here

    def holder(self) -> dict[str, Any]:
        """What the holder wrote in the lock file ({} while it is still writing it)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _busy(self) -> str:
        h = self.holder()
        who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}, since {h.get('started', '?')}" if h else "pid unknown"
        return (f"{self.dir} is in use by another ponder eval ({who}; lock {self.path}); wait for it to end, "
                f"or choose another --out")

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


class ResultsWriter:
    """Appends rows to ``results.jsonl``: one write per row, fsynced before `append` returns."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, row: dict[str, Any]) -> None:
        view = memoryview((to_json(row) + "\n").encode("utf-8"))
        while view:
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
