"""Controllers on real engines with the embedded tiny reasoner: the claims, from the engine's own counts.

- FFS (n=8, T=0.6, top_p=0.95) on hf and vLLM: once the winner finishes, every other sample stops
  within one decode step (at most one token decoded after its abort, so wasted <= n - 1), and the
  engine decoded at most n x (winner length + 1) tokens for the problem.
- Budget forcing: thinking never exceeds the cap and an answer follows the forced stop; with
  ``extend=N`` the model (which ends its thinking by itself) is sent on exactly N more times.

Run with ``-s`` to see the measured numbers.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from ponder.controllers import BudgetForcing, DeepConf, FirstFinish, Majority, Sampling
from ponder.benchmarks.arith import problems
from ponder.types import Problem
from ponder.verifiers import get_verifier

pytestmark = pytest.mark.timeout(900)

ARITH = problems(4, seed=11)
PROBLEMS = [Problem(p.prompt, gold=str(p.answer), answer_kind="integer", id=p.id) for p in ARITH]
FFS_SAMPLING = Sampling(temperature=0.6, top_p=0.95, max_tokens=300)
BOXED = re.compile(r"</think>\\boxed\{\d+\}")


def engine_tokens(engine, trace) -> int:
    """What the engine itself decoded for this sample, over all of its requests."""
    return sum(engine.stats.per_request.get(r, 0) for r in trace.info["request_ids"])


async def quiet(engine, seconds: float = 0.5) -> None:
    """Let every abort take effect (generously: this is the check, not the controller)."""
    for _ in range(100):
        if engine.unfinished() == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)


async def check_ffs(engine, kind: str) -> None:
    n = 8
    for i, problem in enumerate(PROBLEMS[:2]):
        ctrl = FirstFinish(n=n, sampling=Sampling(**{**FFS_SAMPLING.__dict__, "seed": 100 * i}))
        sol = await ctrl.run(problem, engine, verifier=get_verifier("integer"))
        await quiet(engine)
        winner = sol.traces[sol.info["winner"]]
        counts = [engine_tokens(engine, t) for t in sol.traces]
        aborted = [(t, c) for t, c in zip(sol.traces, counts) if t.aborted]
        waste = [c - t.tokens for t, c in aborted]
        print(f"\n{kind} FFS@{n} {problem.prompt}: winner {winner.tokens} tokens, {len(aborted)} aborted, "
              f"engine-counted tokens after abort {waste}, controller-reported wasted {sol.wasted_tokens}, "
              f"total {sum(counts)} <= {n * (winner.tokens + 1)}, lengths {[t.tokens for t in sol.traces]}")
        assert sol.answer is not None and not winner.aborted and winner.finish_reason == "stop"
        assert sol.sequential == winner.tokens
        for t, c in zip(sol.traces, counts):
            if t.aborted:
                assert c - t.tokens <= 1 and c <= winner.tokens + 1, "a sample kept decoding after its abort"
            else:
                assert c == t.tokens and t.tokens >= winner.tokens
        assert sum(waste) <= n - 1 and sol.wasted_tokens == sum(waste)
        assert sum(counts) <= n * (winner.tokens + 1)
        generated = engine.stats.generated_tokens
        await asyncio.sleep(0.3)
        assert engine.stats.generated_tokens == generated and engine.unfinished() == 0


async def test_ffs_live_hf_aborts_within_one_step(hf_engine):
    await check_ffs(hf_engine, "hf")


@pytest.mark.vllm
@pytest.mark.slow
async def test_ffs_live_vllm_aborts_within_one_step(vllm_engine):
    await check_ffs(vllm_engine, "vllm")


async def test_budget_forcing_cap_live(hf_engine):
    cap, answer_tokens = 30, 8
    ctrl = Majority(n=4, sample=BudgetForcing(max_thinking_tokens=cap, answer_tokens=answer_tokens),
                    sampling=Sampling(temperature=0.6, top_p=0.95, seed=5, max_tokens=300))
    sol = await ctrl.run(PROBLEMS[2], hf_engine, verifier=get_verifier("integer"))
    tok = hf_engine.tokenizer
    for t in sol.traces:
        thinking_request, answer_request = (hf_engine.stats.per_request[r] for r in t.info["request_ids"])
        assert t.thinking_tokens == thinking_request == cap  # the tiny reasoner thinks longer than 30
        assert t.info["forced"] and answer_request <= answer_tokens
        # the cut is exact: the first `cap` generated tokens, then the forced delimiter and cue
        assert t.text.startswith(tok.decode(t.token_ids[:cap]) + "</think>\\boxed{")
        assert t.answer is not None, t.text  # trained on forced exits: a cut still yields a number
    print(f"\nBF cap {cap}: forced answers {[t.text[t.text.rfind('</think>'):] for t in sol.traces]}")


async def test_answer_after_forced_stop_live(hf_engine):
    """Cut right after the model first states its answer: the forced answer is that answer.

    (Arbitrary caps are in test_budget_forcing_cap_live: there the answer is a number, not
    necessarily a right one.)
    """
    tok, greedy = hf_engine.tokenizer, Sampling(temperature=0.0, max_tokens=400)
    for problem in PROBLEMS:
        plain = (await BudgetForcing(sampling=greedy).run(problem, hf_engine, verifier=get_verifier("integer"))).traces[0]
        stated = plain.text.index("\n", plain.text.index("so the answer is")) + 1
        cap = len(tok.encode(plain.text[:stated], add_special_tokens=False))
        ctrl = BudgetForcing(max_thinking_tokens=cap, sampling=greedy)
        sol = await ctrl.run(problem, hf_engine, verifier=get_verifier("integer"))
        t = sol.traces[0]
        first = re.search(r"so the answer is (\d+)", plain.text).group(1)
        assert sol.info["forced"] and t.thinking_tokens == cap <= plain.thinking_tokens
        assert BOXED.search(t.text) and t.answer == first, t.text
        print(f"\nforced at {cap} of {plain.thinking_tokens} thinking tokens: {problem.prompt} -> {t.answer}")


@pytest.mark.parametrize("extend", [1, 3])
async def test_budget_forcing_extend_live(hf_engine, extend):
    ctrl = BudgetForcing(extend=extend, sampling=Sampling(temperature=0.0, max_tokens=600))
    sol = await ctrl.run(PROBLEMS[3], hf_engine, verifier=get_verifier("integer"))
    t = sol.traces[0]
    end = hf_engine.tokenizer.convert_tokens_to_ids("</think>")
    assert sol.info == {"waits": extend, "forced": False}
    # the model ended its thinking extend + 1 times; all but the last delimiter were replaced
    assert t.token_ids.count(end) == extend + 1 and t.text.count("</think>") == 1
    assert t.text.count("wait, ") >= extend and BOXED.search(t.text) and t.answer is not None
    print(f"\nBF extend={extend}: {t.thinking_tokens} thinking tokens, answer {t.answer}")


async def test_deepconf_live(hf_engine):
    ctrl = DeepConf(n=8, warmup=4, window=32, sampling=Sampling(temperature=0.6, top_p=0.95, seed=9, max_tokens=300))
    sol = await ctrl.run(PROBLEMS[0], hf_engine, verifier=get_verifier("integer"))
    await quiet(hf_engine)
    for t in sol.traces:
        if t.aborted:
            assert engine_tokens(hf_engine, t) - t.tokens <= 1 and not t.info["warmup"]
    assert sol.answer is not None and sol.info["threshold"] > 0
    print(f"\nDeepConf: threshold {sol.info['threshold']}, stopped {sol.info['stopped']}, votes {sol.info['votes']}, "
          f"lengths {[t.tokens for t in sol.traces]}, confidences {[t.info['confidence'] for t in sol.traces]}")
