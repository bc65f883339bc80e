"""Remote engines dying: an OpenAI-compatible server (its server is the engine) and a vLLM engine
inside a Ray pool actor. Each says so in one line (`EngineError`); the pool moves the requests of
an actor whose engine died to the live ones, and raises once none is left. In-process engines
dying: test_engine_death.py.

    .venv/bin/python -m pytest tests/test_remote_engine_death.py -q
"""

from __future__ import annotations

import os
import time
from contextlib import aclosing

import pytest
from typer.testing import CliRunner

from ponder.cli import app
from ponder.engines.base import EngineError


# ---------------------------------------------------------------- the openai engine: its server is the engine

async def test_an_openai_engine_without_its_server_cannot_start():
    from ponder.engines import open_engine
    from ponder.engines.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(EngineError) as err:
        await open_engine("openai", base_url=url)
    assert not err.value.started and str(err.value).startswith("openai engine could not start (model ")
    assert f"cannot reach the server at {url}/models" in str(err.value) and "\n" not in str(err.value)


def test_eval_on_an_openai_server_that_is_not_there_is_one_line_and_status_2(tmp_path):
    from ponder.engines.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    result = CliRunner().invoke(app, ["eval", "--engine", "openai", "--base-url", url, "--limit", "2",
                                      "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "openai engine could not start" in result.output and f"cannot reach the server at {url}/models" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run" / "results.jsonl").exists()


class _Toy:
    """A stdlib completions server for the client's edge cases: 401 for any key, or a stream that
    breaks off after one token (the real server's death is test_an_openai_server_killed_mid_stream)."""

    def __init__(self, mode: str) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if mode == "key":  # vLLM's answer to a wrong key on every /v1 route
                    return self._send(401, b'{"error": "Unauthorized"}')
                self._send(200, b'{"data": [{"id": "m"}]}')

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", "100000")  # promises more than it sends
                self.end_headers()
                self.wfile.write(b'data: {"choices": [{"token_ids": [5], "finish_reason": null}]}\n\n')
                self.wfile.flush()
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_an_openai_server_that_refuses_the_key_cannot_start():
    from ponder.engines import open_engine

    toy = _Toy("key")
    try:
        with pytest.raises(EngineError, match=r"^openai engine could not start .*answered 401: the server refused "
                                              r"the API key"):
            await open_engine("openai", base_url=toy.url, served_model="m", api_key="wrong")
    finally:
        toy.close()


async def test_a_stream_broken_off_by_a_server_that_still_answers_fails_only_its_request():
    from ponder.engines import open_engine
    from ponder.engines.base import complete
    from ponder.types import SamplingParams

    toy = _Toy("break")
    engine = await open_engine("openai", base_url=toy.url, served_model="m", metrics=False)
    try:
        for _ in range(2):  # the engine is not dead: the next request goes out (and breaks the same way)
            with pytest.raises(ConnectionError, match=r"/completions broke off request ponder-\d+: ") as err:
                await complete(engine, [1, 2, 3], SamplingParams(max_tokens=8))
            assert not isinstance(err.value, EngineError)
        assert engine.stats.requests == 2 and engine.unfinished() == 0
    finally:
        await engine.aclose()
        toy.close()


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_an_openai_server_killed_mid_stream_is_the_engines_death():
    """vLLM's server SIGKILLed (its engine core too) while a request streams: that request and every
    later one raise the same one-line EngineError, at once; nothing hangs."""
    import psutil

    from ponder.engines import open_engine
    from ponder.engines.server import VLLMServer
    from ponder.types import SamplingParams

    with VLLMServer() as server:
        engine = await open_engine("openai", base_url=server.base_url)
        try:
            ids = engine.tokenizer.encode("Compute 012+034", add_special_tokens=False)
            got = 0
            with pytest.raises(EngineError) as err:
                async with aclosing(engine.stream(ids, SamplingParams(max_tokens=400, ignore_eos=True))) as chunks:
                    async for chunk in chunks:
                        got += len(chunk.token_ids)
                        if got >= 4 and server.proc.poll() is None:
                            family = [server.proc.pid, *(p.pid for p in psutil.Process(server.proc.pid).children(recursive=True))]
                            for pid in family:
                                try:
                                    os.kill(pid, 9)
                                except ProcessLookupError:
                                    pass
            died = err.value
            assert died.started and str(died).startswith("openai engine died (model ")
            assert f"the server at {server.base_url}/completions went away: " in str(died) and "\n" not in str(died)
            start = time.monotonic()
            with pytest.raises(EngineError) as again:
                async with aclosing(engine.stream(ids, SamplingParams(max_tokens=8))) as chunks:
                    async for _ in chunks:
                        pass
            assert str(again.value) == str(died) and time.monotonic() - start < 1.0
        finally:
            await engine.aclose()


# ---------------------------------------------------------------- a vLLM engine dying inside a Ray actor

def _engine_core(actor_pid: int) -> int:
    """The pid of the vLLM engine-core process a pool actor started."""
    import psutil

    for _ in range(100):  # the core sets its process title a moment after it starts
        cores = [p.pid for p in psutil.Process(actor_pid).children(recursive=True) if "EngineCore" in p.name()]
        if cores:
            return cores[0]
        time.sleep(0.1)
    raise AssertionError(f"no engine-core process under actor pid {actor_pid}")


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_vllm_engine_dying_in_a_ray_actor_moves_its_requests_and_the_last_is_the_pools_death():
    """Two vLLM actors; one's engine core is SIGKILLed while both stream: its requests continue on
    the other actor to their full length, and new ones go there. Once the second core dies too, the
    next request raises one EngineError naming the pool and each actor's cause."""
    import asyncio

    from ponder.engines import open_engine
    from ponder.engines.base import complete
    from ponder.types import SamplingParams

    pool = await open_engine("vllm", ray={"actors": 2, "num_cpus": 0.25}, max_model_len=512)
    try:
        cores = [_engine_core(info["pid"]) for info in pool.infos]
        ids = pool.tokenizer.encode("Compute 012+034", add_special_tokens=False)
        params = SamplingParams(max_tokens=120, temperature=0.0, ignore_eos=True)
        tasks = [asyncio.create_task(complete(pool, ids, params, request_id=f"death-{i}")) for i in range(4)]
        for _ in range(600):  # both actors hold requests and have decoded some of them
            if all(a.requests for a in pool._actors) and pool.stats.generated_tokens >= 8:
                break
            await asyncio.sleep(0.05)
        os.kill(cores[0], 9)
        done = await asyncio.wait_for(asyncio.gather(*tasks), 300)
        assert all(c.finish_reason == "length" and len(c.token_ids) == 120 for c in done)
        moved = pool.resubmissions
        assert moved and all(r.dead_actor == 0 and r.new_actor == 1 for r in moved), moved
        assert all("vllm engine died" in r.error and "SIGKILL" in r.error for r in moved), moved
        after = await complete(pool, ids, SamplingParams(max_tokens=8), request_id="death-after")
        assert after.finish_reason is not None and pool.routed["death-after"] == 1
        os.kill(cores[1], 9)
        with pytest.raises(EngineError) as err:
            await asyncio.wait_for(complete(pool, ids, params, request_id="death-last"), 120)
        said = str(err.value)
        assert said.startswith("ray engine died (model ") and "no live actor left (actor 0: EngineError: vllm engine died" in said
        assert "actor 1: EngineError: vllm engine died" in said and "\n" not in said
    finally:
        await pool.aclose()


async def test_the_pool_reads_a_whole_batch_before_an_engine_death_and_fails_a_request_that_met_two():
    """The pool's side of an actor's engine death, on its own bookkeeping (no Ray call succeeds
    here: the actor handle is a stand-in, so the kill is a no-op). In one pushed batch: a request
    that finished keeps its finish, one with tokens gets them and then moves (`Died`), and one whose
    second engine this is gets the EngineError instead of taking it to the next actor."""
    import asyncio

    from ponder.engines.base import EngineStats
    from ponder.engines.ray.pool import RayPool
    from ponder.engines.ray.state import Actor, Died, Request
    from ponder.types import Chunk, SamplingParams

    pool = RayPool.__new__(RayPool)  # the bookkeeping only
    pool.max_restarts, pool._stats = 0, EngineStats()
    actor = Actor(0, handle=None)
    pool._actors = [actor]
    reqs = {rid: Request(rid, [1], SamplingParams(max_tokens=8), asyncio.Queue()) for rid in ("done", "moves", "twice")}
    reqs["twice"].engine_deaths = 1
    actor.requests.update(reqs)
    death = EngineError("vllm", "m", "the engine-core process ended by signal SIGKILL", started=True)
    pool._dispatch(actor, {"done": (Chunk((5,), finish_reason="stop"), None, 5),
                           "moves": (Chunk((7,)), death, 3), "twice": (None, death, 2)})
    got = {rid: [r.queue.get_nowait() for _ in range(r.queue.qsize())] for rid, r in reqs.items()}
    assert got["done"] == [Chunk((5,), finish_reason="stop")]
    assert got["moves"][0] == Chunk((7,)) and isinstance(got["moves"][1], Died) and len(got["moves"]) == 2
    assert got["twice"] == [death] and reqs["twice"].engine_deaths == 2
    assert not actor.alive and actor.error.startswith("EngineError: vllm engine died") and not actor.requests
    assert pool._stats.generated_tokens == 10
