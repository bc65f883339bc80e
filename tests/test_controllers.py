"""Controller decisions on a scripted engine: exact traces, exact winners, exact injected text.

Scripts are keyed by seed; with ``Sampling(seed=0)`` sample i has seed i, and the j-th engine
request of a sample gets ``script[i][j]`` (budget forcing makes several requests per sample).
"""

from __future__ import annotations

import asyncio

import pytest

from ponder.controllers import Adaptive, BudgetForcing, DeepConf, FirstFinish, Majority, Plain, Sampling, get_controller
from ponder.controllers.deepconf import percentile
from ponder.controllers.vote import vote
from scripted import SEEDED, ScriptedEngine, done, solve


def engine_tokens(engine, trace) -> int:
    return sum(engine.stats.per_request.get(r, 0) for r in trace.info["request_ids"])


# -- voting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("answers, weights, expected", [
    (["7", "5", "5"], None, "5"),
    (["7", "5", "5", "7"], None, "7"),  # tie: the first seen
    ([None, "5", None], None, "5"),
    ([None, None], None, None),
    (["7", "5", "5"], [3.0, 1.0, 1.0], "7"),
])
def test_vote(answers, weights, expected):
    assert vote(answers, weights)[0] == expected


def test_percentile_matches_numpy_linear():
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert percentile([4.0, 1.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 90) == 5.0


# -- majority -------------------------------------------------------------------------------

async def test_majority_votes_and_breaks_ties_by_launch_order():
    engine = ScriptedEngine({0: [done("a", "7")], 1: [done("bb", "5")], 2: [done("c", "5")], 3: [done("dddd", "9")]})
    sol = await solve(Majority(n=4, sampling=SEEDED), engine)
    assert sol.answer == "5" and sol.info["votes"] == {"7": 1.0, "5": 2.0, "9": 1.0}
    assert sol.info["winner"] == 1 and [t.info["won"] for t in sol.traces] == [False, True, True, False]
    texts = [done("a", "7"), done("bb", "5"), done("c", "5"), done("dddd", "9")]
    assert not any(t.aborted for t in sol.traces)
    assert sol.total_tokens == sum(len(engine.tokenizer.encode(text)) for text in texts)
    tie = ScriptedEngine({0: [done("a", "7")], 1: [done("b", "5")], 2: [done("c", "5")], 3: [done("d", "7")]})
    assert (await solve(Majority(n=4, sampling=SEEDED), tie)).answer == "7"


async def test_majority_logprob_weight_prefers_confident_samples():
    unsure = "?" * 40
    engine = ScriptedEngine({0: [done(unsure, "5")], 1: [done(unsure, "5")], 2: [done("sure", "7")]})
    sol = await solve(Majority(n=3, weight="logprob", sampling=SEEDED), engine)
    assert all(params.logprobs == 0 for _, params in engine.requests)
    assert sol.answer == "7" and sol.info["votes"]["7"] > sol.info["votes"]["5"]
    script = {0: [done(unsure, "5")], 1: [done(unsure, "5")], 2: [done("sure", "7")]}
    count = await solve(Majority(n=3, sampling=SEEDED), ScriptedEngine(script))
    assert count.answer == "5"


async def test_majority_without_answers():
    engine = ScriptedEngine({0: [done("a", None)], 1: [done("b", None)]})
    sol = await solve(Majority(n=2, sampling=SEEDED), engine)
    assert sol.answer is None and sol.info["no_answer"] and sol.info["winner"] is None


# -- first finish ---------------------------------------------------------------------------

async def test_ffs_first_answer_wins_and_the_rest_stop_within_one_step():
    engine = ScriptedEngine({0: [done("a" * 40, "5")], 1: [done("b" * 5, "7")],
                             2: [done("c" * 20, "5")], 3: [done("d" * 60, "5")]})
    sol = await solve(FirstFinish(n=4, sampling=SEEDED), engine)
    winner = sol.traces[1]
    assert sol.answer == "7" and sol.info["winner"] == 1 and winner.info["won"] and not winner.aborted
    assert winner.finish_reason == "stop" and winner.text == done("b" * 5, "7")
    assert sol.sequential == winner.tokens
    for t in (sol.traces[0], sol.traces[2], sol.traces[3]):
        assert t.aborted and t.finish_reason == "abort" and t.answer is None and not t.info["won"]
        assert t.wasted_tokens == 1 and engine_tokens(engine, t) == t.tokens + 1  # the in-flight step only
        assert t.tokens <= winner.tokens + 1 and t.text == engine.tokenizer.decode(t.token_ids)
    assert sol.wasted_tokens == 3 and sol.total_tokens <= 4 * (winner.tokens + 1)
    generated = engine.stats.generated_tokens
    await asyncio.sleep(0.05)
    assert engine.unfinished() == 0 and engine.stats.generated_tokens == generated  # nothing after the aborts


async def test_ffs_a_finish_without_answer_does_not_win():
    engine = ScriptedEngine({0: [done("a", None)], 1: [done("bbbbbbbb", "7")], 2: [done("c" * 30, "5")]})
    sol = await solve(FirstFinish(n=3, sampling=SEEDED), engine)
    assert sol.answer == "7" and sol.info["winner"] == 1 and sol.info["finish_order"] == [0, 1]
    assert not sol.traces[0].aborted and sol.traces[0].answer is None and not sol.traces[0].info["won"]
    assert sol.traces[2].aborted


async def test_ffs_no_sample_answers():
    engine = ScriptedEngine({0: [done("a", None)], 1: [done("bbb", None)]})
    sol = await solve(FirstFinish(n=2, sampling=SEEDED), engine)
    assert sol.answer is None and sol.info["no_answer"] and sol.info["winner"] is None
    assert not any(t.aborted for t in sol.traces) and sol.sequential == max(t.tokens for t in sol.traces)


async def test_ffs_same_step_finish_goes_to_launch_order():
    engine = ScriptedEngine({0: [done("a" * 30, "1")], 1: [done("bbb", "7")], 2: [done("ccc", "5")]})
    sol = await solve(FirstFinish(n=3, sampling=SEEDED), engine)
    assert sol.answer == "7" and sol.info["finish_order"] == [1, 2]
    assert not sol.traces[2].aborted and not sol.traces[2].info["won"] and sol.traces[0].aborted


async def test_ffs_k_votes_over_the_first_k_answers():
    script = {0: [done("a" * 3, "7")], 1: [done("b" * 6, "5")], 2: [done("c" * 9, "5")], 3: [done("d" * 40, "9")]}
    sol = await solve(FirstFinish(n=4, k=3, sampling=SEEDED), ScriptedEngine(script))
    assert sol.answer == "5" and sol.info["voters"] == [0, 1, 2] and sol.info["votes"] == {"7": 1.0, "5": 2.0}
    assert sol.info["winner"] == 1 and sol.traces[3].aborted and sol.sequential == sol.traces[2].tokens
    tie = await solve(FirstFinish(n=4, k=2, sampling=SEEDED), ScriptedEngine(script))
    assert tie.answer == "7" and tie.info["winner"] == 0  # 1-1: the earlier finisher's answer
    assert tie.traces[2].aborted and tie.traces[3].aborted


async def test_lfs_votes_over_the_longest_answered():
    script = {0: [done("a" * 3, "7")], 1: [done("b" * 20, "5")], 2: [done("c" * 9, "5")], 3: [done("d" * 40, None)]}
    sol = await solve(FirstFinish(n=4, mode="last", sampling=SEEDED), ScriptedEngine(script))
    assert sol.answer == "5" and sol.info["winner"] == 1 and not any(t.aborted for t in sol.traces)
    assert sol.sequential == sol.traces[3].tokens  # the user waited for every sample
    three = await solve(FirstFinish(n=4, k=3, mode="last", sampling=SEEDED), ScriptedEngine(script))
    assert three.info["voters"] == [1, 2, 0] and three.answer == "5"


async def test_ffs_over_budget_forced_samples():
    # sample 0 never closes its thinking: the cap forces its answer, and it finishes first
    # sample 1 closes its thinking at once but writes a long answer: aborted in its answer phase
    script = {0: ["<think>\n" + "x" * 100, "3}</s>"], 1: ["<think>\nyy</think>", "y" * 50 + "\\boxed{9}</s>"]}
    engine = ScriptedEngine(script)
    forced = BudgetForcing(max_thinking_tokens=12, answer_tokens=5)
    sol = await solve(FirstFinish(n=2, sample=forced, sampling=SEEDED), engine)
    assert sol.answer == "3" and sol.info["winner"] == 0 and sol.traces[0].info["forced"]
    assert sol.traces[0].text == "<think>\n" + "x" * 10 + "</think>\\boxed{3}</s>"
    assert sol.traces[0].thinking_tokens == 12
    loser = sol.traces[1]
    assert loser.aborted and loser.thinking_tokens == 4 and loser.text.startswith("<think>\nyy</think>yyy")
    ctrl = get_controller("ffs", n=2, max_thinking_tokens=12, answer_tokens=5, seed=0)
    assert ctrl.sample == BudgetForcing(max_thinking_tokens=12, answer_tokens=5)


PARALLEL = [FirstFinish, Adaptive]
"""Controllers that race n samples and abort the rest."""


@pytest.mark.parametrize("cls", PARALLEL)
async def test_cancelling_the_controller_aborts_every_sample(cls):
    engine = ScriptedEngine({i: [done("z" * 200, "1")] for i in range(4)})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(solve(cls(n=4, sampling=SEEDED), engine), 0.03)
    await asyncio.sleep(0.01)
    assert engine.unfinished() == 0 and engine.stats.aborted_requests == 4


@pytest.mark.parametrize("cls", PARALLEL)
async def test_an_engine_error_aborts_the_other_samples_and_propagates(cls):
    def script(prompt, params):
        if params.seed == 1:
            raise RuntimeError("engine exploded")
        return done("z" * 200, "1")

    engine = ScriptedEngine(script)
    with pytest.raises(RuntimeError, match="engine exploded"):
        await solve(cls(n=3, sampling=SEEDED), engine)
    await asyncio.sleep(0.01)
    assert engine.unfinished() == 0


# -- deepconf -------------------------------------------------------------------------------

async def test_deepconf_aborts_a_low_confidence_trace_and_weights_the_vote():
    sure, unsure = "x" * 20, "xx" + "?" * 20
    script = {0: [done(sure, "5")], 1: [done(sure + "x", "5")], 2: [done(unsure, "9")], 3: [done(sure, "7")]}
    engine = ScriptedEngine(script)
    sol = await solve(DeepConf(n=4, warmup=2, window=4, sampling=SEEDED), engine)
    assert all(p.logprobs == 20 for _, p in engine.requests)
    low = sol.traces[2]
    assert low.aborted and low.info["low_confidence"] and low.answer is None and low.wasted_tokens == 1
    # the window fills with "?" 4 tokens after the first one: the trace stops there, not later
    first_unsure = engine.tokenizer.encode("<think>\nxx").__len__()
    assert first_unsure + 1 <= low.tokens <= first_unsure + 4
    assert sol.info["threshold"] == pytest.approx(9.5005) and sol.info["stopped"] == 1
    assert sol.answer == "5" and sol.info["voters"] == [0, 1, 3] and sol.info["winner"] == 0
    assert not sol.traces[3].aborted and sol.traces[3].info["warmup"] is False


async def test_deepconf_fallback_when_no_confident_trace_answers():
    script = {0: [done("x" * 20, None)], 1: [done("?" * 20, "4")]}
    sol = await solve(DeepConf(n=2, warmup=2, window=4, sampling=SEEDED), ScriptedEngine(script))
    assert sol.answer == "4" and sol.info["fallback"]


async def test_deepconf_over_budget_forced_samples():
    script = {0: ["<think>\n" + "x" * 30, "5}</s>"], 1: ["<think>\n" + "x" * 30, "5}</s>"],
              2: ["<think>\nxx" + "?" * 30, "9}</s>"]}
    ctrl = DeepConf(n=3, warmup=2, window=4, sample=BudgetForcing(max_thinking_tokens=20), sampling=SEEDED)
    sol = await solve(ctrl, ScriptedEngine(script))
    low = sol.traces[2]
    assert low.aborted and low.text == "<think>\nxx?" and not low.info["forced"]
    assert sol.answer == "5" and all(t.info["forced"] for t in sol.traces[:2])


# -- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, message", [
    ("ffs", {"n": 0}, "ffs: n must be an integer >= 1"),
    ("ffs", {"n": 4, "k": 5}, "ffs: k must be an integer in 1..n=4"),
    ("ffs", {"mode": "middle"}, "ffs: mode must be one of first, last"),
    ("first_finish", {"max_thinking_tokens": -3}, "max_thinking_tokens must be None or an integer >= 0"),
    ("majority", {"n": -1}, "majority: n must be an integer >= 1"),
    ("majority", {"weight": "votes"}, "majority: weight must be one of count, logprob"),
    ("budget_forcing", {"extend": -1}, "budget_forcing: extend must be an integer >= 0"),
    ("budget_forcing", {"min_thinking_tokens": -1}, "min_thinking_tokens must be an integer >= 0"),
    ("budget_forcing", {"max_thinking_tokens": 4, "min_thinking_tokens": 8}, "must be <= max_thinking_tokens=4"),
    ("budget_forcing", {"answer_tokens": 0}, "answer_tokens must be an integer >= 1"),
    ("deepconf", {"n": 4, "warmup": 5}, "deepconf: warmup must be an integer in 1..n=4"),
    ("deepconf", {"window": 0}, "deepconf: window must be an integer >= 1"),
    ("deepconf", {"percentile": 101}, "deepconf: percentile must be a number in 0..100"),
    ("single", {"temperature": -1}, "temperature must be a number >= 0"),
    ("ffs", {"max_tokens": 0}, "max_tokens must be an integer >= 1"),
    ("ffs", {"beam": 2}, "controller 'ffs' has no option beam"),
    ("nope", {}, "unknown controller 'nope'"),
])
def test_bad_options_raise_one_line_errors(name, options, message):
    with pytest.raises(ValueError) as err:
        get_controller(name, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_get_controller_routes_options():
    ffs = get_controller("ffs", n=8, k=3, temperature=0.6, top_p=0.95)
    assert ffs == FirstFinish(n=8, k=3, sampling=Sampling(temperature=0.6, top_p=0.95)) and ffs.sample == Plain()
    assert get_controller("first_finish", n=2).name == "ffs"
    assert get_controller("majority", max_thinking_tokens=None).sample == Plain()  # None: not given
    assert get_controller("budget_forcing", max_thinking_tokens=64, extend=2).extend == 2
    with pytest.raises(ValueError, match="either sample= or extend"):
        get_controller("ffs", sample=Plain(), extend=1)
