"""``ponder serve`` end to end: a real server process on a free loopback port (the embedded tiny
reasoner on the hf engine), driven by the official ``openai`` client.

- chat and completions, streaming and not, with single, ffs, majority and budget forcing;
- the thinking-control fields clients already send (thinking_token_budget, reasoning_effort,
  OpenRouter's reasoning object, include_reasoning) and ponder's minimum thinking;
- ``usage.completion_tokens`` equals what the engine itself decoded for the request;
- a client that goes away aborts its samples inside the engine (read from /metrics);
- bad input gets 400 with OpenAI's error shape, a bad key 401, and the server stays up.

    python -m pytest -q tests/test_serve.py
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from serve_process import ServeProcess

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key"
MODEL = "tiny-reasoner"
PROBLEM = [{"role": "user", "content": "Compute 012+034"}]
BOXED = re.compile(r"^\\boxed\{\d+\}$")
EFFORT = {"none": 0, "low": 24, "medium": 48}


@pytest.fixture(scope="module")
def server():
    args = ["--api-key", KEY, "--answer-kind", "integer", "--max-n", "4", "--max-samples", "16",
            "--max-request-tokens", "512", "--max-body-bytes", "65536", "--progress-interval", "0.1",
            "--log-level", "warning",
            *[a for level, tokens in EFFORT.items() for a in ("--effort", f"{level}={tokens}")]]
    with ServeProcess(args, env={"PYTHONPATH": str(ROOT)}) as proc:
        yield proc
    assert proc.proc is None


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=300)


def chat(client, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=kwargs.pop("messages", PROBLEM), **kwargs)


def idle(server) -> dict[str, float]:
    """The metrics once the engine holds no request (every earlier abort has taken effect)."""
    for _ in range(400):
        m = server.metrics()
        if m["ponder_engine_unfinished_requests"] == 0:
            return m
        time.sleep(0.05)
    raise AssertionError("the engine never became idle")


def engine_tokens(server) -> float:
    return idle(server)["ponder_engine_generated_tokens_total"]


def test_models_health_metrics_and_page(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert httpx.get(f"{server.root}/health").json() == {"status": "ok"}
    page = httpx.get(f"{server.root}/")
    assert page.status_code == 200 and "/page/race.js" in page.text
    assert "chat/completions" in httpx.get(f"{server.root}/page/race.js").text
    config = httpx.get(f"{server.root}/ponder/config").json()
    assert config["model"] == MODEL and "ffs" in config["controllers"] and "n" in config["options"]["ffs"]


def test_single_chat_answers_with_reasoning_and_engine_counted_usage(server, client):
    before = engine_tokens(server)
    r = chat(client, seed=3)
    msg = r.choices[0].message
    assert BOXED.match(msg.content) and r.choices[0].finish_reason == "stop"
    assert "so the answer is" in msg.reasoning and msg.reasoning == msg.reasoning_content
    assert "<think>" not in msg.reasoning and "</s>" not in msg.content
    u = r.usage
    assert u.completion_tokens == engine_tokens(server) - before > 0
    assert u.prompt_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.ponder == {"sequential_tokens": u.completion_tokens, "wasted_tokens": 0, "samples": 1, "aborted": 0,
                        "controller": "single"}
    assert 0 < u.completion_tokens_details.reasoning_tokens < u.completion_tokens


def test_ffs_aborts_losers_and_counts_every_engine_token(server, client):
    before = engine_tokens(server)
    r = chat(client, seed=7, extra_body={"ponder": {"controller": "ffs", "n": 4}})
    p = r.usage.ponder
    assert BOXED.match(r.choices[0].message.content)
    assert r.choices[0].ponder["answer"] in r.choices[0].message.content
    assert p["controller"] == "ffs" and p["samples"] == 4 and p["aborted"] >= 1
    # every token the hardware made: the samples' tokens plus those decoded after their abort
    assert r.usage.completion_tokens == engine_tokens(server) - before
    assert p["sequential_tokens"] < r.usage.completion_tokens


def test_majority_votes_over_every_sample(client):
    r = chat(client, seed=11, extra_body={"ponder": {"controller": "majority", "n": 3}})
    votes = r.choices[0].ponder["votes"]
    assert sum(votes.values()) <= 3 and r.choices[0].ponder["answer"] == max(votes, key=votes.get)
    assert r.usage.ponder["samples"] == 3 and r.usage.ponder["aborted"] == 0


def collect(stream):
    """(reasoning pieces, content, finish reason, usage) of a streamed chat completion."""
    pieces, content, finish, usage = [], "", None, None
    for c in stream:
        usage = c.usage or usage
        for ch in c.choices:
            delta = ch.delta.model_dump()
            assert delta.get("reasoning") == delta.get("reasoning_content")
            if delta.get("reasoning"):
                pieces.append(delta["reasoning"])
            content += delta.get("content") or ""
            finish = ch.finish_reason or finish
    return pieces, content, finish, usage


def test_streaming_single_sends_tokens_as_they_come_and_matches_the_full_answer(client):
    whole = chat(client, seed=5).choices[0].message
    pieces, content, finish, usage = collect(chat(client, seed=5, stream=True, stream_options={"include_usage": True}))
    assert len(pieces) > 2  # streamed, not sent at the end
    assert "".join(pieces) == whole.reasoning and content == whole.content and finish == "stop"
    assert usage.ponder["samples"] == 1 and usage.completion_tokens > 0


def test_streaming_budget_forcing_never_takes_text_back(client):
    """The model's end of thinking is replaced by "wait" twice; the stream must not have sent it."""
    ponder = {"controller": "budget_forcing", "extend": 2}
    whole = chat(client, seed=3, extra_body={"ponder": ponder}).choices[0]
    pieces, content, _, _ = collect(chat(client, seed=3, stream=True, extra_body={"ponder": ponder}))
    assert whole.ponder["waits"] == 2 and "</think>" not in "".join(pieces)
    assert "".join(pieces) == whole.message.reasoning and content == whole.message.content


