"""S-GRPO rollout core: the reward table, exit sampling bounds, group order and env_mask alignment."""

from __future__ import annotations

import random

import pytest

from ponder.benchmarks.arith import problems
from ponder.prompts import FAMILIES, render
from ponder.rl.sgrpo import Group, Member, SGRPOConfig, decaying_rewards, exit_positions, serial_group
from ponder.verifiers import get_verifier


@pytest.mark.parametrize(
    "correct, rewards",
    [
        ([True, True, False, True], [1.0, 0.5, 0.0, 0.25]),
        ([False, False, False], [0.0, 0.0, 0.0]),
        ([False, True, True, True], [0.0, 1.0, 0.5, 0.25]),
        ([True], [1.0]),
        ([False] * 7 + [True], [0.0] * 7 + [1.0]),
    ],
)
def test_decaying_rewards(correct, rewards):
    assert decaying_rewards(correct) == rewards


def test_advantages_are_centred_without_std_scaling():
    group = Group([Member([], [], [], 0, reward=r) for r in (1.0, 0.5, 0.0, 0.0)])
    assert group.advantages() == [0.625, 0.125, -0.375, -0.375]


@pytest.mark.parametrize("n, m", [(100, 7), (8, 7), (3, 7), (2, 1)])
def test_exit_positions_stay_inside_the_thinking(n, m):
    for seed in range(20):
        pos = exit_positions(n, m, random.Random(seed))
        assert len(pos) == m and pos == sorted(pos)
        assert all(1 <= p <= n - 1 for p in pos)
        if n - 1 >= m:
            assert len(set(pos)) == m


def test_exit_positions_cover_the_whole_thinking():
    """Uniform over tokens, not only line ends: late positions (after a first answer) occur."""
    seen = [p for s in range(200) for p in exit_positions(120, 7, random.Random(s))]
    assert min(seen) <= 5 and max(seen) >= 115


def test_config_validation():
    with pytest.raises(ValueError, match="m must be"):
        SGRPOConfig(m=0)


async def test_serial_group_on_the_tiny_reasoner(hf_engine):
    fam, tok = FAMILIES["tiny"], hf_engine.tokenizer
    end = tok.convert_tokens_to_ids("</think>")
    verifier = get_verifier("integer")
    for p in problems(3, seed=1):
        prompt = render(tok, p.prompt, fam)
        group = await serial_group(hf_engine, prompt, fam, verifier, str(p.answer), SGRPOConfig(m=7, seed=3, max_tokens=400))
        members = group.members
        assert len(members) == 8 and members[-1].full_path and not any(m.full_path for m in members[:-1])
        full = members[-1]
        assert [m.position for m in members[:-1]] == sorted(m.position for m in members[:-1])
        suffix = tok.encode(fam.force_suffix(with_exit_prompt=True), add_special_tokens=False)
        for m in members[:-1]:
            kept = m.completion_ids[: m.position]
            assert kept == full.completion_ids[: m.position] and end not in kept  # never after </think>
            assert m.position < full.position  # inside the thinking
            # env_mask: 0 exactly on the injected exit tokens, 1 on every generated token
            assert m.env_mask == [1] * m.position + [0] * len(suffix) + [1] * (len(m.completion_ids) - m.position - len(suffix))
            assert m.completion_ids[m.position : m.position + len(suffix)] == suffix
            assert len(m.logprobs) == len(m.completion_ids)
            assert all(lp == 0.0 for lp, mask in zip(m.logprobs, m.env_mask) if not mask)
            assert m.logprobs[: m.position] == full.logprobs[: m.position]  # sampled logprobs kept
        assert [m.reward for m in members] == decaying_rewards([m.correct for m in members])
        assert abs(sum(group.advantages())) < 1e-9
