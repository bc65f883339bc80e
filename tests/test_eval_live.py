"""Eval end to end with the embedded tiny reasoner on `arith`: hf and vLLM engines in-process, the
CLI with a sweep and `report`, and SIGKILL mid-run in a subprocess followed by a resume.

    .venv/bin/python -m pytest tests/test_eval_live.py -q
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.benchmarks.registry import load_problems
from ponder.cli.eval import app
from ponder.eval.report import finish_run
from ponder.eval.runner import RunConfig, run_eval
from ponder.eval.store import read_results

ROOT = Path(__file__).resolve().parents[1]


def _check_rows(rows, problems):
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in problems)  # one row per problem
    for r in rows:
        assert r["total_tokens"] > 0 and r["sequential_tokens"] > 0 and r["samples"]
        assert all(s["finish_reason"] in ("stop", "length", "abort") for s in r["samples"])
        assert r["total_tokens"] == sum(s["tokens"] for s in r["samples"])


async def test_eval_arith_hf(hf_engine, tmp_path):
    problems = load_problems("arith", limit=8)
    single = RunConfig(out=str(tmp_path / "single"), limit=8, options={"seed": 0})
    result = await run_eval(single, problems, hf_engine, progress=False)
    _check_rows(result.rows, problems)
    assert result.engine_tokens == sum(r["total_tokens"] for r in result.rows)  # the engine's own count agrees
    summary = finish_run(single.out, {"wall_s": result.wall_s, "engine_tokens": result.engine_tokens})
    assert 0 < summary["correct"] <= 8 and summary["tokens_per_s"] > 0

    majority = RunConfig(out=str(tmp_path / "maj"), limit=8, controller="majority", options={"n": 2, "seed": 0})
    result = await run_eval(majority, problems, hf_engine, progress=False)
    _check_rows(result.rows, problems)
    summary = finish_run(majority.out)
    assert all(len(r["samples"]) == 2 for r in result.rows)
    assert set(summary["pass@k"]) == {"1", "2"} and summary["pass@k"]["2"] >= summary["pass@k"]["1"]


@pytest.mark.vllm
@pytest.mark.slow
async def test_eval_arith_vllm(vllm_engine, tmp_path):
    problems = load_problems("arith", limit=8)
    config = RunConfig(out=str(tmp_path / "v"), limit=8, engine="vllm", options={"seed": 0, "max_tokens": 400})
    result = await run_eval(config, problems, vllm_engine, progress=False)
    _check_rows(result.rows, problems)
    summary = finish_run(config.out)
    assert summary["correct"] > 0 and summary["finish_reasons"].get("stop", 0) >= 6


def test_cli_sweeps_and_report(tmp_path):
    out = tmp_path / "ffs"
    result = CliRunner().invoke(app, ["--controller", "ffs", "--sweep", "n=1,2", "--limit", "4", "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "plot:" in result.stdout and (out / "accuracy_vs_tokens.png").exists()
    for n in (1, 2):
        rows, _ = read_results(out / f"n={n}" / "results.jsonl")
        assert len(rows) == 4 and (out / f"n={n}" / "summary.json").exists()
    # the README's comparison: controllers side by side in one process, one engine
    cmp = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["--sweep", "controller=single,majority:n=2,budget_forcing:max_thinking_tokens=96",
                                      "--limit", "4", "--out", str(cmp)])
    assert result.exit_code == 0, result.output + result.stderr
    assert sorted(p.name for p in cmp.iterdir() if p.is_dir()) == ["budget_forcing-max_thinking_tokens96",
                                                                   "majority-n2", "single"]
    assert "majority n=2" in result.stdout and (cmp / "compare.md").exists()
    result = CliRunner().invoke(app, ["report", str(out / "n=1"), str(cmp / "single"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "ffs n=1" in result.stdout and (tmp_path / "r" / "accuracy_vs_tokens.png").exists()


async def test_sigkill_mid_run_then_resume(hf_engine, tmp_path):
    out, limit = tmp_path / "run", 24
    proc = subprocess.Popen([sys.executable, "-m", "ponder.cli", "eval", "--limit", str(limit), "--concurrency", "2",
                             "--out", str(out), "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None:
            if results.exists() and results.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"eval ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    before, _ = read_results(results)
    assert 3 <= len(before) < limit
    problems = load_problems("arith", limit=limit)
    config = RunConfig(out=str(out), limit=limit, options={"seed": 0}, concurrency=8, resume=True)
    result = await run_eval(config, problems, hf_engine, progress=False)
    assert result.new == limit - len(before)
    rows, intact = read_results(results)
    assert intact == results.stat().st_size  # no torn line left behind
    _check_rows(rows, problems)
    assert rows[:len(before)] == before  # what was written before the kill is kept as it was