def test_deepconf_through_the_server(client):
    r = chat(client, seed=3, extra_body={"ponder": {"controller": "deepconf", "n": 6, "warmup": 2, "window": 16}})
    assert r.usage.ponder["samples"] == 6 and r.usage.ponder["controller"] == "deepconf"
    assert "threshold" in r.choices[0].ponder and BOXED.match(r.choices[0].message.content)


def test_streaming_ffs_sends_progress_comments_then_the_winner(server):
    body = {"model": MODEL, "messages": PROBLEM, "stream": True, "seed": 2,
            "ponder": {"controller": "ffs", "n": 4, "min_thinking_tokens": 300}}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        lines = [line for line in r.iter_lines() if line]
    comments = [json.loads(line[len(": ponder "):]) for line in lines if line.startswith(": ponder ")]
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert lines[-1] == "data: [DONE]" and comments, lines[:5]
    assert all(c["samples"] == 4 and c["choice"] == 0 for c in comments)
    assert comments[-1]["tokens"] > comments[0]["tokens"]
    deltas = [ch["delta"] for e in events for ch in e["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    answer = [d for d in deltas if d.get("content")]
    assert len(answer) == 1 and BOXED.match(answer[0]["content"]) and "wait" in answer[0]["reasoning"]


def test_lanes_stream_every_sample_and_end_with_their_fate(client):
    lanes, final, usage = {}, None, None
    for c in chat(client, seed=7, stream=True, stream_options={"include_usage": True},
                  extra_body={"ponder": {"controller": "ffs", "n": 4, "lanes": True}}):
        usage = c.usage or usage
        extra = (c.model_extra or {}).get("ponder")
        if extra:
            for u in extra["lanes"]:
                text = lanes.get(u["lane"], {}).get("text", "")
                lanes[u["lane"]] = {**u, "text": text[: len(text) - u["back"]] + u["text"]}
            if extra.get("done"):
                final = extra
    assert sorted(lanes) == [0, 1, 2, 3] and final is not None
    states = [lanes[i]["state"] for i in range(4)]
    assert states.count("won") == 1 and "aborted" in states and set(states) <= {"won", "aborted", "finished"}
    won = next(lane for lane in lanes.values() if lane["state"] == "won")
    assert won["text"].endswith("\\boxed{" + final["answer"] + "}") and won["tokens"] == final["sequential_tokens"]
    assert sum(lane["tokens"] for lane in lanes.values()) + usage.ponder["wasted_tokens"] == usage.completion_tokens
    assert final["total_tokens"] == sum(lane["tokens"] for lane in lanes.values())


def test_completions_batch_and_stream(client):
    r = client.completions.create(model=MODEL, prompt=["Compute 012+034", "Compute 100+200"], n=2, seed=1,
                                  extra_body={"ponder": {"controller": "ffs", "n": 2}})
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert all(c.text.startswith("<think>") and "</think>\\boxed{" in c.text for c in r.choices)
    assert r.usage.ponder["samples"] == 8
    # 64 thinking tokens: a stream that spans many of the server's gathering ticks even on a loaded machine
    # (at 20, under CI load, the whole completion once fitted into one tick and came as one event)
    forced = {"ponder": {"controller": "budget_forcing", "max_thinking_tokens": 64}}
    whole = client.completions.create(model=MODEL, prompt="Compute 045+021", seed=4, max_tokens=200, extra_body=forced)
    streamed = client.completions.create(model=MODEL, prompt="Compute 045+021", seed=4, max_tokens=200, stream=True,
                                         extra_body=forced)
    texts = [c.choices[0].text for c in streamed if c.choices]
    assert len([t for t in texts if t]) > 1 and "".join(texts) == whole.choices[0].text
    assert "</think>\\boxed{" in whole.choices[0].text


def test_thinking_budgets_cap_and_close_gracefully(client):
    cases = [({"extra_body": {"thinking_token_budget": 16}}, 16),
             ({"reasoning_effort": "low"}, EFFORT["low"]),
             ({"extra_body": {"reasoning": {"max_tokens": 12}}}, 12),
             ({"extra_body": {"reasoning": {"effort": "medium"}}}, EFFORT["medium"]),
             ({"reasoning_effort": "none"}, 0)]
    for kwargs, cap in cases:
        r = chat(client, seed=1, **kwargs)
        thought = r.usage.completion_tokens_details.reasoning_tokens
        assert thought <= cap, (kwargs, thought)
        assert r.choices[0].message.content.startswith("\\boxed{"), kwargs  # the answer still comes
    uncapped = chat(client, seed=1).usage.completion_tokens_details.reasoning_tokens
    assert uncapped > 24  # so the caps above did cut


def test_minimum_thinking_says_wait(client):
    r = chat(client, seed=1, extra_body={"ponder": {"controller": "budget_forcing", "min_thinking_tokens": 150}})
    assert r.usage.completion_tokens_details.reasoning_tokens >= 150
    assert "wait" in r.choices[0].message.reasoning and r.choices[0].ponder["waits"] >= 1


def test_reasoning_can_be_left_out_and_stop_cuts_the_answer(client):
    for kwargs in ({"extra_body": {"include_reasoning": False}}, {"extra_body": {"reasoning": {"exclude": True}}}):
        msg = chat(client, seed=1, **kwargs).choices[0].message
        assert BOXED.match(msg.content) and "reasoning" not in msg.model_dump(exclude_none=True)
    r = chat(client, seed=1, stop=["}"])
    assert re.fullmatch(r"\\boxed\{\d+", r.choices[0].message.content) and r.choices[0].finish_reason == "stop"


def test_n_choices_system_message_and_text_parts(client):
    messages = [{"role": "system", "content": "Answer in a box."},
                {"role": "user", "content": [{"type": "text", "text": "Compute 012+034"}]}]
    r = chat(client, messages=messages, n=3, seed=9, temperature=0.8, top_p=0.95, max_tokens=300)
    assert [c.index for c in r.choices] == [0, 1, 2] and r.usage.ponder["samples"] == 3


def test_math_answer_kind_per_request(client):
    r = chat(client, seed=3, extra_body={"ponder": {"answer_kind": "math"}})
    assert r.choices[0].ponder["answer"] is not None


def test_concurrent_clients_all_answered(server):
    async def main():
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=300) as aclient:
            calls = [aclient.chat.completions.create(
                model=MODEL, seed=i, messages=[{"role": "user", "content": f"Compute {i:03d}+{2 * i:03d}"}],
                extra_body={"ponder": {"controller": "ffs", "n": 4}}) for i in range(8)]
            return await asyncio.gather(*calls)

    results = asyncio.run(main())
    assert all(r.usage.ponder["samples"] == 4 and r.choices[0].message.content for r in results)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_goes_away_aborts_every_sample_in_the_engine(server, stream):
    before = idle(server)
    body = dict(model=MODEL, messages=PROBLEM, stream=stream,
                extra_body={"ponder": {"controller": "majority", "n": 16, "min_thinking_tokens": 400, "extend": 50}})

    async def start_then_leave():
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=300) as aclient:
            async def call():
                r = await aclient.chat.completions.create(**body)
                if stream:
                    async for _ in r:
                        pass

            task = asyncio.create_task(call())
            for _ in range(600):  # until the engine is busy with the 16 samples
                m = await asyncio.to_thread(server.metrics)
                if m["ponder_engine_generated_tokens_total"] - before["ponder_engine_generated_tokens_total"] > 400:
                    break
                await asyncio.sleep(0.05)
            assert not task.done() and m["ponder_engine_unfinished_requests"] > 0
            task.cancel()  # the client closes its connection
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(start_then_leave())
    after = idle(server)  # every sample of the request aborted inside the engine...
    time.sleep(1.0)
    later = server.metrics()  # ...and nothing more is decoded for it
    spent = later["ponder_engine_generated_tokens_total"] - before["ponder_engine_generated_tokens_total"]
    assert later["ponder_engine_generated_tokens_total"] == after["ponder_engine_generated_tokens_total"]
    assert later["ponder_engine_unfinished_requests"] == 0
    assert later["ponder_client_disconnects_total"] == before["ponder_client_disconnects_total"] + 1
    assert spent < 16 * 400 / 2  # far less than the 16 x 400+ tokens the whole request would have cost
    assert later["ponder_aborted_samples_total"] - before["ponder_aborted_samples_total"] == 16


