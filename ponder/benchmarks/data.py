"""Local problem files: read rows from .jsonl / .json / .parquet / .csv, and ponder's own schema.

Every row carries where it came from (``data.jsonl:3``, ``data.parquet row 3``) so that a schema
error names the file, the line or row, the row id and the field in one line.

ponder's own schema, one JSON object per line (``--data FILE`` without ``--benchmark``):

    {"id": "q1", "problem": "Compute 12+30", "answer": "42", "answer_kind": "integer"}

``id`` (string or integer, unique), ``problem`` (non-empty string), ``answer`` (string or number),
``answer_kind`` (optional: math | integer | choice; default math).

Limits, checked while reading so that bad input fails in milliseconds: a text field may hold at
most `max_problem_bytes()` bytes (64 KB; ``PONDER_MAX_PROBLEM_BYTES``), and a .jsonl/.csv line is
read with a bounded ``readline`` (`line_limit()`), never whole; a gold answer that is a number must
be finite (``NaN``, ``Infinity``, ``1e400`` are refused rather than graded as 'nan'/'inf').

    python -c "from ponder.benchmarks.data import load_ponder_file; print(load_ponder_file('tests/fixtures/eval/ponder.jsonl'))"
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ponder.types import ANSWER_KINDS, Problem, max_problem_bytes

__all__ = ["DataError", "Row", "read_rows", "line_limit", "typed_field", "text_field", "first_line", "row_id",
           "check_unique", "answer_field", "finite_gold", "check_size", "convert_rows", "ponder_problem",
           "load_ponder_file", "PONDER_SCHEMA", "SUFFIXES"]

PONDER_SCHEMA = f"id, problem, answer, optional answer_kind = {'|'.join(ANSWER_KINDS)}"
"""One-line description of ponder's own schema, shown in errors."""
SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
"""File types a local benchmark file may have."""


class DataError(ValueError):
    """A benchmark file or row that cannot be used; the message is one line naming where."""


@dataclass(frozen=True)
class Row:
    """One raw record and where it came from."""

    where: str
    """``file:line`` (jsonl, csv) or ``file row N`` (parquet, json, hub), 1-based."""
    index: int
    """0-based position among the records."""
    data: dict[str, Any]
    """The record's fields as read."""


def read_rows(path: str | Path) -> list[Row]:
    """Read every record of a local file.

    Raises:
        DataError: missing or unreadable file, unsupported suffix, invalid JSON or non-object rows.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a {'/'.join(SUFFIXES)} file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use {', '.join(SUFFIXES)}")
    try:
        rows = list(_READERS[suffix](path))
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read ({first_line(exc)})") from exc
    except Exception as exc:  # pyarrow raises its own types for corrupt parquet
        raise DataError(f"{path}: cannot read as {suffix[1:]} ({first_line(exc)})") from exc
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def line_limit() -> int:
    """Most bytes read for one .jsonl/.csv line: room for a problem at the size limit written with
    JSON's six-byte ``\\uXXXX`` escapes, plus the other fields."""
    return 6 * max_problem_bytes() + 4096


def _bounded_lines(path: Path, f: Any, name: Any = None) -> Iterator[tuple[int, str]]:
    """(line number, line) from a binary file, failing on a line longer than `line_limit()`
    after reading only that much of it (a 10 MB line is never held whole); ``name(prefix)``
    says which row and field the cut fell in."""
    name = name or _over_long
    limit = line_limit()
    number = 0
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        number += 1
        if len(raw) > limit:
            raise DataError(f"{path}:{number}: {name(raw)} is over {limit} bytes on one line (the limit is "
                            f"{max_problem_bytes()} bytes of problem text; set PONDER_MAX_PROBLEM_BYTES to raise it)")
        yield number, raw.decode("utf-8")


