"""Model family detection from the tokenizer itself: its added tokens and its chat template.

A local checkpoint (``/models/my-ft``) says nothing about its family in its name, but its tokenizer
does: the thinking delimiters it added as tokens and the turn markers its chat template writes.
`detect_family` reads those and names a key of ``ponder.prompts.FAMILIES``, or None when it finds
no thinking delimiters. The rules, first match wins:

- ``tiny``: the embedded tiny reasoner's signature (``\\boxed{`` added as a token, a
  ``<|assistant|>`` template, ``</think>``);
- ``deepseek-r1``: DeepSeek's fullwidth-bar turn marker ``<｜Assistant｜>`` and ``</think>``
  (R1 and its distills, whose tokenizers may also keep Qwen's ``<|im_start|>``);
- ``s1``: a template that opens thinking with ``<|im_start|>think``;
- ``phi4-reasoning``: ``</think>`` with a ``<|im_start|>``/``<|im_sep|>`` template;
- ``qwen3``: ``</think>`` with a ``<|im_start|>`` template (Qwen3, QwQ);
- ``deepseek-r1``: any other tokenizer with ``</think>`` (the plain ``<think>...</think>`` convention).

    from ponder.prompts.detect import detect_family
    detect_family(AutoTokenizer.from_pretrained("/models/my-ft"))   # 'qwen3', or None

No torch or transformers import: any object with ``get_added_vocab`` or ``added_tokens_decoder``
and ``chat_template`` works; anything else reads as empty.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["detect_family", "added_tokens", "template_text", "RULES"]

THINK_END = "</think>"
R1_ASSISTANT = "<\uff5cAssistant\uff5c>"  # <｜Assistant｜>, fullwidth vertical bars (U+FF5C)
CHATML = "<|im_start|>"


def added_tokens(tokenizer: Any) -> frozenset[str]:
    """The strings of the tokenizer's added tokens (empty when it has none or is not a HF tokenizer)."""
    try:
        return frozenset(tokenizer.get_added_vocab())
    except Exception:  # noqa: BLE001 - a stub or foreign tokenizer: no signal
        decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
        return frozenset(str(getattr(t, "content", t)) for t in decoder.values())


def template_text(tokenizer: Any) -> str:
    """Every chat template of the tokenizer as one string ('' without one).

    A template is a string, or (several named templates) a dict or a list of
    ``{"name", "template"}`` entries."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        return "\n".join(str(t) for t in template.values())
    if isinstance(template, (list, tuple)):
        return "\n".join(str(t.get("template", "")) if isinstance(t, dict) else str(t) for t in template)
    return template if isinstance(template, str) else ""


def _thinks(added: frozenset[str], template: str) -> bool:
    """Whether the tokenizer knows an end-of-thinking delimiter."""
    return THINK_END in added or THINK_END in template


def _tiny(added: frozenset[str], template: str) -> bool:
    return "\\boxed{" in added and "<|assistant|>" in template and _thinks(added, template)


def _r1(added: frozenset[str], template: str) -> bool:
    return (R1_ASSISTANT in added or R1_ASSISTANT in template) and _thinks(added, template)


def _s1(added: frozenset[str], template: str) -> bool:
    return CHATML + "think" in template


def _phi4(added: frozenset[str], template: str) -> bool:
    return "<|im_sep|>" in template and _thinks(added, template)


def _qwen3(added: frozenset[str], template: str) -> bool:
    return CHATML in template and _thinks(added, template)


RULES: tuple[tuple[str, Callable[[frozenset[str], str], bool]], ...] = (
    ("tiny", _tiny), ("deepseek-r1", _r1), ("s1", _s1), ("phi4-reasoning", _phi4), ("qwen3", _qwen3),
    ("deepseek-r1", _thinks),
)
"""(family, test on (added tokens, template text)) in order; the first test that passes names the family."""


def detect_family(tokenizer: Any) -> str | None:
    """The family key the tokenizer's added tokens and chat template point to; None: no thinking
    delimiters found (or no tokenizer)."""
    if tokenizer is None:
        return None
    added, template = added_tokens(tokenizer), template_text(tokenizer)
    return next((family for family, test in RULES if test(added, template)), None)