BAD = [
    ("malformed JSON", b"{not json", "invalid_json", None),
    ("not an object", b"[1, 2]", "invalid_json", None),
    ("no messages", {"messages": []}, "invalid_value", "messages"),
    ("messages not a list", {"messages": "Compute 1+2"}, "invalid_value", "messages"),
    ("image content", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "invalid_value",
     "messages[0].content"),
    ("no user message", {"messages": [{"role": "system", "content": "x"}]}, "invalid_value", "messages"),
    ("unknown controller", {"ponder": {"controller": "nope"}}, "unknown_controller", "ponder.controller"),
    ("bad option value", {"ponder": {"controller": "ffs", "n": 0}}, "invalid_value", "ponder.n"),
    ("k over n", {"ponder": {"controller": "ffs", "n": 2, "k": 3}}, "invalid_value", "ponder.k"),
    ("unknown option", {"ponder": {"controller": "single", "bogus": 1}}, "invalid_value", "ponder.bogus"),
    ("bad temperature", {"temperature": -1}, "invalid_value", "temperature"),
    ("bad top_p", {"top_p": 2}, "invalid_value", "top_p"),
    ("bad budget", {"thinking_token_budget": -5}, "invalid_value", "thinking_token_budget"),
    ("bad effort", {"reasoning_effort": "extreme"}, "invalid_value", "reasoning_effort"),
    ("n over limit", {"n": 5}, "over_limit", "n"),
    ("samples over limit", {"ponder": {"controller": "ffs", "n": 17}}, "over_limit", "ponder.n"),
    ("max_tokens over limit", {"max_tokens": 100000}, "over_limit", "max_tokens"),
    ("prompt over the context", {"messages": [{"role": "user", "content": "Compute " + "1+" * 300 + "1"}]},
     "context_length_exceeded", "messages"),
    ("stream not a bool", {"stream": "yes"}, "invalid_value", "stream"),
    ("tools", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "unsupported", "tools"),
    ("body too large", {"messages": [{"role": "user", "content": "x" * 70000}]}, "body_too_large", None),
]


