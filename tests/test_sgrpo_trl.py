"""A real S-GRPO run with TRL's GRPOTrainer on the tiny reasoner: loss, weights, checkpoint, resume."""

from __future__ import annotations

import math
import os

import pytest
import torch

from ponder.engines import TINY_REASONER
from ponder.benchmarks.arith import problems

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _trainer(tmp_path, max_steps: int, model=None):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from ponder.rl.rollout import sgrpo_reward
    from ponder.rl.sgrpo import SGRPORollout

    tok = AutoTokenizer.from_pretrained(TINY_REASONER)
    model = model or AutoModelForCausalLM.from_pretrained(TINY_REASONER)
    items = problems(8, seed=11)
    ds = Dataset.from_dict({"prompt": [p.prompt for p in items]})
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, num_generations=8,
                      max_completion_length=300, learning_rate=1e-5, max_steps=max_steps, logging_steps=1,
                      scale_rewards="none", temperature=1.0, report_to=[], save_strategy="steps", save_steps=2,
                      use_cpu=True, bf16=False, beta=0.0, seed=0)
    rollout = SGRPORollout(tok, {p.prompt: str(p.answer) for p in items}, answer_kind="integer")
    return GRPOTrainer(model=model, reward_funcs=[sgrpo_reward], args=args, train_dataset=ds,
                       processing_class=tok, rollout_func=rollout), model


@pytest.mark.timeout(600)
def test_three_sgrpo_steps_then_resume(tmp_path):
    trainer, model = _trainer(tmp_path, max_steps=3)
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and all(math.isfinite(h["loss"]) for h in logs)
    assert all(0.0 <= h["reward"] <= 1.0 for h in logs)  # decaying rewards lie in [0, 1]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    checkpoint = tmp_path / "checkpoint-2"
    assert (checkpoint / "trainer_state.json").exists() and (checkpoint / "optimizer.pt").exists()
    resumed, resumed_model = _trainer(tmp_path / "again", max_steps=3)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 3
    # exact resume: optimizer, step and RNG come back, and rollouts are seeded by the global step,
    # so step 3 after a resume is step 3 of the uninterrupted run
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
