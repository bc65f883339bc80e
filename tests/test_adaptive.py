"""`adaptive`: stopping rules on scripted answer streams, real aborts, waves, options, and a live run.

Scripts are keyed by seed; with ``Sampling(seed=0)`` sample i has seed i. A scripted sample's
length sets when it finishes (one token per engine step for every running sample), so the order in
which answers reach the vote is exact.

    python -m pytest -q tests/test_adaptive.py
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from ponder.controllers import Adaptive, BudgetForcing, Probe, Sampling, get_controller
from ponder.controllers.adaptive import decide, needed, p_beta, p_dirichlet, p_largest
from scripted import SEEDED, ScriptedEngine, done, solve


def engine_tokens(engine, trace) -> int:
    return sum(engine.stats.per_request.get(r, 0) for r in trace.info["request_ids"])


def stream(*answers):
    """(launch index, answer) in finishing order, launch index = position."""
    return list(enumerate(answers))


# -- the rules on answer streams --------------------------------------------------------------

@pytest.mark.parametrize("lead, runner, expected", [
    (1, 0, 0.75), (3, 0, 0.9375), (4, 0, 0.96875), (5, 1, 0.9375), (6, 1, 0.96484375), (2, 2, 0.5),
])
def test_beta_is_the_exact_binomial_tail(lead, runner, expected):
    assert p_beta(lead, runner) == pytest.approx(expected, abs=1e-12)
    assert p_largest((lead + 1, runner + 1)) == pytest.approx(expected, abs=1e-5)  # the integral agrees


def test_dirichlet_integral_matches_symmetry_and_monte_carlo():
    assert p_largest((3, 3, 3)) == pytest.approx(1 / 3, abs=1e-5)
    assert p_largest((1, 1, 1, 1)) == pytest.approx(1 / 4, abs=1e-4)
    rng = random.Random(0)
    alphas, draws = (4, 2, 2, 1), 40000
    hits = 0
    for _ in range(draws):
        g = [rng.gammavariate(a, 1.0) for a in alphas]
        hits += g[0] == max(g)
    assert p_largest(alphas) == pytest.approx(hits / draws, abs=0.01)
    # one answer seen k times: the "unseen" category makes it Beta(k+1, 1), never certain
    assert p_dirichlet([4]) == pytest.approx(p_beta(4, 0), abs=1e-5) and p_dirichlet([1]) < 0.8
    assert p_dirichlet([4, 1]) < p_beta(4, 1)  # more categories: less sure


@pytest.mark.parametrize("rule, answers, n, expected", [
    ("certain", ["5", "5", "5"], 5, "5"),          # 3 - 0 > 2 still to come
    ("certain", ["5", "5", "7"], 5, None),         # 2 - 1 = 1, not > 2
    ("certain", ["5", "7", "5", "7"], 4, None),    # all in, a tie: undecided (the vote then picks 5)
    ("certain", ["5", "5", "5"], 6, None),         # 3 - 0 = 3 still to come: could tie
    ("beta", ["5", "5", "5", "5"], 8, "5"),        # 0.969
    ("beta", ["5", "5", "5"], 8, None),            # 0.9375
    ("beta", ["5", "9", "5", "5", "5", "5"], 8, None),  # 5-1: 0.9375
    ("beta", ["5", "9", "5", "5", "5", "5", "5"], 8, "5"),  # 6-1: 0.965
    ("beta", [None, None, None, None], 8, None),
    ("dirichlet", ["5", "5", "5", "5"], 8, "5"),
    ("dirichlet", ["5", "9", "3", "5", "5", "5", "5"], 8, None),  # 6 beside two others: not yet
    ("window", ["5", "7", "7", "7"], 8, "7"),      # the window's answer
    ("window", ["7", "7", None, "7"], 8, None),    # a finish without an answer breaks the run
    ("window", ["7", "7"], 8, None),
])
def test_decide(rule, answers, n, expected):
    assert decide(rule, stream(*answers), n, threshold=0.95, window=3)[0] == expected


def test_beta_reports_the_leaders_probability_and_the_threshold_moves_the_stop():
    assert decide("beta", stream("5", "5", "5"), 8, threshold=0.9) == ("5", 0.9375)
    assert decide("beta", stream("5", "5", "5"), 8, threshold=0.95) == (None, 0.9375)


@pytest.mark.parametrize("rule, answers, n, expected", [
    ("beta", [], 8, 4), ("beta", ["5"], 8, 3), ("beta", ["5", "9"], 8, 5),  # 6-1 needs five more
    ("beta", ["5", "9", "3", "4", "6"], 8, None),  # 4-1 at best: cannot reach 0.95
    ("window", [], 8, 3), ("window", ["5", "7"], 8, 2), ("window", ["7", None], 8, 3),
    ("certain", [], 8, 5), ("certain", ["5", "7"], 8, 4),
])
def test_needed_counts_the_agreeing_answers_still_missing(rule, answers, n, expected):
    assert needed(rule, stream(*answers), n, threshold=0.95, window=3) == expected


# -- on a scripted engine ---------------------------------------------------------------------

async def test_a_decided_vote_stops_at_once_and_aborts_the_rest_in_the_engine():
    # four short samples agree on 7 (0.969 >= 0.95 at the 4th); the four long ones are aborted
    script = {i: [done("a" * (5 + i), "7")] for i in range(4)} | {i: [done("z" * 80, "3")] for i in range(4, 8)}
    engine = ScriptedEngine(script)
    sol = await solve(Adaptive(n=8, rule="beta", sampling=SEEDED), engine)
    assert sol.answer == "7" and sol.info["stop"] == "decided" and sol.info["votes"] == {"7": 4.0}
    assert sol.info["finished"] == 4 and sol.info["aborted"] == 4 and sol.info["launched"] == 8
    assert sol.info["finish_order"] == [0, 1, 2, 3] and sol.info["p_leader"] == pytest.approx(0.96875)
    last = sol.traces[3]
    assert sol.sequential == last.tokens and sol.info["winner"] == 0
    for t in sol.traces[4:]:
        assert t.aborted and t.finish_reason == "abort" and t.answer is None and not t.info["won"]
        assert t.tokens <= last.tokens + 1 and t.wasted_tokens == 1 and engine_tokens(engine, t) == t.tokens + 1
    assert sol.wasted_tokens == 4 and sol.total_tokens == sum(t.tokens for t in sol.traces)
    assert engine.stats.aborted_requests == 4
    generated = engine.stats.generated_tokens
    await asyncio.sleep(0.05)
    assert engine.unfinished() == 0 and engine.stats.generated_tokens == generated  # nothing after the aborts


async def test_an_undecided_vote_runs_to_n_and_takes_the_majority():
    script = {0: [done("a", "1")], 1: [done("bb", "2")], 2: [done("ccc", "2")], 3: [done("dddd", "1")]}
    for rule in ("beta", "dirichlet", "window", "certain"):
        engine = ScriptedEngine(script)
        sol = await solve(Adaptive(n=4, rule=rule, sampling=SEEDED), engine)
        assert sol.info["stop"] == "all_finished" and sol.info["finished"] == 4 and sol.info["aborted"] == 0
        assert sol.answer == "1" and sol.info["winner"] == 0  # 2-2: the earliest-launched answer
        assert not any(t.aborted for t in sol.traces) and engine.stats.aborted_requests == 0


async def test_certain_stops_once_the_runner_up_cannot_catch_up():
    script = {0: [done("a" * 4, "5")], 1: [done("b" * 6, "5")], 2: [done("c" * 8, "9")],
              3: [done("d" * 10, "5")], 4: [done("e" * 90, "9")]}
    sol = await solve(Adaptive(n=5, rule="certain", sampling=SEEDED), ScriptedEngine(script))
    # after 4 answers: 5 leads 3-1 with one sample left, which cannot tie it
    assert sol.answer == "5" and sol.info["finished"] == 4 and sol.traces[4].aborted


async def test_window_stops_on_equal_answers_in_finishing_order():
    script = {0: [done("a" * 30, "4")], 1: [done("b" * 3, "5")], 2: [done("c" * 6, "7")],
              3: [done("d" * 9, "7")], 4: [done("e" * 12, "7")], 5: [done("f" * 60, "5")]}
    sol = await solve(Adaptive(n=6, rule="window", window=3, sampling=SEEDED), ScriptedEngine(script))
    assert sol.answer == "7" and sol.info["finish_order"] == [1, 2, 3, 4]
    assert [t.aborted for t in sol.traces] == [True, False, False, False, False, True]


async def test_waves_launch_only_what_could_still_be_needed():
    # beta at 0.95 needs 4 agreeing: 2 at a time (wave=2), and never a fifth sample
    same = {i: [done("x" * (4 + i), "6")] for i in range(8)}
    engine = ScriptedEngine(same)
    sol = await solve(Adaptive(n=8, rule="beta", wave=2, sampling=SEEDED), engine)
    assert sol.answer == "6" and sol.info["launched"] == 4 and engine.stats.requests == 4
    assert sol.info["aborted"] == 0 and sol.wasted_tokens == 0
    assert [t.info["launched_at"] for t in sol.traces] == [0, 0, sol.traces[0].tokens, sol.traces[1].tokens]
    assert sol.sequential == sol.traces[1].tokens + sol.traces[3].tokens  # two waves one after the other
    # a window of 3 with wave=8 starts 3, not 8
    engine = ScriptedEngine(same)
    sol = await solve(Adaptive(n=8, rule="window", window=3, wave=8, sampling=SEEDED), engine)
    assert sol.answer == "6" and engine.stats.requests == 3 and sol.info["aborted"] == 0
    # 3-1 needs three more agreeing (6-1): exactly those are launched, the eighth never is
    split = {i: [done("x" * (4 + i), "9" if i == 3 else "6")] for i in range(8)}
    engine = ScriptedEngine(split)
    sol = await solve(Adaptive(n=8, rule="beta", wave=4, sampling=SEEDED), engine)
    assert sol.answer == "6" and sol.info["votes"] == {"6": 6.0, "9": 1.0} and engine.stats.requests == 7


async def test_waves_keep_sampling_an_undecidable_vote_up_to_n():
    script = {i: [done("x" * (3 + i), str(i))] for i in range(5)}  # every answer differs
    engine = ScriptedEngine(script)
    sol = await solve(Adaptive(n=5, rule="beta", wave=2, sampling=SEEDED), engine)
    assert sol.info["stop"] == "all_finished" and engine.stats.requests == 5 and sol.answer == "0"


async def test_over_budget_forced_samples():
    # thinking never closes: the cap forces each answer; two agree and decide a window of 2
    script = {i: ["<think>\n" + "x" * 100, "3}</s>"] for i in range(4)}
    ctrl = get_controller("adaptive", n=4, rule="window", window=2, max_thinking_tokens=12, answer_tokens=5, seed=0)
    assert ctrl.sample == BudgetForcing(max_thinking_tokens=12, answer_tokens=5)
    sol = await solve(ctrl, ScriptedEngine(script))
    assert sol.answer == "3" and all(t.info["forced"] for t in sol.traces if not t.aborted)
    assert sol.info["stop"] == "decided"


# -- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"n": 0}, "adaptive: n must be an integer >= 1"),
    ({"rule": "vote"}, "adaptive: rule must be one of certain, beta, dirichlet, window"),
    ({"threshold": 1}, "adaptive: threshold must be a number in (0, 1)"),
    ({"threshold": 0}, "adaptive: threshold must be a number in (0, 1)"),
    ({"threshold": "high"}, "adaptive: threshold must be a number in (0, 1)"),
    ({"n": 4, "window": 5}, "adaptive: window must be an integer in 1..n=4"),
    ({"window": 0}, "adaptive: window must be an integer in 1..n=8"),
    ({"n": 4, "wave": 5}, "adaptive: wave must be None or an integer in 1..n=4"),
    ({"wave": True}, "adaptive: wave must be None or an integer in 1..n=8"),
    ({"beam": 2}, "controller 'adaptive' has no option beam"),
])
def test_bad_options_raise_one_line_errors(options, message):
    with pytest.raises(ValueError) as err:
        get_controller("adaptive", **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_get_controller_routes_options():
    ctrl = get_controller("adaptive", n=6, rule="dirichlet", threshold=0.9, wave=3, temperature=0.7, seed=5)
    assert ctrl == Adaptive(n=6, rule="dirichlet", threshold=0.9, wave=3, sampling=Sampling(temperature=0.7, seed=5))
    probed = get_controller("adaptive", n=4, sample="probe", interval=8)
    assert probed.sample == Probe(interval=8) and probed.rule == "beta"


# -- the ways in --------------------------------------------------------------------------------

def test_ponder_solve_runs_adaptive():
    from typer.testing import CliRunner

    from ponder.cli import app

    result = CliRunner().invoke(app, ["solve", "Compute 012+034", "-c", "adaptive", "-n", "4", "-o", "rule=window",
                                      "-o", "window=2", "-o", "wave=2", "-o", "seed=3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["controller"] == "adaptive" and out["info"]["rule"] == "window"
    assert out["info"]["launched"] <= 4 and out["info"]["finished"] >= 2


def test_ponder_eval_sweeps_adaptive_rules(tmp_path):
    from typer.testing import CliRunner

    from ponder.cli.eval import app
    from ponder.eval.store import read_results

    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["--sweep", "controller=adaptive:n=4:rule=certain,adaptive:n=4:rule=beta:wave=2",
                                      "--limit", "2", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    runs = sorted(p for p in out.iterdir() if (p / "results.jsonl").exists())
    rules = set()
    for run in runs:
        rows, _ = read_results(run / "results.jsonl")
        assert len(rows) == 2 and all(r["info"]["launched"] <= 4 for r in rows)
        rules |= {r["info"]["rule"] for r in rows}
    assert len(runs) == 2 and rules == {"certain", "beta"}


# -- live: the tiny reasoner on every in-process engine and the Ray pool -------------------------

@pytest.fixture(params=["hf", pytest.param("vllm", marks=[pytest.mark.vllm, pytest.mark.slow]),
                        pytest.param("ray", marks=pytest.mark.slow)])
def live_engine(request):
    return request.param, request.getfixturevalue(f"{request.param}_engine")


# decode steps an aborted sample may run past what the controller read: in-process engines stop
# within the step running at the abort; the Ray pool also has the chunk in transit (as in test_ray_pool)
ABORT_LAG = {"hf": 1, "vllm": 1, "ray": 6}


@pytest.mark.timeout(900)
async def test_live_stop_aborts_in_the_engine(live_engine):
    """The engine's own counts after the stop: aborted samples decoded at most a step past their
    abort (plus the chunk in transit on Ray), finished ones exactly what they returned, and nothing is decoded once the run returned."""
    kind, hf_engine = live_engine  # the checks below read the engine's own counts, whatever its kind
    from ponder.benchmarks.arith import problems
    from ponder.types import Problem
    from ponder.verifiers import get_verifier

    arith = problems(3, seed=11)
    for i, p in enumerate(arith):
        problem = Problem(p.prompt, gold=str(p.answer), answer_kind="integer", id=p.id)
        ctrl = Adaptive(n=8, rule="window", window=2, sampling=Sampling(temperature=0.7, max_tokens=300, seed=50 * i))
        sol = await ctrl.run(problem, hf_engine, verifier=get_verifier("integer"))
        for _ in range(100):
            if hf_engine.unfinished() == 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        counts = [engine_tokens(hf_engine, t) for t in sol.traces]
        print(f"\nadaptive window=2 {problem.prompt}: {sol.answer} ({sol.info['stop']}), finished "
              f"{sol.info['finished']}, aborted {sol.info['aborted']}, total {sol.total_tokens}, wasted "
              f"{sol.wasted_tokens}, engine counts {counts}")
        assert sol.info["finished"] + sol.info["aborted"] == 8
        for t, c in zip(sol.traces, counts):
            if t.aborted:
                assert c - t.tokens == t.wasted_tokens <= ABORT_LAG[kind], "a sample kept decoding after its abort"
            else:
                assert c == t.tokens and t.wasted_tokens == 0
        assert sol.total_tokens + sol.wasted_tokens == sum(counts)
        if sol.info["stop"] == "decided":  # the last finish decided it (on vLLM all 8 may finish in one step)
            assert sol.answer == sol.traces[sol.info["finish_order"][-1]].answer
        generated = hf_engine.stats.generated_tokens
        await asyncio.sleep(0.3)
        assert hf_engine.stats.generated_tokens == generated and hf_engine.unfinished() == 0


# -- accuracy-per-token scores in ponder eval report (metrics.py, report.py) ---------------------

def test_ock_score_and_accuracy_within_tokens():
    import math

    from ponder.eval import metrics

    assert metrics.ock_score(0.9, 10_000) == pytest.approx(90.0)
    assert metrics.ock_score(0.9, 5_000) - metrics.ock_score(0.9, 10_000) == pytest.approx(10 * math.log(2))
    assert math.isnan(metrics.ock_score(0.9, 0))
    rows = [{"id": "a", "correct": True, "total_tokens": 100, "sequential_tokens": 100, "latency_s": 0.1},
            {"id": "b", "correct": True, "total_tokens": 300, "sequential_tokens": 300, "latency_s": 0.1},
            {"id": "c", "correct": False, "total_tokens": 50, "sequential_tokens": 50, "latency_s": 0.1}]
    assert metrics.accuracy_within_tokens(rows, 99) == 0
    assert metrics.accuracy_within_tokens(rows, 100) == pytest.approx(1 / 3)
    out = metrics.summarize(rows)
    assert out["ock_score"] == pytest.approx(100 * 2 / 3 - 10 * math.log(150 / 10_000))
    assert out["accuracy_within_tokens"] == {"32": 0.0, "64": 0.0, "128": pytest.approx(1 / 3),
                                             "256": pytest.approx(1 / 3), "512": pytest.approx(2 / 3)}


def test_report_table_prints_the_scores_at_one_threshold_for_all_runs():
    from ponder.eval import metrics
    from ponder.eval.report import default_threshold, markdown_table

    def run(name, totals, correct):
        rows = [{"id": str(i), "correct": ok, "total_tokens": t, "sequential_tokens": t, "latency_s": 0.1}
                for i, (t, ok) in enumerate(zip(totals, correct))]
        return {"run": name, "label": name, **metrics.summarize(rows)}

    cheap, dear = run("cheap", [90, 110, 120], [True, True, False]), run("dear", [800, 900, 1000], [True] * 3)
    assert default_threshold([cheap, dear]) == 128  # the cheapest run's mean (106.7), rounded up to 2^k
    header, _, first, second = markdown_table([cheap, dear]).splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    at = columns.index("acc<=128")
    assert columns.index("OckScore") == at - 1
    assert first.split("|")[at + 1].strip() == "66.7%" and second.split("|")[at + 1].strip() == "0.0%"
    assert second.split("|")[at].strip() == f"{dear['ock_score']:.1f}"
    wide = markdown_table([cheap, dear], threshold=1024).splitlines()[3]
    assert wide.split("|")[at + 1].strip() == "100.0%"
