"""Types, prompts, the import budget and the CLI's error handling (no model needed except the CLI run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ponder.prompts import FAMILIES, family_for, split_thinking
from ponder.types import Problem, SamplingParams, Solution, Trace


def test_sampling_params_validate_and_name_the_field():
    with pytest.raises(ValueError, match="max_tokens"):
        SamplingParams(max_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    assert SamplingParams(stop="x").stop == ("x",)
    assert SamplingParams().replace(max_tokens=3).max_tokens == 3


def test_problem_validation():
    with pytest.raises(ValueError, match="prompt"):
        Problem("  ")
    with pytest.raises(ValueError, match="answer_kind"):
        Problem("1+1", answer_kind="essay")


def test_solution_accounting():
    traces = [Trace(token_ids=[1] * 10, wasted_tokens=1), Trace(token_ids=[1] * 4, aborted=True)]
    sol = Solution("3", traces)
    assert (sol.total_tokens, sol.sequential, sol.wasted_tokens) == (14, 10, 1)
    sol.sequential_tokens = 4
    d = sol.to_dict()
    assert d["sequential_tokens"] == 4 and d["traces"][1]["aborted"] is True


def test_family_detection_and_split():
    assert family_for(name="/x/ponder/assets/tiny-reasoner").name == "tiny"
    assert family_for(name="Qwen/Qwen3-8B").name == "qwen3"
    assert family_for(name="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").name == "deepseek-r1"
    assert family_for(name="simplescaling/s1-32B").name == "s1"
    with pytest.raises(ValueError, match="unknown model family"):
        family_for(family="nope")
    fam = FAMILIES["tiny"]
    assert split_thinking("<think>abc</think>\\boxed{3}", fam) == ("<think>abc", "\\boxed{3}", True)
    assert split_thinking("<think>abc", fam) == ("<think>abc", "", False)
    assert fam.force_suffix() == "</think>\\boxed{"


def test_import_is_light():
    code = ("import sys, ponder, ponder.controllers, ponder.verifiers, ponder.types, ponder.prompts, ponder.engines;"
            "print(sorted(m for m in ('torch', 'vllm', 'ray', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _ponder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--controller", "nope"], "unknown controller 'nope'"),
        (["--engine", "gpu9"], "--engine must be one of"),
        # a bad option is called what the user typed: the flag, or the -o key (OptionError.option)
        (["--temperature", "-1"], "error: --temperature must be a number >= 0"),
        (["--max-tokens", "0"], "--max-tokens must be"),
        (["-c", "ffs", "-n", "4", "-k", "5"], "ffs: -k must be an integer in 1..n=4"),
        (["-c", "ffs", "-n", "0"], "ffs: -n must be an integer >= 1"),
        (["-c", "ffs", "-n", "2", "-o", "n=0"], "ffs: n must be an integer >= 1"),
        (["-c", "budget_forcing", "--max-thinking-tokens", "-3"], "--max-thinking-tokens must be"),
        (["--seed", "-1"], "error: --seed must be an integer in 0..2^64-1"),
        (["-c", "single", "-n", "2", "-k", "1"], "controller 'single' has no option -k, -n; its options: "),
        (["-c", "ffs", "-o", "sample=5"], "controller 'ffs': sample must be a policy name"),
        (["-c", "probe", "-o", "transitions=5"], "probe: transitions must be a word or a list of words (got 5)"),
        (["-c", "ffs", "-n", "2048"], "ffs: -n must be at most 1024 samples per problem (got 2048;"),
        (["-c", "adaptive", "-o", "sample=probe", "-o", "sample_rule=bogus"], "probe: rule must be one of "
                                                                              "consistent, confidence (got 'bogus') (given as sample_rule)"),
        (["--answer-kind", "essay"], "--answer-kind must be one of"),
        (["--model", "/nonexistent/model"], "has no config.json"),
    ],
)
def test_cli_bad_options_exit_2_with_one_line(args, needle):
    r = _ponder("solve", "Compute 1+2", *args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_solve_json_on_the_tiny_reasoner():
    r = _ponder("solve", "Compute 472+389", "--json", "--temperature", "0", "--answer-kind", "integer", "--gold", "861")
    assert r.returncode == 0, r.stderr
    sol = json.loads(r.stdout)
    assert set(sol) >= {"answer", "traces", "total_tokens", "sequential_tokens", "wasted_tokens", "wall_s"}
    trace = sol["traces"][0]
    assert trace["finish_reason"] == "stop" and trace["tokens"] == sol["total_tokens"] > trace["thinking_tokens"] > 0
    assert "</think>" in trace["text"]
    assert sol["correct"] is True and sol["answer"] == "861"  # the README's first example is right
    assert r.stderr.count("warning") == 0


def test_cli_solve_warns_outside_the_tiny_reasoners_format():
    r = _ponder("solve", "Compute 4721+389", "--temperature", "0", "--json")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "4721" in warnings[0]


@pytest.mark.vllm
def test_cli_solve_json_on_vllm_is_clean_json_and_right():
    """The README's second example: vLLM logs to stdout and its engine core inherits it, yet
    `--json` prints one parseable object, and the answer is right."""
    r = _ponder("solve", "Compute 472+389", "--engine", "vllm", "--json", "--temperature", "0",
                "--answer-kind", "integer", "--gold", "861")
    assert r.returncode == 0, r.stderr[-2000:]
    sol = json.loads(r.stdout)
    assert sol["answer"] == "861" and sol["correct"] is True
