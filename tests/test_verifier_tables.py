"""Cross-check tables: ponder's verifiers against Math-Verify's and lighteval's own verdicts.

One table per peer in tests/fixtures/verifier_tables/ (JSONL, one row per line):

    {"category": ..., "gold": ..., "pred": ..., "peer": true|false}
    {..., "peer": false, "ponder": true, "why": "..."}      # where ponder differs on purpose

- math_verify.jsonl (math verifier): `peer` is Math-Verify 0.9's
  `verify(parse(gold, cfg), parse(pred, cfg))` with cfg = [LatexExtractionConfig(
  boxed_match_priority=0), ExprExtractionConfig()] at its default precision (6 digits).
- lighteval_math.jsonl (math verifier): lighteval 0.13's extractive match (its
  `MultilingualExtractiveMatchMetric` logic: Latex (boxed first) + Expr targets for gold and
  prediction, precision 6; `peer_targets` names the targets where a row used fewer).
- lighteval_choice.jsonl (choice verifier): lighteval's GPQA letter extraction
  (`IndicesExtractionConfig("NativeLetters", try_extract_without_anchor=True)`, as its
  gpqa:diamond metric uses it).
- integer_aime.jsonl (integer verifier): Math-Verify as above; lighteval's AIME metric
  (Expr + Latex targets) gives the same verdict on every row.

The rows are ours, written by category after the peers' own test suites (numbers, thousands
separators, decimal commas, percentages, fractions, radicals, units, sets, intervals, tuples,
matrices, equations, boxed and "final answer is" extraction, text answers, scientific
notation, answer cues, letters in prose); `peer` was computed by running the peer's code on each
row. `why` says where ponder differs on purpose; the verifier's docstring says the same.

Agreement counts a marked row as agreeing when ponder gives its documented verdict. Run:
    PYTHONPATH=. .venv/bin/python -m pytest -q tests/test_verifier_tables.py
"""

import json
from pathlib import Path

import pytest

from ponder.verifiers.audit import PEER_TABLES, audit, format_report, peer_table_rows

pytestmark = pytest.mark.timeout(300)

TABLES = Path(__file__).parent / "fixtures" / "verifier_tables"
GOALS = {
    "math_verify": 0.98,
    "lighteval_math": 0.97,
    "lighteval_choice": 0.97,
    "integer_aime": 0.97,
}
MIN_ROWS = {"math_verify": 100, "lighteval_math": 50, "lighteval_choice": 40, "integer_aime": 100}
# The only reasons the integer verifier may accept what the peer rejects, each for a value that
# is right: plain-text arithmetic ("2 \cdot 3" outside $...$ is 6; the peers take the last
# number, 3) and a negated cue ("The answer is not 5; it must be 7"; the peers read 5).
LENIENT_ON_PURPOSE = ("plain-text arithmetic", "a negated number after a cue")


def _raw(name: str) -> list[dict]:
    lines = (TABLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("name", sorted(PEER_TABLES))
def test_table_is_well_formed(name):
    rows = _raw(name)
    assert len(rows) >= MIN_ROWS[name]
    seen = set()
    for row in rows:
        assert {"category", "gold", "pred", "peer"} <= set(row), row
        assert isinstance(row["peer"], bool), row
        assert ("ponder" in row) == ("why" in row), row
        if "ponder" in row:  # a mark says where ponder differs: it must differ
            assert row["ponder"] != row["peer"], row
            assert row["why"].strip(), row
        assert (row["gold"], row["pred"]) not in seen, row
        seen.add((row["gold"], row["pred"]))


@pytest.mark.parametrize("name", sorted(PEER_TABLES))
def test_agreement_with_peer_table(name):
    kind = PEER_TABLES[name]
    report = audit(peer_table_rows(TABLES / f"{name}.jsonl", kind))
    assert not report.errors, format_report(report)
    assert report.total.agreement >= GOALS[name], format_report(report)


def test_integer_verifier_has_no_false_positive_on_its_table():
    report = audit(peer_table_rows(TABLES / "integer_aime.jsonl", "integer"))
    assert report.total.false_positives == 0, format_report(report)
    # and where it is more lenient than the peer on purpose, only for a right value the peer
    # cannot read
    for row in _raw("integer_aime"):
        if row.get("ponder") is True and row["peer"] is False:
            assert row["why"].startswith(LENIENT_ON_PURPOSE), row


def test_lighteval_tables_together_meet_the_goal():
    rows = peer_table_rows(TABLES / "lighteval_math.jsonl", "math")
    rows += peer_table_rows(TABLES / "lighteval_choice.jsonl", "choice")
    report = audit(rows)
    assert report.total.agreement >= 0.97, format_report(report)


def test_peer_table_rows_can_expect_the_peer_everywhere():
    documented = peer_table_rows(TABLES / "lighteval_choice.jsonl", "choice")
    raw = peer_table_rows(TABLES / "lighteval_choice.jsonl", "choice", documented=False)
    marked = [row for row in _raw("lighteval_choice") if "ponder" in row]
    assert marked and len(raw) == len(documented)
    assert sum(a["expected"] != b["expected"] for a, b in zip(documented, raw)) == len(marked)
