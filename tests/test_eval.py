"""Eval without a model: loaders on fixture files in each benchmark's real schema, estimators,
the run directory (resume, torn lines, refused configurations) with a scripted controller, reports,
and the CLI's one-line errors. No hub access: the hub is replaced by a fake `datasets` module.

    .venv/bin/python -m pytest tests/test_eval.py -q
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import types
from itertools import combinations
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.eval import metrics
from ponder.benchmarks.registry import BENCHMARKS, HubError, load_problems, shuffle_choices
from ponder.cli.eval import app, parse_sweep
from ponder.benchmarks.data import DataError
from ponder.eval.report import compare, finish_run
from ponder.eval.runner import RunConfig, run_eval
from ponder.eval.store import RunDirError, read_results
from ponder.types import Solution, Trace
from ponder.verifiers import get_verifier

FIX = Path(__file__).parent / "fixtures" / "eval"


# ---------------------------------------------------------------- loaders

def test_aime24_fixture_and_leading_zero_gold():
    problems = load_problems("aime24", FIX / "aime24.jsonl")
    assert [p.id for p in problems] == ["60", "61", "62"]
    assert all(p.answer_kind == "integer" and "\\boxed{}" in p.prompt for p in problems)
    assert problems[2].gold == "33"  # "033" = 33
    assert get_verifier("integer").verify(problems[2].gold, "<think>..</think>\\boxed{33}") is True
    assert get_verifier("integer").verify(problems[2].gold, "\\boxed{330}") is False


def test_aime25_opencompass_schema_and_limit():
    problems = load_problems("aime25", FIX / "aime25.jsonl", limit=1)
    assert len(problems) == 1 and problems[0].gold == "70" and problems[0].id == "aime25-0"
    assert problems[0].prompt.startswith("Find the sum of all integer bases")


def test_math500_and_gsm8k_fixtures():
    math500 = load_problems("math500", FIX / "math500.jsonl")
    assert math500[0].id == "test/precalculus/807.json" and math500[0].answer_kind == "math"
    assert math500[1].gold == "\\frac{14}{3}"
    gsm = load_problems("gsm8k", FIX / "gsm8k.jsonl")
    assert [p.gold for p in gsm] == ["72", "10", "36000"]
    assert [p.id for p in gsm] == ["0", "1", "2"] and gsm[0].answer_kind == "integer"


def test_gpqa_shuffle_is_deterministic_and_gold_letter_is_right(tmp_path):
    problems = load_problems("gpqa-diamond", FIX / "gpqa_diamond.csv")
    assert [p.id for p in problems][0] == "recZ13cwgDQb9jRd"
    import csv
    rows = {r["Record ID"]: r for r in csv.DictReader((FIX / "gpqa_diamond.csv").open(newline=""))}
    for p in problems:
        options = dict(line.split(") ", 1) for line in p.prompt.splitlines() if line[:3] in ("A) ", "B) ", "C) ", "D) "))
        assert options[p.gold] == rows[p.id]["Correct Answer"].strip()
        assert sorted(options.values()) == sorted(rows[p.id][k].strip() for k in
                                                    ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                                                     "Incorrect Answer 3"))
        assert p.answer_kind == "choice"
    # same question id -> same order, whatever the file order or format (parquet here)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(list(rows.values())[::-1]), tmp_path / "g.parquet")
    again = {p.id: p for p in load_problems("gpqa-diamond", tmp_path / "g.parquet")}
    assert all(again[p.id] == p for p in problems)
    assert shuffle_choices("q", "right", ["w1", "w2", "w3"]) == shuffle_choices("q", "right", ["w1", "w2", "w3"])
    golds = {shuffle_choices(f"q{i}", "right", ["w1", "w2", "w3"])[1] for i in range(40)}
    assert golds == set("ABCD")  # the correct option is not always in one place


def test_ponder_schema_and_arith():
    problems = load_problems(None, FIX / "ponder.jsonl")
    assert [(p.id, p.answer_kind, p.gold) for p in problems] == [
        ("sum-1", "integer", "42"), ("2", "math", "\\frac{3}{4}"), ("pick", "choice", "B")]
    arith = load_problems("arith", limit=5)
    assert [p.id for p in arith] == [f"arith-1-{i}" for i in range(5)]
    assert arith[0].prompt.startswith("Compute ") and arith[0].answer_kind == "integer"
    assert len(load_problems(None)) == 500 and set(BENCHMARKS) == {"aime24", "aime25", "gpqa-diamond", "math500",
                                                                   "gsm8k", "arith"}


@pytest.mark.parametrize("content, bench, expected", [
    ('{"id": 1, "problem": "Compute 1+2"}\n', None, ":1: row '1': field 'answer': missing"),
    ('{"id": 1, "problem": "", "answer": "3"}\n', None, ":1: row '1': field 'problem': empty"),
    ('{"id": 1, "problem": ["x"], "answer": "3"}\n', None, "field 'problem': expected str, got list"),
    ('{"id": 1, "problem": "a", "answer": "3"}\n{"id": 1, "problem": "b", "answer": "4"}\n', None,
     ":2: row '1': field 'id': duplicates"),
    ('{"id": 1, "problem": "a", "answer": "3", "answer_kind": "float"}\n', None, "field 'answer_kind'"),
    ('{"problem": "a", "answer": "3"}\n', None, ":1: field 'id': missing"),
    ('{"id": 1, "problem": "a", "answer": "3"}\n{"id": 2, "problem": \n', None, ":2: not valid JSON"),
    ('[1, 2]\n', None, ":1: expected a JSON object"),
    ('{"question": "How many?", "answer": "It is 72."}\n', "gsm8k", "row '0': field 'answer': no final answer"),
    ('{"Question": "Q?", "Correct Answer": "x", "Incorrect Answer 1": "y", "Incorrect Answer 2": "z"}\n',
     "gpqa-diamond", "field 'Incorrect Answer 3': missing"),
    ('{"id": 7, "answer": "5"}\n', "aime24", "row '7': field 'problem' / 'question'"),
])
def test_malformed_rows_name_file_line_row_and_field(tmp_path, content, bench, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_problems(bench, path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_unreadable_inputs(tmp_path):
    for path, expected in [(tmp_path / "none.jsonl", "no such file"), (tmp_path, "is a directory"),
                           (tmp_path / "x.txt", "unsupported file type")]:
        if path.suffix == ".txt":
            path.write_text("x")
        with pytest.raises(DataError, match=expected):
            load_problems(None, path)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read as parquet"):
        load_problems("aime24", tmp_path / "broken.parquet")
    with pytest.raises(DataError, match="unknown benchmark 'aime23'; choose one of aime24"):
        load_problems("aime23")


def test_hub_unreachable_says_so_and_shows_data_alternative(monkeypatch):
    def load_dataset(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'HuggingFaceH4/aime_2024' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(HubError) as info:
        load_problems("aime24")
    message = str(info.value)
    assert "cannot reach the Hugging Face hub" in message and "--benchmark aime24 --data FILE" in message
    assert "\n" not in message
    with pytest.raises(HubError, match="gated: accept its terms"):
        load_problems("gpqa-diamond")


def test_hub_rows_convert_like_local_files(monkeypatch):
    calls = []

    def load_dataset(path, config=None, split=None):
        calls.append((path, config, split))
        return [{"question": f"{config} q{i}?", "answer": str(i)} for i in range(2)]
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    problems = load_problems("aime25")
    assert calls == [("opencompass/AIME2025", "AIME2025-I", "test"), ("opencompass/AIME2025", "AIME2025-II", "test")]
    assert [p.id for p in problems] == ["AIME2025-I-0", "AIME2025-I-1", "AIME2025-II-0", "AIME2025-II-1"]


# ---------------------------------------------------------------- estimators

def test_pass_at_k_matches_closed_form():
    assert metrics.pass_at_k(2, 1, 1) == 0.5
    assert metrics.pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2)
    assert metrics.pass_at_k(4, 0, 2) == 0.0 and metrics.pass_at_k(4, 3, 2) == 1.0
    for n in range(1, 11):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert metrics.pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)
    # pass@k is the chance that k draws without replacement contain a correct one: enumerate them
    correct = [True, False, False, True, False]
    hits = [any(correct[i] for i in s) for s in combinations(range(5), 3)]
    assert metrics.pass_at_k(5, 2, 3) == pytest.approx(sum(hits) / len(hits))
    with pytest.raises(ValueError):
        metrics.pass_at_k(3, 1, 4)


def test_majority_at_k_and_wilson():
    samples = [("1", True), ("2", False), ("2", False)]
    assert metrics.majority_at_k(samples, 3) == 0.0
    assert metrics.majority_at_k(samples, 1) == pytest.approx(1 / 3)
    assert metrics.majority_at_k(samples, 2) == pytest.approx(1 / 3)  # {1,2}: tie -> 1/2, twice; {2,2}: 0
    assert metrics.majority_at_k([(None, False), ("5", True)], 1) == 0.5
    lo, hi = metrics.wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert metrics.wilson(0, 10)[0] == 0.0 and round(metrics.wilson(0, 10)[1], 4) == 0.2775
    assert metrics.wilson(0, 0) == (0.0, 1.0)
    assert metrics.sample_ks(8) == [1, 2, 4, 8] and metrics.sample_ks(6) == [1, 2, 4, 6]
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5


def _row(i, correct, samples=(), **kw):
    return {"id": f"p{i}", "correct": correct, "total_tokens": 10 * (i + 1), "sequential_tokens": 5,
            "wasted_tokens": 0, "latency_s": 0.1, "samples": list(samples), **kw}


def test_summarize_skipped_errors_and_samples():
    s = lambda a, ok, **kw: {"answer": a, "correct": ok, "finish_reason": "stop", "aborted": False, **kw}
    rows = [_row(0, True, [s("1", True), s("2", False)]), _row(1, False, [s("2", False), s("2", False)]),
            _row(2, None, skipped="gold answer 'x' cannot be parsed"), _row(3, False, error="RuntimeError: boom")]
    out = metrics.summarize(rows, expected=5)
    assert (out["problems"], out["rows"], out["scored"], out["correct"]) == (5, 4, 3, 1)
    assert out["accuracy"] == pytest.approx(1 / 3) and out["skipped"] == ["p2"] and out["errors"] == ["p3"]
    assert out["tokens_per_correct"] == 30 and out["total_tokens"]["mean"] == 15
    assert out["pass@k"] == {"1": pytest.approx(1 / 6), "2": pytest.approx(1 / 3)}
    assert out["maj@k"]["2"] == pytest.approx(1 / 6)  # row 0: tie -> 1/2; row 1: 0; error row: 0
    aborted = [s("1", True), s(None, False, aborted=True, finish_reason="abort")]
    assert "pass@k" not in metrics.summarize([_row(0, True, aborted)])


# ---------------------------------------------------------------- runner with a scripted controller

class Scripted:
    """Answers problem i with its gold unless i is in `wrong`; raises for ids in `fail`."""

    name = "scripted"

    def __init__(self, wrong=(), fail=(), delay=0.0, n=1):
        self.wrong, self.fail, self.delay, self.n, self.calls = set(wrong), set(fail), delay, n, []

    async def run(self, problem, engine, *, verifier=None):
        self.calls.append(problem.id)
        await asyncio.sleep(self.delay)
        if problem.id in self.fail:
            raise RuntimeError("engine fell over\nsecond line")
        answer = "0" if problem.id in self.wrong else problem.gold
        text = f"<think>x</think>\\boxed{{{answer}}}"
        traces = [Trace(token_ids=[1] * (5 + j), text=text, finish_reason="stop", answer=verifier.extract(text))
                  for j in range(self.n)]
        return Solution(traces[0].answer, traces, 0.0, self.name)


class Engine:
    stats = types.SimpleNamespace(generated_tokens=0)


def _config(tmp_path, **kw):
    return RunConfig(out=str(tmp_path / "run"), limit=6, **kw)


async def test_runner_writes_one_row_per_problem_and_resumes(tmp_path):
    problems = load_problems("arith", limit=6)
    result = await run_eval(_config(tmp_path), problems, Engine(), controller=Scripted(wrong={"arith-1-2"}),
                            progress=False)
    assert result.new == 6
    rows, _ = read_results(tmp_path / "run" / "results.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in problems)
    assert sum(r["correct"] for r in rows) == 5 and all(r["samples"][0]["tokens"] == 5 for r in rows)
    again = Scripted()
    result = await run_eval(_config(tmp_path, resume=True), problems, Engine(), controller=again, progress=False)
    assert again.calls == [] and result.new == 0 and len(result.rows) == 6
    summary = finish_run(tmp_path / "run")
    assert summary["accuracy"] == pytest.approx(5 / 6) and (tmp_path / "run" / "summary.md").exists()


async def test_resume_drops_torn_line_and_retries_errors(tmp_path):
    problems = load_problems("arith", limit=6)
    await run_eval(_config(tmp_path), problems, Engine(), controller=Scripted(fail={"arith-1-1"}), progress=False)
    results = tmp_path / "run" / "results.jsonl"
    rows, _ = read_results(results)
    assert [r for r in rows if r.get("error")][0]["error"] == "RuntimeError: engine fell over"
    keep = [r for r in rows if r["id"] != "arith-1-4"]
    torn = json.dumps([r for r in rows if r["id"] == "arith-1-4"][0])[:40]
    results.write_text("".join(json.dumps(r) + "\n" for r in keep) + torn)  # killed mid-write
    again = Scripted()
    await run_eval(_config(tmp_path, resume=True), problems, Engine(), controller=again, progress=False)
    assert sorted(again.calls) == ["arith-1-1", "arith-1-4"]
    rows, intact = read_results(results)
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in problems) and intact == results.stat().st_size
    assert not any(r.get("error") for r in rows)


async def test_refusals_leave_files_untouched(tmp_path):
    problems = load_problems("arith", limit=6)
    await run_eval(_config(tmp_path), problems, Engine(), controller=Scripted(), progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(RunDirError, match="already holds 6 results; pass --resume"):
        await run_eval(_config(tmp_path), problems, Engine(), controller=Scripted(), progress=False)
    with pytest.raises(RunDirError, match=r"different configuration \(controller: 'single' there, 'majority' now"):
        await run_eval(_config(tmp_path, controller="majority", resume=True), problems, Engine(),
                       controller=Scripted(), progress=False)
    with pytest.raises(RunDirError, match=r"options.temperature: None there, 0.3 now"):
        await run_eval(_config(tmp_path, options={"temperature": 0.3}, resume=True), problems, Engine(),
                       progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


async def test_unparseable_gold_is_skipped_and_listed(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "ok", "problem": "Compute 1+2", "answer": "3", "answer_kind": "integer"}\n'
                    '{"id": "bad", "problem": "Compute x", "answer": "x+1", "answer_kind": "integer"}\n')
    problems = load_problems(None, path)
    config = RunConfig(out=str(tmp_path / "run"), benchmark=None, data=str(path))
    scripted = Scripted()
    await run_eval(config, problems, Engine(), controller=scripted, progress=False)
    assert scripted.calls == ["ok"]
    summary = finish_run(tmp_path / "run")
    assert summary["skipped"] == ["bad"] and summary["accuracy"] == 1.0 and summary["scored"] == 1
    assert "bad" in (tmp_path / "run" / "summary.md").read_text()


async def test_runner_stops_when_every_problem_fails(tmp_path):
    from ponder.eval.runner import RunAborted

    problems = load_problems("arith", limit=12)
    with pytest.raises(RunAborted, match="problems in a row failed"):
        await run_eval(RunConfig(out=str(tmp_path / "run"), limit=12, concurrency=1), problems, Engine(),
                       controller=Scripted(fail={p.id for p in problems}), progress=False)
    assert len(read_results(tmp_path / "run" / "results.jsonl")[0]) == 5


async def test_report_compares_runs_and_sweeps(tmp_path):
    problems = load_problems("arith", limit=6)
    for n in (1, 2, 4):
        cfg = RunConfig(out=str(tmp_path / "sweep" / f"n={n}"), limit=6, controller="majority", options={"n": n},
                        sweep={"key": "n", "value": n, "group": str(tmp_path / "sweep")})
        await run_eval(cfg, problems, Engine(), controller=Scripted(wrong={"arith-1-0"}, n=n), progress=False)
        finish_run(cfg.out)
    await run_eval(_config(tmp_path), problems, Engine(), controller=Scripted(), progress=False)
    from rich.console import Console

    console = Console(width=200, record=True)
    out = compare([tmp_path / "sweep", tmp_path / "run"], tmp_path / "cmp", console=console)
    assert [Path(s["run"]).name for s in out["summaries"]] == ["n=1", "n=2", "n=4", "run"]
    assert out["plot"].read_bytes()[:4] == b"\x89PNG"
    text = console.export_text()
    assert "majority n=4" in text and "83.3%" in text and "plot:" in text
    assert "pass@k" in out["markdown"].read_text()


# ---------------------------------------------------------------- CLI errors (no model is loaded)

def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--benchmark", "aime23"], ["unknown benchmark 'aime23'"]),
    (["--controller", "nope"], ["unknown controller 'nope'"]),
    (["--engine", "tpu"], ["--engine must be one of"]),
    (["-n", "4"], ["controller 'single' has no option -n"]),
    (["--option", "nokey"], ["--option must look like KEY=VALUE"]),
    (["--sweep", "n"], ["--sweep must look like KEY=V1,V2"]),
    (["--controller", "ffs", "-n", "4", "--sweep", "n=1,2"], ["--sweep n conflicts"]),
    (["--limit", "0"], ["--limit must be >= 1"]),
    (["--seed", "5", "--sweep", "seed=-1,2"], ["error: seed must be an integer in 0..2^64-1 (got -1)"]),  # not --seed
    (["-n", "4", "--sweep", "controller=ffs:n=0"], ["ffs: n must be an integer >= 1"]),
    (["--sweep", "controller=single,nope:n=2"], ["unknown controller 'nope'"]),
    (["--sweep", "controller=single,majority:n"], ["options after NAME: must look like KEY=VALUE (got 'n')"]),
    (["--resume"], ["--resume needs --out"]),
    (["--model", "/nonexistent/model"], ["/nonexistent/model", "has no config.json"]),
    (["--data", str(FIX / "missing.jsonl")], ["missing.jsonl: no such file"]),
    (["--benchmark", "gsm8k", "--data", str(FIX / "aime24.jsonl")], ["aime24.jsonl:1", "field 'question'"]),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, needles):
    out = [] if "--resume" in args else ["--out", str(tmp_path / "o")]
    _one_line_error(CliRunner().invoke(app, [*args, *out]), *needles)
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_directory_of_another_configuration(tmp_path):
    run = tmp_path / "run"
    asyncio.run(run_eval(RunConfig(out=str(run), limit=4, options={"seed": 0}), load_problems("arith", limit=4),
                         Engine(), controller=Scripted(), progress=False))
    before = (run / "results.jsonl").read_bytes()
    _one_line_error(CliRunner().invoke(app, ["--limit", "8", "--resume", "--out", str(run)]),
                    "holds a different configuration", "limit: 4 there, 8 now")
    _one_line_error(CliRunner().invoke(app, ["--limit", "4", "--out", str(run)]), "pass --resume")
    assert (run / "results.jsonl").read_bytes() == before
    _one_line_error(CliRunner().invoke(app, ["report", str(tmp_path / "nothing")]), "not a run directory")


def test_parse_sweep():
    assert parse_sweep("max_thinking_tokens=32,64,128") == ("max_thinking_tokens", [32, 64, 128])
    assert parse_sweep("temperature=0.0, 0.6") == ("temperature", [0.0, 0.6])
    with pytest.raises(ValueError, match="repeated"):
        parse_sweep("n=1,1")


async def test_every_answer_kind_is_judged_by_its_verifier(tmp_path):
    problems = load_problems(None, FIX / "ponder.jsonl")  # integer, math (Math-Verify worker), choice
    config = RunConfig(out=str(tmp_path / "run"), benchmark=None, data=str(FIX / "ponder.jsonl"))
    await run_eval(config, problems, Engine(), controller=Scripted(wrong={"pick"}), progress=False)
    rows = {r["id"]: r for r in read_results(tmp_path / "run" / "results.jsonl")[0]}
    assert {i: (r["answer_kind"], r["correct"]) for i, r in rows.items()} == {
        "sum-1": ("integer", True), "2": ("math", True), "pick": ("choice", False)}
