"""Audit the verifiers on your own data: how often do they agree with a human's judgement?

A JSONL file holds one row per judged completion:

    {"gold": "1/2", "completion": "... so $\\\\boxed{0.5}$", "kind": "math", "expected": true}

`audit` runs each row through `get_verifier(kind).verify(gold, completion)` and counts
agreement, false positives (the verifier says right, the row says wrong) and false negatives
(the verifier says wrong, or cannot parse the gold, and the row says right). A verifier error
(`VerifierError`: its machinery failed) is counted apart, never as a verdict.

    from ponder.verifiers.audit import audit, format_report
    print(format_report(audit("judged.jsonl")))

or `python -m ponder.verifiers judged.jsonl`. Bad input raises `AuditInputError`, whose message
is one line naming the file, the row and the field.

Peer cross-check tables (`tests/fixtures/verifier_tables/<table>.jsonl`, one per peer: see
`PEER_TABLES`) hold rows `{"category", "gold", "pred", "peer"}`: `peer` is the peer's own verdict
(Math-Verify's or lighteval's, computed with its code). Where ponder differs on purpose the row
adds `"ponder"` (ponder's documented verdict) and `"why"`. `peer_table_rows` turns a table into
audit rows:

    rows = peer_table_rows("tests/fixtures/verifier_tables/integer_aime.jsonl", "integer")
    report = audit(rows)   # agreement counts a marked row as agreeing on its documented verdict
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PEER_TABLES",
    "AuditInputError",
    "AuditReport",
    "AuditRow",
    "KindSummary",
    "audit",
    "format_report",
    "peer_table_rows",
]

_FIELDS = ("gold", "completion", "kind", "expected")

PEER_TABLES = {
    "math_verify": "math",
    "lighteval_math": "math",
    "lighteval_choice": "choice",
    "integer_aime": "integer",
}
"""The peer cross-check tables by name, and the verifier each one checks."""


class AuditInputError(ValueError):
    """A row of the audit input is unusable; the message names the file, row and field."""


@dataclass(frozen=True)
class AuditRow:
    """One row whose verdict disagrees with its expectation (or that raised a verifier error)."""

    row: int
    """The row's number: its line in the file, or its 1-based position in a list of rows."""
    kind: str
    """The verifier that judged it: "math", "integer" or "choice"."""
    gold: str
    """The reference answer."""
    completion: str
    """The judged model output."""
    expected: bool
    """The row's own judgement."""
    verdict: bool | None
    """What the verifier said (None: the gold could not be parsed; also None for errors)."""
    error: str = ""
    """The verifier error's message, when the verifier failed instead of judging."""


@dataclass(frozen=True)
class KindSummary:
    """Counts for the rows of one verifier kind."""

    kind: str
    """The verifier kind, or "all"."""
    rows: int
    """Rows judged (verifier errors excluded)."""
    agree: int
    """Rows whose verdict matches their expectation."""
    false_positives: int
    """Verdict True, expected false."""
    false_negatives: int
    """Verdict False or None, expected true."""
    errors: int
    """Rows the verifier could not judge (VerifierError)."""

    @property
    def agreement(self) -> float:
        """agree / rows, or 0.0 when no row was judged."""
        return self.agree / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class AuditReport:
    """The result of an audit."""

    source: str
    """Where the rows came from: a file path, or "<rows>"."""
    summaries: tuple[KindSummary, ...]
    """One summary per kind present (in first-seen order), then one for "all"."""
    false_positives: tuple[AuditRow, ...]
    """Rows the verifier called right that are wrong."""
    false_negatives: tuple[AuditRow, ...]
    """Rows the verifier called wrong (or could not judge the gold of) that are right."""
    errors: tuple[AuditRow, ...]
    """Rows the verifier's machinery failed on."""

    @property
    def total(self) -> KindSummary:
        """The summary over all kinds."""
        return self.summaries[-1]


def _check(row: object, where: str, allowed: Iterable[str]) -> tuple[str, str, str, bool]:
    """Validate one decoded row; raise AuditInputError naming `where` and the field."""
    if not isinstance(row, dict):
        raise AuditInputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field in _FIELDS:
        if field not in row:
            raise AuditInputError(f"{where}: missing field {field!r}")
    for field in ("gold", "completion", "kind"):
        if not isinstance(row[field], str):
            kind_name = type(row[field]).__name__
            raise AuditInputError(f"{where}: field {field!r} must be a string, got {kind_name}")
    if row["kind"] not in allowed:
        names = ", ".join(sorted(allowed))
        kind = row["kind"]
        raise AuditInputError(f"{where}: field 'kind': unknown kind {kind!r} (allowed: {names})")
    if not isinstance(row["expected"], bool):
        got = json.dumps(row["expected"])
        raise AuditInputError(f"{where}: field 'expected' must be true or false, got {got}")
    return row["gold"], row["completion"], row["kind"], row["expected"]


