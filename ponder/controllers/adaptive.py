"""`adaptive`: vote over parallel samples as they finish, stop as soon as the vote is decided.

Self-consistency (majority) pays for all n samples; most problems are settled by the first few
answers. This controller launches samples together, counts each answer as its sample finishes, and
once its stopping rule holds, aborts every sample still running *inside the engine* (their tasks are
cancelled, which closes their streams, as First Finish Search does with its losers). Rules:

- ``rule="certain"``: the leader cannot be overturned even if every sample not yet finished (running
  or not launched) answered the runner-up. Deterministic; gives majority@n's answer.
- ``rule="beta"`` (Adaptive-Consistency, arXiv 2305.11860, its Beta criterion): leader vs runner-up
  with counts a, b and a uniform prior; stop when P(p_leader > p_runner-up) >= ``threshold``, i.e.
  ``P(X > 1/2)`` for ``X ~ Beta(a+1, b+1)``, which for integer counts is exactly
  ``P(Binomial(a+b+1, 1/2) <= a)``. At 0.95 it stops at 4-0, 6-1, 8-2 (5-1: 0.9375).
- ``rule="dirichlet"`` (Adaptive-Consistency's Dirichlet criterion): every observed answer plus one
  category for "an answer not seen yet" (count 0), posterior Dirichlet(counts + 1); stop when
  P(the leader's share is the largest) >= ``threshold``. Computed as a one-dimensional integral
  (Gamma representation of the Dirichlet), see `p_largest`.
- ``rule="window"`` (Early-Stopping Self-Consistency, ESC, arXiv 2401.10480): the last ``window``
  samples to finish gave the same answer (a sample that finished without an answer breaks the run);
  the answer is that one.

``wave=k`` launches samples lazily: at most k run at once, and a sample is launched only while it
could still be needed: never more in flight than the further agreeing answers the rule needs to stop
(so beta at 0.95 starts 4 samples, a window of 3 starts 3). ``wave=None`` (the default) launches all
n at once, like its_hub's BetaSelfConsistency, finishing fastest but paying for the aborted ones.
If the rule never holds, every sample runs to its end (up to n) and the answer is the plain majority.
Votes are counted once per engine step (samples finishing together are counted together); ties go to
the earliest-launched sample's answer, as in `Majority`.

    from ponder.controllers import Adaptive, Probe
    sol = await Adaptive(n=8, rule="beta", wave=4).run(problem, engine, verifier=get_verifier("integer"))
    sol.answer, sol.info["votes"], sol.info["stop"], sol.info["finished"], sol.info["aborted"]
    Adaptive(n=8, rule="window", window=3, wave=3, sample=Probe())   # ESC over probed samples
    ponder solve "Compute 035+004" -c adaptive -o rule=beta -o wave=4

Token accounting: ``total_tokens`` counts every sample launched (aborted ones up to their abort),
``wasted_tokens`` what the engine decoded for them after the abort, and ``sequential_tokens`` the
longest chain of decode steps: a sample launched when another finished starts where that one ended.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Sequence

from ponder.controllers.base import Sampling, check_n, make_context
from ponder.controllers.policy import Plain, SamplePolicy, cancel, check, launch, mark_aborted
from ponder.controllers.trace import SampleContext
from ponder.controllers.vote import vote
from ponder.types import Problem, Solution, Trace

__all__ = ["Adaptive", "decide", "needed", "p_beta", "p_dirichlet", "p_largest"]

RULES = ("certain", "beta", "dirichlet", "window")
_UNSEEN = "\0unseen"
"""A stand-in answer (no verifier extracts it) for "a new answer" when the vote has none to extend."""


@dataclass(frozen=True)
class Adaptive:
    """n parallel samples voted on as they finish; the rest aborted once the vote is decided."""

    n: int = 8
    """Most samples drawn for a problem."""
    rule: Literal["certain", "beta", "dirichlet", "window"] = "beta"
    """When the vote is decided: ``certain`` (cannot be overturned), ``beta`` / ``dirichlet``
    (posterior probability that the leader is the true mode >= ``threshold``), ``window`` (the
    last ``window`` answers are equal)."""
    threshold: float = 0.95
    """``beta`` / ``dirichlet``: least posterior probability of the leader (Adaptive-Consistency: 0.95)."""
    window: int = 3
    """``window``: equal answers in a row, in finishing order, needed to stop (ESC's window w)."""
    wave: int | None = None
    """None: launch all n at once; k: at most k samples in flight, each launched only while it could
    still be needed to decide the vote."""
    sample: SamplePolicy = Plain()
    """How each sample is generated (``BudgetForcing(...)``, ``Probe()``, ...)."""
    sampling: Sampling = Sampling()
    """Decoding settings; sample i uses seed + i."""

    name = "adaptive"

    def __post_init__(self) -> None:
        check_n("adaptive", self.n)
        check(self.rule in RULES, "rule", f"adaptive: rule must be one of {', '.join(RULES)} (got {self.rule!r})")
        ok = isinstance(self.threshold, (int, float)) and not isinstance(self.threshold, bool)
        check(ok and 0 < self.threshold < 1, "threshold",
              f"adaptive: threshold must be a number in (0, 1) (got {self.threshold!r})")
        check(_count(self.window) and 1 <= self.window <= self.n,
              "window", f"adaptive: window must be an integer in 1..n={self.n} (got {self.window!r})")
        check(self.wave is None or (_count(self.wave) and 1 <= self.wave <= self.n),
              "wave", f"adaptive: wave must be None or an integer in 1..n={self.n} (got {self.wave!r})")

    async def run(self, problem: Problem, engine, *, verifier=None) -> Solution:
        start = time.perf_counter()
        ctx = make_context(problem, engine, verifier)
        race = _Race(self, ctx)
        try:
            decided = await race.until_decided()
        finally:
            aborted = await cancel(race.tasks)  # abort the rest now, before any bookkeeping
        if aborted:
            # one decode step of the run so far, to know how long an in-flight step may take
            step_s = (time.perf_counter() - start) / max(race.steps(finished_only=False), 1)
            await mark_aborted(engine, [race.traces[i] for i in aborted], step_s)
        return self._solution(race, decided, aborted, time.perf_counter() - start)

    def decide(self, answers: Sequence[tuple[int, str | None]]) -> tuple[str | None, float | None]:
        """This controller's rule on ``answers`` (see `decide`)."""
        return decide(self.rule, answers, self.n, threshold=self.threshold, window=self.window)

    def _solution(self, race: _Race, decided: str | None, aborted: list[int], wall: float) -> Solution:
        traces, finished = race.traces, race.finished
        _, p = self.decide(finished)
        tally = vote([a for _, a in sorted(finished)])[1]
        answer = decided if decided is not None else vote([a for _, a in sorted(finished)])[0]
        for i, t in enumerate(traces):
            t.info["won"] = answer is not None and not t.aborted and t.answer == answer
            t.info["launched_at"] = race.depth[i]
        winner = next((i for i, t in enumerate(traces) if t.info["won"]), None)
        info = {"rule": self.rule, "votes": tally, "winner": winner,
                "stop": "decided" if decided is not None else "all_finished",
                "finished": len(finished), "aborted": len(aborted), "launched": len(traces),
                "finish_order": [i for i, _ in finished],
                **({"p_leader": round(p, 6)} if p is not None else {}),
                **({} if answer is not None else {"no_answer": True})}
        return Solution(answer, traces, wall, self.name, sequential_tokens=race.steps(), info=info)


@dataclass
class _Race:
    """The samples of one problem: launched lazily or at once, voted on as they finish."""

    ctl: Adaptive
    ctx: SampleContext
    traces: list[Trace] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    """Per sample: the decode step at which it was launched (where the sample that freed its slot ended)."""
    finished: list[tuple[int, str | None]] = field(default_factory=list)
    """(launch index, answer) of each finished sample, in finishing order."""

    def steps(self, finished_only: bool = True) -> int:
        """The longest chain of decode steps: launch step + own sequential tokens, over the finished
        samples (what the user waited for: the vote was decided when the last of them ended) or all."""
        chosen = [i for i, _ in self.finished] if finished_only else range(len(self.traces))
        return max((self.depth[i] + self.traces[i].sequential for i in chosen), default=0)

    def top_up(self, now: int) -> None:
        """Launch what the rule may still need (everything, when ``wave`` is None)."""
        ctl = self.ctl
        running = sum(not t.done() for t in self.tasks)
        if ctl.wave is None:
            want = ctl.n
        else:
            need = needed(ctl.rule, self.finished, ctl.n, threshold=ctl.threshold, window=ctl.window)
            want = ctl.wave if need is None else min(ctl.wave, need)  # None: undecidable, keep sampling to n
        new = max(0, min(want - running, ctl.n - len(self.tasks)))
        if new:
            first = len(self.tasks)
            traces, tasks = launch(ctl.sample, self.ctx, [ctl.sampling.params(first + j) for j in range(new)])
            self.traces += traces
            self.tasks += tasks
            self.depth += [now] * new

    async def until_decided(self) -> str | None:
        """Run until the rule decides (its answer) or no sample is left (None)."""
        self.top_up(0)
        while True:
            pending = [t for t in self.tasks if not t.done()]
            if not pending:
                return None
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # samples reported together: the one that ended at an earlier decode step first, then launch order
            index = {id(t): i for i, t in enumerate(self.tasks)}
            now = 0
            for i in sorted((index[id(t)] for t in done), key=lambda i: (self.depth[i] + self.traces[i].sequential, i)):
                self.tasks[i].result()  # re-raise an engine error here rather than hide it
                self.finished.append((i, self.traces[i].answer))
                now = max(now, self.depth[i] + self.traces[i].sequential)
            answer, _ = self.ctl.decide(self.finished)
            if answer is not None:
                return answer
            self.top_up(now)


def decide(rule: str, answers: Sequence[tuple[int, str | None]], n: int, *, threshold: float = 0.95,
           window: int = 3) -> tuple[str | None, float | None]:
    """Apply a stopping rule to the answers so far.

    Args:
        rule: one of `RULES` (see the module docstring).
        answers: (launch index, answer or None) of each finished sample, in finishing order.
        n: the most samples (``certain`` counts the ones not finished yet as possible runner-up votes).
        threshold: least posterior probability of the leader (``beta``, ``dirichlet``).
        window: equal answers in a row needed (``window``).

    Returns:
        (the decided answer or None while undecided, the leader's posterior probability for
        ``beta``/``dirichlet`` or None).
    """
    if rule == "window":
        last = [a for _, a in answers[-window:]]
        ok = len(last) == window and last[0] is not None and all(a == last[0] for a in last)
        return (last[0] if ok else None), None
    leader, tally = vote([a for _, a in sorted(answers, key=lambda x: x[0])])  # ties: launch order
    if leader is None:
        return None, None
    counts = sorted((int(v) for a, v in tally.items() if a != leader), reverse=True)
    lead, runner = int(tally[leader]), (counts[0] if counts else 0)
    if rule == "certain":
        return (leader if lead - runner > n - len(answers) else None), None
    p = p_beta(lead, runner) if rule == "beta" else p_dirichlet([lead] + counts)
    return (leader if p >= threshold else None), p


def needed(rule: str, answers: Sequence[tuple[int, str | None]], n: int, *, threshold: float = 0.95,
           window: int = 3) -> int | None:
    """The fewest further answers that would decide the vote if they all agreed (with the leader,
    or for ``window`` with the last answer); None when even all n - finished could not decide it."""
    if rule == "window":
        last = answers[-1][1] if answers else None
        hope = last if last is not None else _UNSEEN
    else:
        hope = vote([a for _, a in sorted(answers, key=lambda x: x[0])])[0] or _UNSEEN
    for extra in range(0, n - len(answers) + 1):
        more = list(answers) + [(n + j, hope) for j in range(extra)]  # launched after every real one
        if decide(rule, more, n, threshold=threshold, window=window)[0] is not None:
            return extra
    return None


def p_beta(lead: int, runner: int) -> float:
    """P(p_leader > p_runner-up) under Beta(lead+1, runner+1): exactly P(Binomial(lead+runner+1, 1/2) <= lead)."""
    m = lead + runner + 1
    return sum(math.comb(m, k) for k in range(lead + 1)) / 2 ** m


def p_dirichlet(counts: Sequence[int]) -> float:
    """P(the first answer's share is the largest) under Dirichlet(counts + 1) over the observed answers
    and one more category, "an answer not seen yet", with count 0 (so a lone answer is not certain)."""
    return p_largest(tuple(int(c) + 1 for c in counts) + (1,))


@lru_cache(maxsize=4096)
def p_largest(alphas: tuple[int, ...], intervals: int = 400) -> float:
    """P(component 0 is the largest) for integer Dirichlet parameters ``alphas``.

    A Dirichlet vector is independent Gamma(alpha_i) variables divided by their sum, so the question
    is whether G_0 exceeds every other G_j:  P = integral over x of f_0(x) * prod_j F_j(x), with
    f the Gamma density and F its CDF (integer alpha: F(x) = 1 - e^-x sum_{k<alpha} x^k/k!).
    Simpson's rule over [0, alpha_0 + 12 sqrt(alpha_0) + 20], where f_0's mass lies.
    """
    a0, others = alphas[0], alphas[1:]
    if not others:
        return 1.0
    hi = a0 + 12 * math.sqrt(a0) + 20
    h = hi / intervals
    top = max(others)
    total = 0.0
    for i in range(intervals + 1):
        x = i * h
        if x == 0:
            f = 1.0 if a0 == 1 else 0.0
        else:
            f = math.exp((a0 - 1) * math.log(x) - x - math.lgamma(a0))
        if f == 0.0:
            continue
        partial, term = [], 1.0  # partial[k] = sum_{j<=k} x^j / j!
        for k in range(top):
            term = 1.0 if k == 0 else term * x / k
            partial.append((partial[-1] if partial else 0.0) + term)
        prod = math.prod(max(0.0, 1.0 - math.exp(-x) * partial[a - 1]) for a in others)
        weight = 1 if i in (0, intervals) else (4 if i % 2 else 2)
        total += weight * f * prod
    return min(1.0, total * h / 3)


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
