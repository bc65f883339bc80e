"""Chat rendering and the thinking conventions of each model family.

A `ModelFamily` names the strings a controller needs to steer a reasoning model: where thinking
starts and ends, the cue that makes it state an answer, the word that extends thinking (s1's
"Wait"), and S-GRPO's exit prompt. `family_for(tokenizer, name)` picks one, reading the tokenizer's
added tokens and chat template first (detect.py), the model name second; `render` turns a problem
into prompt token ids through the tokenizer's own chat template.

User text (the problem, a system prompt) stays text: a ``</think>`` or ``<|im_end|>`` typed in a
problem is encoded as ordinary characters, never as the model's control token (literal.py). A
family may also bring problems into the format its model was trained on: the tiny reasoner's
`format_problem` zero-pads sums (``Compute 12+34`` -> ``Compute 012+034``, see arith.py) and
returns a one-line warning for prompts outside its format.

    from ponder.prompts import family_for, render
    fam = family_for(tokenizer, "Qwen/Qwen3-8B")
    ids = render(tokenizer, "Compute 1+2", fam)
    prompt, warning = FAMILIES["tiny"].format_problem("Compute 4721+389")   # warning: 4 digits
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from ponder.prompts.arith import format_sum
from ponder.prompts.detect import detect_family
from ponder.prompts.literal import encode_literal, render_pieces

__all__ = ["ModelFamily", "FAMILIES", "FAMILY_ENV", "family_for", "check_family", "detect_family", "render", "split_thinking",
           "encode_literal"]

FAMILY_ENV = "PONDER_FAMILY"
"""Environment variable naming the model family for every model of the process (``--family`` sets it);
an explicit ``family`` argument still wins."""

log = logging.getLogger("ponder.prompts")


@dataclass(frozen=True)
class ModelFamily:
    """The thinking conventions of one family of reasoning models."""

    name: str
    """Registry key (``tiny``, ``qwen3``, ``deepseek-r1``, ``s1``, ...)."""
    think_start: str
    """Opens the thinking section."""
    think_end: str
    """Closes the thinking section; generation is stopped on it to control thinking length."""
    answer_cue: str
    """Appended after ``think_end`` when an answer is forced, so the model states it at once."""
    wait: str = "Wait"
    """Appended instead of ``think_end`` to make the model keep thinking (s1 budget forcing)."""
    exit_prompt: str = "Time is limited, stop thinking and start answering.\n"
    """S-GRPO's early-exit sentence, inserted before ``think_end`` at each exit position."""
    chat_kwargs: tuple[tuple[str, Any], ...] = ()
    """Extra keyword arguments for ``apply_chat_template`` (e.g. Qwen3's ``enable_thinking``)."""
    problem_format: Callable[[str], tuple[str, str | None]] | None = None
    """Brings a problem into the model's trained input format: ``(prompt, warning or None)``;
    None: prompts are used as given."""

    def format_problem(self, prompt: str) -> tuple[str, str | None]:
        """``(the prompt as the model should see it, a one-line warning when it is outside the
        model's format, else None)``. `render` applies the first part; a CLI prints the second."""
        return self.problem_format(prompt) if self.problem_format else (prompt, None)

    def force_suffix(self, with_exit_prompt: bool = False) -> str:
        """The text that ends thinking now and cues the answer."""
        return (self.exit_prompt if with_exit_prompt else "") + self.think_end + self.answer_cue


FAMILIES: dict[str, ModelFamily] = {
    # The embedded tiny reasoner writes `</think>\boxed{N}`; the cue is the boxed opener itself.
    # Trained on thinking cut at arbitrary points and closed with `</think>\boxed{N}`: an empty
    # exit prompt keeps S-GRPO's exits in distribution for it.
    # It was trained only on zero-padded sums ("Compute 012+034"): its prompts are normalised to that.
    "tiny": ModelFamily("tiny", "<think>", "</think>", "\\boxed{", wait="wait, ", exit_prompt="",
                        problem_format=format_sum),
    "qwen3": ModelFamily(
        "qwen3", "<think>", "</think>", "\n\n**Final Answer**\n\\boxed{", chat_kwargs=(("enable_thinking", True),)
    ),
    "deepseek-r1": ModelFamily("deepseek-r1", "<think>", "</think>", "\n\n**Final Answer**\n\\boxed{"),
    "phi4-reasoning": ModelFamily("phi4-reasoning", "<think>", "</think>", "\n\n**Final Answer**\n\\boxed{"),
    # s1 thinks after "<|im_start|>think" and answers after "<|im_start|>answer" (arXiv 2501.19393).
    "s1": ModelFamily("s1", "<|im_start|>think", "<|im_start|>answer", "\nFinal Answer:"),
}