def _over_long(prefix: bytes) -> str:
    """Name the row and the field being read where an over-long line was cut (best effort)."""
    text = prefix.decode("utf-8", errors="replace")
    rid = re.search(r'"id"\s*:\s*("(?:[^"\\]|\\.){0,80}"|-?\d{1,30})', text)
    fields = re.findall(r'[{,]\s*"((?:[^"\\]|\\.){1,80})"\s*:', text)
    where = "the row"
    if rid:
        try:
            where = f"row {str(json.loads(rid.group(1)))!r}"
        except ValueError:
            where = f"row {rid.group(1)}"
    return f"{where}: field {fields[-1]!r}" if fields else where


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as f:
        for number, line in _bounded_lines(path, f):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(data, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
            yield Row(f"{path}:{number}", number - 1, data)


def _json(path: Path) -> Iterator[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects (or use .jsonl)")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise DataError(f"{path} row {i + 1}: expected a JSON object, got {type(item).__name__}")
        yield Row(f"{path} row {i + 1}", i, item)


def _parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    for i, item in enumerate(pq.read_table(path).to_pylist()):
        yield Row(f"{path} row {i + 1}", i, item)


def _csv(path: Path) -> Iterator[Row]:
    header: list[str] = []

    def name(prefix: bytes) -> str:  # the column the cut fell in: commas outside quotes, by the header
        text = re.sub(r'"(?:[^"]|"")*"?', '""', prefix.decode("utf-8", errors="replace"))
        cells = text.split(",")
        column = header[len(cells) - 1] if len(cells) <= len(header) else None
        return f"field {column!r}" if column else "the row"

    with path.open("rb") as f:
        # csv gets each physical line with its own line ending (the newline="" convention)
        reader = csv.DictReader(line for _, line in _bounded_lines(path, f, name))
        header.extend(reader.fieldnames or [])
        try:
            for i, item in enumerate(reader):
                yield Row(f"{path}:{reader.line_num}", i, dict(item))
        except csv.Error as exc:  # e.g. a quoted field spanning lines past csv's own field limit
            raise DataError(f"{path}:{reader.line_num + 1}: cannot read as csv ({first_line(exc)})") from None


_READERS = {".jsonl": _jsonl, ".json": _json, ".parquet": _parquet, ".csv": _csv}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def row_id(row: Row, key: str | None, prefix: str = "") -> str:
    """The row's id from field ``key`` (string or integer), or ``prefix + position`` without one."""
    value = row.data.get(key) if key else None
    if value is None or value == "":
        return f"{prefix}{row.index}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{row.where}: field {key!r}: expected a string or integer id, got {type(value).__name__}")
    return str(value)


def typed_field(row: Row, rid: str, *names: str, kinds: tuple[type, ...] = (str,)) -> Any:
    """The first present field of ``names``, type-checked; a one-line DataError otherwise."""
    for name in names:
        if name in row.data and row.data[name] is not None:
            value = row.data[name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                want = " or ".join(k.__name__ for k in kinds)
                raise DataError(f"{row.where}: row {rid!r}: field {name!r}: expected {want}, "
                                f"got {type(value).__name__}")
            return value
    raise DataError(f"{row.where}: row {rid!r}: field {' / '.join(map(repr, names))}: missing")


def text_field(row: Row, rid: str, *names: str) -> str:
    """A required non-empty string field of at most `max_problem_bytes()` bytes."""
    value = typed_field(row, rid, *names)
    name = next(n for n in names if row.data.get(n) is not None)
    if not value.strip():
        raise DataError(f"{row.where}: row {rid!r}: field {name!r}: empty")
    check_size(row, rid, name, value)
    return value


def check_size(row: Row, rid: str, name: str, text: str) -> None:
    """Refuse text over `max_problem_bytes()` before anything tokenizes it."""
    limit = max_problem_bytes()
    if len(text) > limit // 4 and len(text.encode("utf-8")) > limit:
        raise DataError(f"{row.where}: row {rid!r}: field {name!r}: {len(text.encode('utf-8'))} bytes, over the "
                        f"limit of {limit} (set PONDER_MAX_PROBLEM_BYTES to raise it)")


def answer_field(row: Row, rid: str, *names: str) -> str:
    """A required answer: a non-empty string, or a finite number written as a string."""
    value = typed_field(row, rid, *names, kinds=(str, int, float))
    name = next(n for n in names if row.data.get(n) is not None)
    text = value if isinstance(value, str) else format(value, "g") if isinstance(value, float) else str(value)
    if not text.strip():
        raise DataError(f"{row.where}: row {rid!r}: field {name!r}: empty")
    check_size(row, rid, name, text)
    return finite_gold(row, rid, name, text.strip())


def finite_gold(row: Row, rid: str, name: str, text: str) -> str:
    """``text`` unless it reads as a non-finite number (NaN, inf, 1e400): a gold answer of 'nan' or
    'inf' would mark every model answer wrong, or one that prints inf right, silently."""
    try:
        number = float(text.replace(",", ""))
    except (ValueError, OverflowError):
        return text  # not a plain number: \frac{1}{2}, \infty, "A" are the verifiers' business
    if not math.isfinite(number):
        raise DataError(f"{row.where}: row {rid!r}: field {name!r}: {text[:40]!r} is not a finite number")
    return text


def check_unique(problems: list[Problem], wheres: list[str]) -> None:
    """Ids key resuming and reports, so two rows may not share one."""
    seen: dict[str, str] = {}
    for problem, where in zip(problems, wheres):
        if problem.id in seen:
            raise DataError(f"{where}: row {problem.id!r}: field 'id': duplicates the id of {seen[problem.id]}")
        seen[problem.id] = where


def ponder_problem(row: Row, default_kind: str = "math") -> Problem:
    """A row in ponder's own schema as a Problem (the prompt is the problem text as is)."""
    if "id" not in row.data or row.data["id"] in (None, ""):
        raise DataError(f"{row.where}: field 'id': missing")
    rid = row_id(row, "id")
    kind = row.data.get("answer_kind") or default_kind
    if kind not in ANSWER_KINDS:
        raise DataError(f"{row.where}: row {rid!r}: field 'answer_kind': must be one of {', '.join(ANSWER_KINDS)} "
                        f"(got {kind!r})")
    return Problem(text_field(row, rid, "problem"), answer_field(row, rid, "answer"), kind, rid)


def convert_rows(rows: list[Row], convert: Any) -> list[Problem]:
    """``convert`` applied to every row; a ValueError of `Problem` itself gets the row's place."""
    problems = []
    for row in rows:
        try:
            problems.append(convert(row))
        except DataError:
            raise
        except ValueError as exc:  # e.g. the prompt with its instruction appended is over the size limit
            raise DataError(f"{row.where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return problems


def load_ponder_file(path: str | Path, default_kind: str = "math") -> list[Problem]:
    """Every row of a file in ponder's own schema (see the module docstring)."""
    rows = read_rows(path)
    problems = convert_rows(rows, lambda row: ponder_problem(row, default_kind))
    check_unique(problems, [row.where for row in rows])
    return problems
