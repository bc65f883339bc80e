"""`ponder train`: clear errors before training starts, and real short runs of both algorithms."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _ponder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ponder.cli", "train", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["sgrpo", "num_generations=1"], "m = num_generations - 1 >= 1"),
        (["dpo"], "ALGO must be one of sgrpo, grpo"),
        (["sgrpo", "--config", "recipes/missing.yaml"], "cannot read the recipe"),
        (["sgrpo", "lr=3"], "unknown field lr"),
        (["sgrpo", "dataset=nope"], "nope"),
        (["grpo", "segment_tokens=500", "max_completion_length=400"], "exceeds max_completion_length"),
        (["grpo", "dmmpt=true", "dmmpt_tau=2"], "0 < tau <= 1"),
        (["grpo", "lr_scheduler=sideways"], "not a transformers scheduler"),
        (["grpo", "dataset=gsm8k", "eval_steps=5"], "eval_steps needs eval_dataset"),
        (["grpo", "carry_groups=-1"], "carry_groups must be an integer >= 0"),
    ],
)
def test_bad_configuration_fails_before_training(args, needle):
    r = _ponder(*args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr


def test_dataset_without_answers_fails_before_training(tmp_path):
    data = tmp_path / "noanswer.jsonl"
    data.write_text('{"id": "a", "problem": "Compute 001+002"}\n')
    r = _ponder("sgrpo", f"data={data}")
    assert r.returncode == 2 and "answer" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.timeout(900)
@pytest.mark.parametrize("algo", ["sgrpo", "grpo"])
def test_short_run_saves_and_resumes(tmp_path, algo):
    common = ["--config", "recipes/tiny-sgrpo.yaml", "limit=16", "prompts_per_step=1", "num_generations=4",
              "save_steps=2", "eval_problems=16", f"output_dir={tmp_path}"]
    r = _ponder(algo, *common, "max_steps=2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "checkpoint-2" / "optimizer.pt").exists() and (tmp_path / "final" / "model.safetensors").exists()
    r = _ponder(algo, *common, "max_steps=4", "resume=true")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "checkpoint-4").exists()
    from ponder.rl.evaluate import read_eval_log

    rows = read_eval_log(tmp_path / "eval.jsonl")  # held-out evaluation before step 1 and at the end of each run
    assert [r["step"] for r in rows] == [0, 2, 4] and all(r["problems"] == 16 for r in rows)
    assert all(0 <= r["sampled_accuracy"] <= 1 and r["greedy_thinking_tokens"] > 0 for r in rows)
