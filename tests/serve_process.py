"""A real ``ponder serve`` process on a free loopback port, for tests and benchmarks.

    with ServeProcess(["-c", "ffs", "-n", "4"]) as server:     # waits for /health
        client = openai.OpenAI(base_url=server.base_url, api_key="none")
        server.metrics()["ponder_engine_unfinished_requests"]

The process runs ``python -m ponder.cli serve`` with this checkout first on ``PYTHONPATH``, its
output goes to a log file, and it is stopped (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from ponder.engines.server import free_port, stop_process, wait_healthy

__all__ = ["ServeProcess", "free_port", "parse_metrics"]

ROOT = Path(__file__).resolve().parents[1]
"""The checkout whose ``ponder`` package the server runs."""


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name with labels: value} (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class ServeProcess:
    """``ponder serve`` in a subprocess.

    Args:
        args: more ``ponder serve`` arguments (engine, controller, limits, ``--api-key`` ...).
        port: TCP port on 127.0.0.1 (default: a free one).
        env: extra environment variables.
        startup_timeout_s: how long to wait for ``/health``.
    """

    def __init__(self, args: list[str] | tuple[str, ...] = (), port: int | None = None,
                 env: dict[str, str] | None = None, startup_timeout_s: float = 300.0) -> None:
        self.port = port or free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        self.args = [sys.executable, "-m", "ponder.cli", "serve", "--port", str(self.port), *args]
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [self.env.get("PYTHONPATH")])])
        self.startup_timeout_s = startup_timeout_s
        self.log_path = os.path.join(tempfile.gettempdir(), f"ponder-serve-{self.port}.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServeProcess:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        why = wait_healthy(self.proc, f"{self.root}/health", self.startup_timeout_s, interval_s=0.25)
        if why is None:
            return self
        if not why.startswith("exited"):
            self.stop()
            raise TimeoutError(f"ponder serve {why}: {self.log_tail()}")
        raise RuntimeError(f"ponder serve {why}: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.root}/metrics", timeout=10) as r:
            return parse_metrics(r.read().decode())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
