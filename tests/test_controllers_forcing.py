"""Budget forcing on a scripted engine: exact engine calls, exact injected text, every edge case.

Scripts are keyed by seed; the j-th engine request of a sample gets ``script[seed][j]``, so each
list below is the sequence of replies a budget-forced sample receives, one per engine call.
"""

from __future__ import annotations

import pytest

from ponder.controllers import BudgetForcing
from scripted import SEEDED, ScriptedEngine, solve


async def test_extend_inserts_exactly_n_waits_when_the_model_keeps_stopping():
    script = {0: ["<think>\nd1</think>", "x1</think>", "x2</think>", "x3</think>", "\\boxed{5}</s>"]}
    engine = ScriptedEngine(script)
    sol = await solve(BudgetForcing(extend=3, sampling=SEEDED), engine)
    t = sol.traces[0]
    assert t.text == "<think>\nd1wait, x1wait, x2wait, x3</think>\\boxed{5}</s>" and t.answer == "5"
    assert sol.info == {"waits": 3, "forced": False} and t.text.count("wait, ") == 3
    prompt = engine.requests[0][0]
    tok = engine.tokenizer
    assert engine.requests[1][0] == prompt + tok.encode("<think>\nd1wait, ")  # the delimiter stripped, exact prefix
    assert engine.requests[3][0] == prompt + tok.encode("<think>\nd1wait, x1wait, x2wait, ")
    assert t.tokens == sum(len(tok.encode(s)) for s in script[0][:5])  # generated only; stripped delimiters counted


async def test_extend_then_answer():
    script = {0: ["<think>\nd1</think>", "x1</think>", "x2\n</think>", "\\boxed{5}</s>"]}
    sol = await solve(BudgetForcing(extend=2, sampling=SEEDED), ScriptedEngine(script))
    t = sol.traces[0]
    assert t.text == "<think>\nd1wait, x1wait, x2\n</think>\\boxed{5}</s>" and t.answer == "5"
    assert t.info["waits"] == 2 and not t.info["forced"]
    assert t.thinking_tokens == 11  # <think> \n d 1 (</think>) x 1 (</think>) x 2 \n: stripped delimiters count


async def test_model_that_ends_thinking_immediately():
    script = {0: ["</think>", "so 5\n</think>", "\\boxed{5}</s>"]}
    sol = await solve(BudgetForcing(extend=1, sampling=SEEDED), ScriptedEngine(script))
    assert sol.traces[0].text == "wait, so 5\n</think>\\boxed{5}</s>" and sol.answer == "5"
    plain = await solve(BudgetForcing(sampling=SEEDED), ScriptedEngine({0: ["</think>", "\\boxed{4}</s>"]}))
    assert plain.answer == "4" and plain.traces[0].thinking_tokens == 0 and plain.info["waits"] == 0


async def test_min_thinking_tokens_keeps_waiting_until_reached():
    script = {0: ["abcd</think>", "efgh</think>", "ijkl</think>", "\\boxed{5}</s>"]}
    sol = await solve(BudgetForcing(min_thinking_tokens=10, sampling=SEEDED), ScriptedEngine(script))
    assert sol.info["waits"] == 2 and sol.answer == "5"  # 4, then 9 (a stripped delimiter counts), then 14


async def test_cap_forces_the_answer_of_a_model_that_never_ends_thinking():
    engine = ScriptedEngine({0: ["<think>\nxxxx", "42}</s>"]})
    sol = await solve(BudgetForcing(max_thinking_tokens=20, answer_tokens=6, sampling=SEEDED), engine)
    t = sol.traces[0]
    assert sol.info["forced"] and t.thinking_tokens == 20 and t.answer == "42"
    assert t.text == "<think>\nxxxx" + "." * 14 + "</think>\\boxed{42}</s>"
    assert [p.max_tokens for _, p in engine.requests] == [20, 6]
    assert t.token_ids == engine.tokenizer.encode("<think>\nxxxx" + "." * 14 + "42}</s>")


@pytest.mark.parametrize("cap", [0, 1])
async def test_budget_at_or_near_zero_never_sends_nonpositive_max_tokens(cap):
    engine = ScriptedEngine({0: ["<think>\nxxxx", "7}</s>"] if cap else ["7}</s>"]})
    sol = await solve(BudgetForcing(max_thinking_tokens=cap, sampling=SEEDED), engine)
    assert sol.answer == "7" and sol.info["forced"] and sol.traces[0].thinking_tokens == cap
    assert all(p.max_tokens >= 1 for _, p in engine.requests) and len(engine.requests) == 1 + (cap > 0)
    if cap == 0:
        assert engine.requests[0][0][-2:] == engine.tokenizer.encode("</think>\\boxed{")


async def test_budget_used_up_by_a_wait_forces_the_answer():
    # 6 tokens then </think> (7 of 10): a Wait, then 3 more tokens reach the cap: forced
    engine = ScriptedEngine({0: ["<think>\nabcd</think>", "efghijkl", "8}</s>"]})
    sol = await solve(BudgetForcing(max_thinking_tokens=10, extend=5, sampling=SEEDED), engine)
    t = sol.traces[0]
    assert t.info == {**t.info, "waits": 1, "forced": True} and t.thinking_tokens == 10 and t.answer == "8"
    assert [p.max_tokens for _, p in engine.requests] == [10, 3, 64]
    assert t.text == "<think>\nabcdwait, efg</think>\\boxed{8}</s>"


async def test_cap_reached_on_the_delimiter_answers_without_extending():
    engine = ScriptedEngine({0: ["<think>\nabc</think>", "\\boxed{6}</s>"]})
    sol = await solve(BudgetForcing(max_thinking_tokens=6, extend=3, sampling=SEEDED), engine)
    assert sol.info == {"waits": 0, "forced": False} and sol.answer == "6"
    assert all(p.max_tokens >= 1 for _, p in engine.requests)


async def test_no_final_answer_after_a_forced_stop():
    sol = await solve(BudgetForcing(max_thinking_tokens=5, sampling=SEEDED), ScriptedEngine({0: ["<think>\nxxxxxxx", "</s>"]}))
    assert sol.answer is None and sol.info["forced"] and sol.traces[0].text.endswith("</think>\\boxed{</s>")
    natural = await solve(BudgetForcing(sampling=SEEDED), ScriptedEngine({0: ["<think>\nabc</think>", "no idea</s>"]}))
    assert natural.answer is None and not natural.info["forced"]


async def test_eos_inside_thinking_forces_an_answer():
    engine = ScriptedEngine({0: ["<think>\nab</s>", "3}</s>"]})
    sol = await solve(BudgetForcing(max_thinking_tokens=50, sampling=SEEDED), engine)
    assert sol.answer == "3" and sol.info["forced"] and sol.traces[0].text == "<think>\nab</think>\\boxed{3}</s>"