def family_for(tokenizer: Any = None, name: str | None = None, family: str | None = None) -> ModelFamily:
    """Pick the family: the explicit ``family`` (``--family``: the engine carries it), else
    ``$PONDER_FAMILY`` (for programs that open engines themselves), else
    the tiny reasoner by name, else detected from the tokenizer's added tokens and chat template
    (`detect_family`), else from the model name, else ``deepseek-r1`` with a one-time warning.

    Raises:
        ValueError: an explicit ``family`` (or ``$PONDER_FAMILY``) that is not registered.
    """
    if family:
        return _registered(family, "model family")
    if os.environ.get(FAMILY_ENV, "").strip():
        return _registered(os.environ[FAMILY_ENV].strip(), f"model family in ${FAMILY_ENV}")
    label = name or getattr(tokenizer, "name_or_path", "") or ""
    if "tiny-reasoner" in label.lower():  # its tokenizer's <think> tokens alone could read as another family
        return FAMILIES["tiny"]
    key = detect_family(tokenizer) or _family_by_name(label)
    if key is None:
        key = "deepseek-r1"
        _warn_once(tokenizer, label)
    return FAMILIES[key]


def check_family(family: str, what: str = "model family") -> str:
    """``family`` if it is registered, else the one-line ValueError naming the choices (the one
    check of a family name: ``--family``, `open_engine(family=...)`)."""
    return _registered(family, what).name


def _registered(family: str, what: str) -> ModelFamily:
    """The registered family of that name, else the one-line ValueError naming the choices."""
    if family not in FAMILIES:
        raise ValueError(f"unknown {what} {family!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[family]


_NAME_HINTS = (("qwen3", "qwen3"), ("qwq", "qwen3"), ("phi-4", "phi4-reasoning"), ("s1", "s1"),
               ("deepseek-r1", "deepseek-r1"), ("r1-distill", "deepseek-r1"))
"""(substring of the lower-cased model name, family): the fallback when the tokenizer says nothing."""


def _family_by_name(name: str) -> str | None:
    """The family a model name suggests, or None."""
    lowered = name.lower()
    return next((family for hint, family in _NAME_HINTS if hint in lowered), None)


_warned: set[str] = set()
"""Tokenizers (by model name, else object id) already warned about: the warning is said once each."""


def _warn_once(tokenizer: Any, label: str) -> None:
    """Say once per tokenizer that its family was assumed (only when there was a tokenizer to read)."""
    key = label or f"id:{id(tokenizer)}"
    if tokenizer is None or key in _warned:
        return
    _warned.add(key)
    log.warning("ponder: no thinking delimiters found in %s's tokenizer or chat template; assuming the "
                "deepseek-r1 family (<think>...</think>); pass --family or set %s to choose",
                label or "the model", FAMILY_ENV)


def render(tokenizer: Any, prompt: str, family: ModelFamily | None = None, system: str | None = None) -> list[int]:
    """Token ids of the chat-templated prompt, ready for generation.

    The prompt first goes through ``family.format_problem``. The template's own text is encoded
    with its control tokens (and without adding special tokens again: templates write their own
    BOS); ``prompt`` and ``system`` are encoded so that control-token strings in them stay text.
    """
    if family is not None:
        prompt = family.format_problem(prompt)[0]
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    kwargs = dict(family.chat_kwargs) if family else {}
    if getattr(tokenizer, "chat_template", None):
        return render_pieces(tokenizer, messages, **kwargs)
    return encode_literal(tokenizer, prompt)  # base models without a template: plain text prompt


def split_thinking(text: str, family: ModelFamily) -> tuple[str, str, bool]:
    """Split a completion into (thinking, answer part, whether thinking was closed).

    A completion that never closes its thinking is all thinking and has no answer part.
    """
    at = text.rfind(family.think_end)
    if at < 0:
        return text, "", False
    return text[:at], text[at + len(family.think_end):], True
