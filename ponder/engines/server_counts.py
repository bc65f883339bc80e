"""Engine-side counts of an OpenAI-compatible server, read from its Prometheus ``/metrics`` page.

vLLM always serves ``/metrics``; SGLang does with ``--enable-metrics``. Both count the tokens their
engine generated and the requests it holds, which is what the openai engine reports as its
`EngineStats` (instead of what the client happened to receive):

    counts = parse_metrics(httpx.get("http://127.0.0.1:8000/metrics").text)
    counts.server, counts.generated, counts.running + counts.waiting

Counters of every series of a name are summed (vLLM labels one series per data-parallel engine);
SGLang repeats each figure per tensor-parallel rank, so only rank 0 is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SERVER_METRICS", "ServerCounts", "parse_metrics", "metrics_url", "server_root"]

SERVER_METRICS: dict[str, dict[str, str]] = {
    "vllm": {"generated": "vllm:generation_tokens_total", "running": "vllm:num_requests_running",
             "waiting": "vllm:num_requests_waiting"},
    "sglang": {"generated": "sglang:generation_tokens_total", "running": "sglang:num_running_reqs",
               "waiting": "sglang:num_queue_reqs"},
}
"""Server kind -> the Prometheus names of: tokens generated (counter), requests running and
waiting (gauges)."""

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_RANK = re.compile(r'tp_rank="(\d+)"')


@dataclass(frozen=True)
class ServerCounts:
    """One reading of a server's own counters."""

    server: str
    """``vllm`` or ``sglang``."""
    generated: int
    """Tokens its engine generated since it started (vLLM: the tokens its front-end processed)."""
    running: int
    waiting: int

    @property
    def held(self) -> int:
        """Requests the engine holds (running or waiting)."""
        return self.running + self.waiting


def server_root(base_url: str) -> str:
    """``http://host:port/v1`` (or without ``/v1``) -> ``http://host:port``."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def metrics_url(base_url: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port/metrics``."""
    return server_root(base_url) + "/metrics"


def parse_metrics(text: str) -> ServerCounts | None:
    """The counts in a Prometheus text page, or None when it has none of a known server's."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        name, labels, value = m.groups()
        rank = _RANK.search(labels or "")
        if rank is not None and rank.group(1) != "0":
            continue
        try:
            values[name] = values.get(name, 0.0) + float(value)
        except ValueError:
            continue
    for server, names in SERVER_METRICS.items():
        if names["generated"] in values:
            get = lambda key: int(round(values.get(names[key], 0.0)))  # noqa: E731
            return ServerCounts(server, get("generated"), get("running"), get("waiting"))
    return None
