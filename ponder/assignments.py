"""``KEY=VALUE`` settings, read the same way everywhere: ``ponder solve -o``, ``ponder eval -o``,
``--sweep``, and ``ponder train`` recipe overrides (stdlib only).

    parse_value("8"), parse_value("0.6"), parse_value("true"), parse_value("ffs")   # 8, 0.6, True, "ffs"
    parse_assignments(["n=8", "max-thinking-tokens=64"])   # {"n": 8, "max_thinking_tokens": 64}
"""

from __future__ import annotations

import json
from typing import Any, Iterable

__all__ = ["parse_value", "parse_assignments"]


def parse_value(text: str) -> Any:
    """A command-line value as JSON when it is one (8, 0.6, true, null), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(items: Iterable[str], what: str = "--option") -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> ``{key: value}``; dashes in keys become underscores.

    Raises:
        ValueError: an item without ``=`` or without a key, naming ``what`` it was given as.
    """
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{what} must look like KEY=VALUE (got {item!r})")
        values[key] = parse_value(raw)
    return values
