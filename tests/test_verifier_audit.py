"""Tests for the verifier audit: `ponder.verifiers.audit` and `python -m ponder.verifiers`.

Run: PYTHONPATH=. .venv/bin/python -m pytest -q tests/test_verifier_audit.py
"""

import json
import subprocess
import sys

import pytest

from ponder.verifiers import AuditInputError, VerifierError, audit, format_report
from ponder.verifiers.__main__ import main

pytestmark = pytest.mark.timeout(120)

ROWS = [
    {"gold": r"\frac{1}{2}", "completion": r"so $\boxed{0.5}$", "kind": "math", "expected": True},
    {"gold": "32", "completion": r"\boxed{2^5}", "kind": "integer", "expected": True},
    {"gold": "5", "completion": r"\boxed{2^5}", "kind": "integer", "expected": True},  # a false -
    {"gold": "B", "completion": "I think it's B", "kind": "choice", "expected": True},
    {"gold": "A", "completion": "Answer: A", "kind": "choice", "expected": False},  # a false +
]


def write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(row) for row in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_audit_counts_agreement_and_disagreements(tmp_path):
    report = audit(write_jsonl(tmp_path / "rows.jsonl", ROWS))
    total = report.total
    assert (total.rows, total.agree, total.false_positives, total.false_negatives) == (5, 3, 1, 1)
    assert [s.kind for s in report.summaries] == ["math", "integer", "choice", "all"]
    assert [r.row for r in report.false_positives] == [5]
    assert [(r.row, r.verdict) for r in report.false_negatives] == [(3, False)]
    assert total.agreement == pytest.approx(0.6)


def test_audit_takes_rows_directly():
    report = audit(ROWS[:2])
    assert report.source == "<rows>" and report.total.agree == 2


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n" + json.dumps(ROWS[2]) + "\n\n")
    (row,) = audit(path).false_negatives
    assert row.row == 2


def test_verifier_errors_are_counted_apart():
    class Broken:
        name = "math"

        def verify(self, gold, text):
            raise VerifierError("math verifier worker failed 3 times: worker exited unexpectedly")

    report = audit(ROWS[:1], verifiers={"math": Broken()})
    assert report.total.errors == 1 and report.total.rows == 0
    assert "exited unexpectedly" in report.errors[0].error
    assert "verifier errors (no verdict): 1" in format_report(report)


def test_format_report_lists_disagreeing_rows(tmp_path):
    text = format_report(audit(write_jsonl(tmp_path / "rows.jsonl", ROWS)))
    assert "all" in text and "60.0%" in text
    assert "false positives (verifier: right; expected: wrong): 1" in text
    assert "row 5 [choice]" in text and "row 3 [integer]" in text


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", "rows.jsonl:2: not valid JSON"),
        ("[1, 2]", "rows.jsonl:2: expected a JSON object, got list"),
        ('{"gold": "1", "completion": "1", "kind": "math"}', "rows.jsonl:2: missing field 'expected'"),
        ('{"completion": "1", "kind": "math", "expected": true}', "rows.jsonl:2: missing field 'gold'"),
        (
            '{"gold": 1, "completion": "1", "kind": "math", "expected": true}',
            "rows.jsonl:2: field 'gold' must be a string, got int",
        ),
        (
            '{"gold": "1", "completion": "1", "kind": "regex", "expected": true}',
            "rows.jsonl:2: field 'kind': unknown kind 'regex' (allowed: choice, integer, math)",
        ),
        (
            '{"gold": "1", "completion": "1", "kind": "math", "expected": "yes"}',
            "rows.jsonl:2: field 'expected' must be true or false, got \"yes\"",
        ),
        (
            '{"gold": "1", "completion": "1", "kind": "math", "expected": 1}',
            "rows.jsonl:2: field 'expected' must be true or false, got 1",
        ),
    ],
)
def test_bad_rows_are_one_line_errors_with_exit_status_2(tmp_path, capsys, line, message):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS[:1], [line])
    with pytest.raises(AuditInputError) as info:
        audit(path)
    assert str(info.value).startswith(f"{tmp_path}/{message}")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path}/{message}")


def test_missing_file_is_an_error(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    assert main([str(missing)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such file\n"


def test_main_prints_the_report(tmp_path, capsys):
    assert main([str(write_jsonl(tmp_path / "rows.jsonl", ROWS)), "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert "false negatives" in out and "completion:" in out


def test_python_dash_m_runs_the_audit(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS[1:2])
    out = subprocess.run(
        [sys.executable, "-m", "ponder.verifiers", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "100.0%" in out.stdout


def test_ponder_verify_command(tmp_path):
    """`ponder verify FILE` prints the report; a bad row is one line naming file, row and field, exit 2."""
    from typer.testing import CliRunner

    from ponder.cli import app

    good = tmp_path / "judged.jsonl"
    good.write_text('{"gold": "32", "completion": "so $\\\\boxed{2^5}$", "kind": "integer", "expected": true}\n'
                    '{"gold": "33", "completion": "The answer is 34", "kind": "integer", "expected": true}\n')
    result = CliRunner().invoke(app, ["verify", str(good)])
    assert result.exit_code == 0, result.output
    assert "integer" in result.stdout and "50.0%" in result.stdout and "false negatives" in result.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"gold": "1", "completion": "1", "kind": "essay", "expected": true}\n')
    result = CliRunner().invoke(app, ["verify", str(bad)])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "bad.jsonl:1" in line and "kind" in line
