"""One controller object per run: every way in (solve, eval, serve, the SDK) checks its options by
building one `ControllerSpec` where they enter, and nothing below builds the controller again.

The count is of `get_controller` calls, the one place a controller is made from a name and options.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import ponder.controllers as controllers
from ponder.cli import app
from ponder.controllers import ControllerSpec, FirstFinish, UnknownController


@pytest.fixture
def builds(monkeypatch):
    made: list[str] = []
    real = controllers.get_controller

    def counting(name, **options):
        made.append(name)
        return real(name, **options)

    monkeypatch.setattr(controllers, "get_controller", counting)
    return made


def test_spec_builds_and_checks_once_and_reseeds_without_rebuilding(builds):
    spec = ControllerSpec.of("ffs", {"n": 4, "seed": 10, "max_thinking_tokens": 32})
    assert isinstance(spec.controller, FirstFinish) and spec.controller.sampling.seed == 10
    assert spec.label() == "ffs max_thinking_tokens=32 n=4"
    moved = spec.reseeded(8)
    assert moved.sampling.seed == 18 and moved.n == 4 and moved.sample == spec.controller.sample
    assert spec.reseeded(0) is spec.controller
    assert builds == ["ffs"]
    with pytest.raises(UnknownController, match="unknown controller 'nope'"):
        ControllerSpec.of("nope")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        ControllerSpec.of("majority", {"n": 0})


def test_eval_builds_each_runs_controller_once(builds, tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["eval", "--limit", "3", "--out", str(out), "--no-progress", "--sweep",
                                      "controller=single,ffs:n=2", "--max-tokens", "200"])
    assert result.exit_code == 0, result.output
    assert builds == ["single", "ffs"]  # one per run of the sweep, none per problem
    rows = [json.loads(line) for line in (out / "ffs-n2" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["samples"]) == 2 for r in rows)


def test_solve_cli_and_sdk_build_once(builds):
    result = CliRunner().invoke(app, ["solve", "Compute 012+034", "-c", "majority", "-n", "3",
                                      "--answer-kind", "integer", "--max-tokens", "200"])
    assert result.exit_code == 0, result.output
    assert builds == ["majority"] and "trace 2" in result.output and "answer: " in result.output
    import ponder

    with ponder.Solver() as solver:
        spec = ControllerSpec.of("ffs", {"n": 2, "max_tokens": 200})
        solver.solve("Compute 012+034", spec, answer_kind="integer")
        solver.solve("Compute 012+034", spec, answer_kind="integer")
        with pytest.raises(ValueError, match="ready ControllerSpec"):
            solver.solve("Compute 012+034", spec, n=3)
    assert builds == ["majority", "ffs"]


def test_serve_builds_one_controller_per_request_and_seeds_each_choice(builds):
    from ponder.serve.config import ServeConfig
    from ponder.serve.protocol import RequestError, parse_chat

    body = {"model": "tiny-reasoner", "messages": [{"role": "user", "content": "Compute 1+2"}], "n": 3,
            "seed": 5, "temperature": 0.7, "ponder": {"controller": "ffs", "n": 4, "max_thinking_tokens": 16}}
    job = parse_chat(body, ServeConfig())
    assert builds == ["ffs"]
    seeds = [job.controller_for(choice).sampling.seed for choice, _ in job.runs()]
    assert seeds == [5, 9, 13]  # each choice its own block of n=4 sample seeds
    assert job.controller_for(1).sample.max_thinking_tokens == 16 and job.controller_for(1).sampling.temperature == 0.7
    assert builds == ["ffs"]
    for change, param in (({"temperature": "hot"}, "temperature"), ({"max_completion_tokens": 0},
                          "max_completion_tokens"), ({"seed": 1.5}, "seed"), ({"ponder": {"k": 9}}, "ponder.k"),
                          ({"ponder": {"controller": "adaptive", "rule": "bogus"}}, "ponder.rule"),
                          ({"ponder": {"controller": "adaptive", "sample": "probe", "sample_rule": "x"}}, "ponder.sample_rule"),
                          ({"ponder": {"controller": "ffs", "beam": 2}}, "ponder.beam"),
                          ({"ponder": {"controller": "budget_forcing", "extend": -1}}, "ponder.extend"),
                          ({"ponder": {"controller": "probe", "transitions": 5}}, "ponder.transitions"),
                          ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
                          ({"stop": ["", "x"]}, "stop"), ({"reasoning": {"effort": "huge"}}, "reasoning.effort"),
                          ({"ponder": {"max_tokens": 40000}}, "ponder.max_tokens"),
                          ({"ponder": {"temperature": -1}}, "ponder.temperature"),
                          ({"reasoning_effort": "low", "ponder": {"controller": "probe"}}, "reasoning_effort")):
        with pytest.raises(RequestError) as refused:
            parse_chat({**body, **change}, ServeConfig())
        assert refused.value.param == param and refused.value.message, change
    minimum = ServeConfig(controller="budget_forcing", options=(("min_thinking_tokens", 100),))
    for change, param in (({"ponder": {"max_thinking_tokens": 5}}, "ponder.max_thinking_tokens"),
                          ({"ponder": {"max_thinking_tokens": 5}, "reasoning_effort": "high"}, "ponder.max_thinking_tokens"),
                          ({"reasoning_effort": "none"}, "reasoning_effort")):  # the cap under the server's minimum
        with pytest.raises(RequestError) as refused:
            parse_chat({**body, "ponder": None, **change}, minimum)
        assert refused.value.param == param, change
    with pytest.raises(RequestError) as unknown:  # a model this server does not serve: 404 before anything else
        parse_chat({**body, "model": "gpt-4", "n": "x"}, ServeConfig())
    assert unknown.value.status == 404
    nulls = parse_chat({**body, "n": None, "stream": None, "include_reasoning": None, "stop": None,
                        "stream_options": {"include_usage": None}}, ServeConfig())  # null: the default, as in OpenAI's API
    assert (nulls.n, nulls.stream, nulls.include_reasoning, nulls.stop, nulls.include_usage) == (1, False, True, (), False)


def test_adaptive_over_probe_samples_is_reachable_by_name_from_every_way_in():
    """A policy option named like one of the controller's own goes to the controller; the policy's
    own is ``sample_NAME`` (adaptive and probe both have rule, threshold and window)."""
    from ponder.controllers import Probe
    from ponder.serve.config import ServeConfig
    from ponder.serve.protocol import parse_chat

    spec = ControllerSpec.of("adaptive", {"rule": "window", "window": 2, "wave": 2, "sample": "probe",
                                          "sample_rule": "confidence", "sample_threshold": 0.9, "interval": 8})
    ctrl = spec.controller
    assert (ctrl.rule, ctrl.window, ctrl.wave) == ("window", 2, 2)
    assert ctrl.sample == Probe(rule="confidence", threshold=0.9, interval=8)
    body = {"model": "tiny-reasoner", "messages": [{"role": "user", "content": "Compute 1+2"}],
            "ponder": {"controller": "adaptive", **dict(spec.options)}}
    assert parse_chat(body, ServeConfig()).spec.controller == ctrl
    with pytest.raises(ValueError, match="has no option sample_rule"):
        ControllerSpec.of("adaptive", {"sample_rule": "confidence"})  # no policy named: nothing takes it
