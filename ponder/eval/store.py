"""A run directory on disk: ``config.json`` (what was run) and ``results.jsonl`` (one line per problem).

Rows are appended with one ``os.write`` each on an ``O_APPEND`` descriptor and fsynced before the
next, so a run killed at any moment (SIGKILL included) leaves whole rows plus at most one torn last
line. Resuming drops that torn line, the rows of problems that failed with an error (to retry
them) and any duplicate id, rewriting the file atomically (temp file, fsync, rename); rows already
written are never lost. A directory made with a different configuration is refused, before
anything is written.

    from ponder.eval.store import read_results
    rows, intact_bytes = read_results("runs/x/results.jsonl")
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "RunDirError", "ResultsWriter", "read_results", "write_atomic", "to_json", "CONFIG", "RESULTS"]

CONFIG = "config.json"
"""What was run: ``identity`` (must match to resume), ``settings`` (may change), ``problems``."""
RESULTS = "results.jsonl"
"""One JSON object per line, one line per problem, in the order they finished."""


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
    tmp = path.with_name(f".{path.name}.tmp")
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
            if not row.get("error"):
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