def _load(source, allowed) -> tuple[str, list[tuple[int, tuple[str, str, str, bool]]]]:
    """Read and validate every row before any is judged: bad input fails fast."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise AuditInputError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditInputError(f"{path}: cannot read ({exc})") from None
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                decoded = json.loads(line)
            except ValueError as exc:
                raise AuditInputError(f"{where}: not valid JSON ({exc})") from None
            rows.append((number, _check(decoded, where, allowed)))
        return str(path), rows
    rows = [(i, _check(row, f"<rows>:{i}", allowed)) for i, row in enumerate(source, start=1)]
    return "<rows>", rows


def audit(source: str | Path | Iterable[Mapping], verifiers: Mapping | None = None) -> AuditReport:
    """Judge every row and compare the verdicts with the rows' expectations.

    Args:
        source: a JSONL file path, or the rows themselves (dicts with gold, completion, kind,
            expected).
        verifiers: verifiers by kind; default: the shared ones from `get_verifier`.

    Returns:
        The report: per-kind counts and the disagreeing rows.

    Raises:
        AuditInputError: a missing file, a row that is not JSON or not an object, a missing or
            mistyped field, an unknown kind, or an `expected` that is not a boolean.
    """
    from ponder.verifiers import REGISTRY, VerifierError, get_verifier  # the package imports us

    allowed = set(verifiers) if verifiers is not None else set(REGISTRY)
    name, rows = _load(source, allowed)
    counts: dict[str, list[int]] = {}
    positives, negatives, errors = [], [], []
    for number, (gold, completion, kind, expected) in rows:
        verifier = verifiers[kind] if verifiers is not None else get_verifier(kind)
        tally = counts.setdefault(kind, [0, 0, 0, 0, 0])  # rows, agree, fp, fn, errors
        try:
            verdict = verifier.verify(gold, completion)
        except VerifierError as exc:
            tally[4] += 1
            errors.append(AuditRow(number, kind, gold, completion, expected, None, str(exc)))
            continue
        tally[0] += 1
        if (verdict is True) == expected:
            tally[1] += 1
            continue
        row = AuditRow(number, kind, gold, completion, expected, verdict)
        (positives if verdict is True else negatives).append(row)
        tally[2 if verdict is True else 3] += 1
    summaries = [KindSummary(kind, *tally) for kind, tally in counts.items()]
    total = [sum(column) for column in zip(*counts.values())] or [0] * 5
    summaries.append(KindSummary("all", *total))
    return AuditReport(name, tuple(summaries), tuple(positives), tuple(negatives), tuple(errors))


def _snippet(text: str, width: int) -> str:
    """The end of `text` (where answers are) on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "..." + flat[-(width - 3) :]


def format_report(report: AuditReport, max_rows: int = 20) -> str:
    """The report as text: a table of counts, then the disagreeing rows.

    Args:
        report: what `audit` returned.
        max_rows: the most rows listed per section (the counts always cover all rows).

    Returns:
        Lines ready to print.
    """
    total = report.total
    lines = [f"{report.source}: {total.rows + total.errors} rows", ""]
    header = ("kind", "rows", "agree", "agreement", "false+", "false-", "errors")
    lines.append("{:<9}{:>6}{:>7}{:>11}{:>8}{:>8}{:>8}".format(*header))
    for s in report.summaries:
        lines.append(
            f"{s.kind:<9}{s.rows:>6}{s.agree:>7}{s.agreement:>10.1%} "
            f"{s.false_positives:>7}{s.false_negatives:>8}{s.errors:>8}"
        )
    sections = [
        ("false positives (verifier: right; expected: wrong)", report.false_positives),
        (
            "false negatives (verifier: wrong or gold unparsable; expected: right)",
            report.false_negatives,
        ),
        ("verifier errors (no verdict)", report.errors),
    ]
    for title, rows in sections:
        if not rows:
            continue
        lines += ["", f"{title}: {len(rows)}"]
        for row in rows[:max_rows]:
            said = row.error if row.error else f"verdict {row.verdict}"
            lines.append(f"  row {row.row} [{row.kind}] gold {_snippet(row.gold, 40)!r}: {said}")
            lines.append(f"      completion: {_snippet(row.completion, 100)!r}")
        if len(rows) > max_rows:
            lines.append(f"  ... and {len(rows) - max_rows} more")
    return "\n".join(lines)


def peer_table_rows(path: str | Path, kind: str, documented: bool = True) -> list[dict]:
    """A peer cross-check table as audit rows.

    Args:
        path: the table, JSONL with gold, pred, peer and (where ponder differs on purpose)
            ponder and why.
        kind: the verifier that judges it ("math", "integer" or "choice").
        documented: expect ponder's documented verdict where a row has one (the default);
            False expects the peer's verdict everywhere (raw agreement with the peer).

    Returns:
        Rows for `audit`, with the table's category and why kept alongside.

    Raises:
        AuditInputError: when the file is missing or a row is not a table row.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise AuditInputError(f"{path}: cannot read ({exc})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            expected = row["ponder"] if documented and "ponder" in row else row["peer"]
            rows.append(
                {
                    "gold": row["gold"],
                    "completion": row["pred"],
                    "kind": kind,
                    "expected": expected,
                    "category": row.get("category", ""),
                    "why": row.get("why", ""),
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditInputError(f"{path}:{number}: not a table row ({exc!r})") from None
    return rows
