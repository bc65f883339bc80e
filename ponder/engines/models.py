"""Where models come from: the embedded tiny reasoner (the default everywhere) and local paths.

Every engine resolves its ``model`` argument here, so a missing local folder fails the same way,
with one clear error, whichever engine is asked for it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY_REASONER", "TINY_REASONER_VERBOSE", "TINY_REASONER_HARMLESS", "EMBEDDED", "resolve_model"]

TINY_REASONER = str(Path(__file__).resolve().parents[1] / "assets" / "tiny-reasoner")
"""Path of the embedded tiny reasoner (the default model everywhere)."""

TINY_REASONER_VERBOSE = str(Path(__file__).resolve().parents[1] / "assets" / "tiny-reasoner-verbose")
"""The same recipe, but its checks after the first answer always restate it (harmless overthinking)."""

TINY_REASONER_HARMLESS = str(Path(__file__).resolve().parents[1] / "assets" / "tiny-reasoner-harmless")
"""The same recipe, but its checks after the first answer never restate it: they cannot change it."""

EMBEDDED = {"tiny": TINY_REASONER, "tiny-reasoner": TINY_REASONER, "tiny-reasoner-verbose": TINY_REASONER_VERBOSE,
            "tiny-reasoner-harmless": TINY_REASONER_HARMLESS}
"""The embedded models by name."""


def resolve_model(model: str | None) -> str:
    """The default model when none is given; a clear error for a missing local path."""
    if model is None:
        return TINY_REASONER
    if model in EMBEDDED:
        return EMBEDDED[model]
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or path.exists()
    if looks_local and not (path / "config.json").exists():
        raise FileNotFoundError(f"model directory {model!r} has no config.json (expected a Hugging Face model folder)")
    return str(path) if looks_local else model
