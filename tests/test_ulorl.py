"""UloRL: exact segment continuation, truncation, groups that wait, pools that survive a
checkpoint, DMMPT's rule, and a real multi-step TRL run with 4 segments."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from ponder.engines import TINY_REASONER, complete
from ponder.benchmarks.arith import problems
from ponder.prompts import family_for, render
from ponder.rl.ulorl import DMMPTConfig, Sample, SegmentRollout, decode_segment, dmmpt_mask, token_probs
from ponder.types import SamplingParams

pytestmark = pytest.mark.timeout(900)

ITEMS = problems(12, seed=21)
GOLDS = {p.prompt: str(p.answer) for p in ITEMS}
CFG = DMMPTConfig(tau=0.99, sigma=0.2)


@pytest.mark.parametrize("probs, entropies, reward, mask, expected", [
    # positive, confident sample: exactly the tokens with p >= tau leave the loss
    ([0.999, 0.5, 0.99, 0.989, 1.0], [0.01, 0.8, 0.05, 0.05, 0.0], 1.0, [1, 1, 1, 1, 1], [0, 1, 0, 1, 0]),
    # injected tokens stay masked; the mean entropy is over generated tokens only (0.1 < 0.2)
    ([0.999, 0.2, 0.999], [0.1, 5.0, 0.1], 0.5, [1, 0, 1], [0, 0, 0]),
    # mean entropy at or above sigma: nothing masked
    ([0.999, 0.999, 0.3], [0.2, 0.2, 0.2], 1.0, [1, 1, 1], [1, 1, 1]),
    # a wrong (reward 0) sample: nothing masked however confident
    ([1.0, 1.0], [0.0, 0.0], 0.0, [1, 1], [1, 1]),
])
def test_dmmpt_masks_exactly_the_rule(probs, entropies, reward, mask, expected):
    assert dmmpt_mask(probs, entropies, reward, mask, CFG) == expected


def test_dmmpt_thresholds_are_configurable():
    probs, ent = [0.95, 0.9, 0.999], [0.3, 0.3, 0.3]
    assert dmmpt_mask(probs, ent, 1.0, [1, 1, 1], DMMPTConfig(tau=0.94, sigma=0.5)) == [0, 1, 0]
    with pytest.raises(ValueError, match="tau"):
        DMMPTConfig(tau=1.5)


def _prompt(engine, text):
    return render(engine.tokenizer, text, family_for(engine.tokenizer, engine.model_name))


async def test_token_probs_match_what_the_policy_sampled():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ponder.engines.hf import HFEngine

    model = AutoModelForCausalLM.from_pretrained(TINY_REASONER).eval()
    tok = AutoTokenizer.from_pretrained(TINY_REASONER)
    engine = HFEngine.from_model(model, tok, logprobs_mode="processed")
    ids = _prompt(engine, ITEMS[0].prompt)
    c = await complete(engine, ids, SamplingParams(max_tokens=60, temperature=0.7, seed=4, logprobs=0))
    (probs, entropies), = token_probs(model, [ids], [c.token_ids], temperature=0.7)
    assert len(probs) == len(c.token_ids)
    assert probs == pytest.approx([math.exp(lp) for lp in c.logprobs], abs=1e-4)
    assert all(e >= 0 for e in entropies)


@pytest.mark.parametrize("segments", [1, 2, 4])
async def test_a_sample_split_into_segments_ends_as_one_greedy_decode(hf_engine, segments):
    ids = _prompt(hf_engine, ITEMS[1].prompt)
    full = await complete(hf_engine, ids, SamplingParams(max_tokens=400))
    size = math.ceil(len(full.token_ids) / segments)
    sample = Sample(seed=0)
    while sample.finish is None:
        before = len(sample.tokens)
        await decode_segment(hf_engine, ids, sample, size, 400, temperature=0.0)
        assert len(sample.tokens) - before <= size
    assert sample.tokens == full.token_ids and sample.segments == segments and sample.finish == "stop"


def _trainer(model, g=4, max_len=300, temperature=0.7):
    return SimpleNamespace(model=model, args=SimpleNamespace(num_generations=g, temperature=temperature,
                                                              max_completion_length=max_len),
                           state=SimpleNamespace(global_step=0))


@pytest.fixture(scope="module")
def policy():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(TINY_REASONER), AutoTokenizer.from_pretrained(TINY_REASONER)


def _batch(step, per_step=2, g=4):
    prompts = [p.prompt for p in ITEMS[(step * per_step) % 12:][:per_step]]
    return [p for p in prompts for _ in range(g)]


def test_the_global_maximum_truncates_and_scores_zero(policy):
    model, tok = policy
    rollout = SegmentRollout(tok, GOLDS, answer_kind="integer", algo="grpo", segment_tokens=10)
    out = rollout(_batch(0), _trainer(model, max_len=30))  # the tiny reasoner thinks ~100 tokens
    assert len(out["completion_ids"]) == 8 and all(len(c) == 30 for c in out["completion_ids"])
    assert out["ponder_reward"] == [0.0] * 8
    assert rollout.history[-1]["ulorl/truncated"] == 1.0 and rollout.history[-1]["ulorl/rounds"] == 3


def _steps(rollout, trainer, n):
    outs = []
    for step in range(n):
        trainer.state.global_step = step
        outs.append(rollout(_batch(step), trainer))
    return outs


def test_groups_wait_for_their_last_member_and_samples_carry_over(policy):
    model, tok = policy
    rollout = SegmentRollout(tok, GOLDS, answer_kind="integer", algo="grpo", segment_tokens=32, extra_groups=2,
                             extra_prompts=tuple(GOLDS))
    trainer = _trainer(model)
    eos = tok.eos_token_id
    waited = False
    outs = _steps(rollout, trainer, 4)
    for step, out in enumerate(outs):
        assert len(out["completion_ids"]) == 8  # a fixed number of complete groups every step
        for c in out["completion_ids"]:  # every returned sample ended (EOS) or hit the global max
            assert c[-1] == eos or len(c) == 300
        for group in rollout.groups.values():  # a group with an unfinished member stays in the pool
            if any(s.finish for s in group.samples) and not all(s.finish for s in group.samples):
                waited = True
    history = rollout.history
    print(f"\nulorl steps: {[{k.split('/')[1]: round(v, 2) for k, v in h.items()} for h in history]}")
    assert sum(h["ulorl/carried_samples"] for h in history) > 0 and sum(h["ulorl/carried_tokens"] for h in history) > 0
    assert waited, "no group ever waited for a slower member"
    # the statistics ride to TRL's log_metric with the rewards (first row of each step's output)
    assert any(out["ponder_metrics"][0]["ulorl/carried_tokens"] for out in outs)


def test_a_resumed_pool_continues_exactly(policy):
    model, tok = policy
    make = lambda: SegmentRollout(tok, GOLDS, answer_kind="integer", algo="sgrpo", segment_tokens=32,  # noqa: E731
                                  extra_groups=2, extra_prompts=tuple(GOLDS), answer_tokens=12)
    first = make()
    trainer = _trainer(model, g=4)
    _steps(first, trainer, 2)
    assert any(s.finish is None for g in first.groups.values() for s in g.samples), "nothing left unfinished"
    saved = json.loads(json.dumps(first.state_dict()))
    second = make()
    second.load_state_dict(saved)
    trainer.state.global_step = 2
    a, b = first(_batch(2), trainer), second(_batch(2), trainer)
    assert a == b and second.history[-1]["ulorl/carried_samples"] > 0


def _train(tmp_path, algo, **kw):
    from ponder.rl.train import TrainConfig, train

    # 4 segments of 50 tokens: every path of the tiny reasoner (>= ~70 tokens) is carried at least once
    cfg = TrainConfig(algo=algo, limit=32, num_generations=4, prompts_per_step=2, learning_rate=1e-5,
                      temperature=0.7, max_completion_length=200, segment_tokens=50, answer_tokens=12,
                      save_steps=2, output_dir=str(tmp_path), **kw)
    return train(cfg)


@pytest.mark.parametrize("algo", ["grpo", "sgrpo"])
def test_a_real_run_with_four_segments_carries_samples_and_resumes(tmp_path, algo):
    _train(tmp_path, algo, max_steps=3, dmmpt=True)
    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "loss" in r]
    assert len(steps) == 3 and all(math.isfinite(r["loss"]) for r in steps)
    assert sum(r["ulorl/carried_samples"] for r in steps) > 0, "no sample was carried over between steps"
    assert all(0 <= r["ulorl/dmmpt_masked"] < 1 for r in steps)
    pools = json.loads((tmp_path / "checkpoint-2" / "ulorl_pools.json").read_text())
    assert pools["groups"], "the checkpoint holds no waiting groups"
    resumed = _train(tmp_path, algo, max_steps=4, resume=True)
    assert resumed.state.global_step == 4
    # the pools came back: 6 groups were made by step 2, 2 more per step since (a fresh pool: 4 + 2)
    assert resumed.rollout_func.next_gid == 10
    assert (tmp_path / "checkpoint-4" / "ulorl_pools.json").exists()