@pytest.mark.parametrize("name, change, code, param", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_400_with_openai_error_shape(server, name, change, code, param):
    body = change if isinstance(change, bytes) else json.dumps({"model": MODEL, "messages": PROBLEM, **change})
    r = httpx.post(f"{server.base_url}/chat/completions", content=body, timeout=60,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert httpx.get(f"{server.root}/health").status_code == 200


def test_openai_client_sees_bad_requests_and_bad_keys(server, client):
    with pytest.raises(openai.BadRequestError, match="unknown controller"):
        chat(client, extra_body={"ponder": {"controller": "nope"}})
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4", messages=PROBLEM)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    for path in ("/models", "/chat/completions"):
        r = httpx.request("GET" if path == "/models" else "POST", f"{server.base_url}{path}", json={})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert server.alive() and chat(client, seed=1).choices[0].message.content


def test_metrics_count_requests_tokens_and_latency(server, client):
    """Counts what this test itself sends (deltas), whatever ran before it."""
    before = idle(server)
    ffs = chat(client, extra_body={"ponder": {"controller": "ffs", "n": 4}}, max_tokens=400, seed=7)
    chat(client, max_tokens=64)
    with pytest.raises(openai.BadRequestError):
        chat(client, temperature=-1)
    m = idle(server)

    def grew(name: str) -> float:
        return m.get(name, 0.0) - before.get(name, 0.0)

    assert grew('ponder_requests_total{endpoint="chat",status="200"}') == 2
    assert grew('ponder_requests_total{endpoint="chat",status="400"}') == 1
    assert grew('ponder_request_latency_seconds_count{endpoint="chat"}') == 3  # refused ones too
    assert m["ponder_requests_in_flight"] == 0
    usage = ffs.usage.model_extra["ponder"]
    assert grew("ponder_samples_total") == 4 + 1
    assert grew("ponder_aborted_samples_total") == usage["aborted"] >= 1  # FFS aborted its losers
    assert grew("ponder_wasted_tokens_total") == usage["wasted_tokens"]
    assert grew("ponder_generated_tokens_total") >= ffs.usage.completion_tokens > 0


def test_readme_client_example(server):
    example = (ROOT / "tests" / "fixtures" / "serve_client_example.py").read_text()
    code = example.replace("http://127.0.0.1:8000/v1", server.base_url).replace('api_key="none"', f'api_key="{KEY}"')
    assert len(example.strip().splitlines()) == 5
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert re.match(r"\\boxed\{\d+\} \{'sequential_tokens': \d+, 'wasted_tokens': \d+, 'samples': 8, 'aborted': \d+, "
                    r"'controller': 'ffs'\}", out.stdout), out.stdout


def _cli(monkeypatch, *args):
    """``ponder serve ARGS`` in this process, stopped before it would load a model."""
    import importlib

    from typer.testing import CliRunner

    from ponder.cli import app

    command = importlib.import_module("ponder.cli.serve")  # the package attribute is the function

    started = []
    monkeypatch.setattr(command, "_run", lambda cfg, *rest: started.append((cfg, rest)))
    return CliRunner().invoke(app, ["serve", *args]), started


def test_cli_warns_when_serving_beyond_loopback_without_a_key(monkeypatch):
    result, started = _cli(monkeypatch, "--host", "0.0.0.0", "-c", "ffs", "-n", "8", "--effort", "low=64")
    assert result.exit_code == 0 and "warning: serving on 0.0.0.0 without --api-key" in result.stderr
    cfg = started[0][0]
    assert cfg.controller == "ffs" and dict(cfg.options) == {"n": 8} and cfg.budget_for("low") == 64
    assert cfg.budget_for("high") == 16384  # levels not given keep the default table
    for args in (["--host", "0.0.0.0", "--api-key", "k"], ["--host", "127.0.0.1"], ["--host", "localhost"]):
        result, _ = _cli(monkeypatch, *args)
        assert result.exit_code == 0 and "warning" not in result.stderr


@pytest.mark.parametrize("args, needle", [
    (["-c", "nope"], "unknown controller 'nope'"),
    (["-c", "ffs", "-n", "0"], "n must be an integer >= 1"),
    (["--effort", "huge=5"], "effort level must be one of"),
    (["--effort", "low=-1"], "budget must be an integer >= 0"),
    (["--max-n", "0"], "--max-n must be an integer >= 1"),
    (["--max-request-tokens", "0"], "--max-request-tokens must be an integer >= 1"),
    (["--engine", "gpu9"], "--engine must be one of"),
])
def test_cli_bad_options_exit_2_with_one_line(monkeypatch, args, needle):
    result, started = _cli(monkeypatch, *args)
    assert result.exit_code == 2 and needle in result.stderr and not started
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
