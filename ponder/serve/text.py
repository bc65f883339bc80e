"""From a sample's text to what a client sees: its thinking (``reasoning``) and its answer
(``content``), special tokens removed, the answer cut at the client's stop strings.

The same functions shape the streamed deltas and the final message, so a streaming client ends
up with exactly the text a non-streaming one gets.

    view = Display(tokenizer, family, stop=("\\n",))
    reasoning, content, cut = view.split(trace.text)

The split follows vLLM's reasoning parser for families vLLM serves with one (``VLLM_PARSERS``;
for ``qwen3``, vLLM 0.32's ``--reasoning-parser qwen3``, checked end to end by
tests/test_serve_qwen3.py), so ``ponder serve`` and ``vllm serve`` give a greedy request the same
``reasoning`` and ``content``:

- the thinking is everything before the first ``</think>``, without any ``<think>`` in it; the
  text around the delimiters is kept as generated (``<think>\\nplan\\n</think>\\n\\nanswer``
  gives reasoning ``"\\nplan\\n"`` and content ``"\\n\\nanswer"``: vLLM strips no newline);
- a later ``</think>`` in the answer is dropped (vLLM absorbs duplicates);
- thinking that never closed (a ``length`` cut) is all reasoning and the content is empty, which
  the response writes as ``null``, as vLLM does (shapes.py);
- special tokens (``<|im_end|>``, ...) are removed, as vLLM's parser drops them.

Where ponder differs from vLLM on purpose:

- ``chat_template_kwargs`` (``enable_thinking: false``) is not read: ponder renders the family's
  own template settings, with thinking on for ``qwen3``;
- ``<tool_call>`` is text (ponder serves no tools); for vLLM it also ends the thinking;
- streaming holds back a trailing ``</think>`` (budget forcing may replace it by "Wait") and sends
  whitespace-only answer text at once (vLLM waits for a non-space character); the concatenated
  deltas are the same text;
- other families (the tiny reasoner) split at the first ``</think>`` and keep later delimiters in
  the answer, and drop only a leading ``<think>``.
"""

from __future__ import annotations

from typing import Any

from ponder.prompts import ModelFamily
from ponder.types import Solution, Trace

__all__ = ["Display", "VLLM_PARSERS", "chosen_trace"]

VLLM_PARSERS = frozenset({"qwen3"})
"""Families whose split follows the vLLM reasoning parser of the same name (see the module docstring)."""


class Display:
    """How one model's completions are split and cleaned for clients.

    Args:
        tokenizer: the engine's tokenizer (its special tokens, e.g. ``</s>``, are removed).
        family: the model family (its thinking delimiters mark where the answer starts).
        stop: the client's stop strings; the answer ends before the first one.
    """

    def __init__(self, tokenizer: Any, family: ModelFamily, stop: tuple[str, ...] = ()) -> None:
        self.family, self.stop = family, stop
        self.vllm = family.name in VLLM_PARSERS
        """Split like vLLM's reasoning parser for this family."""
        keep = {family.think_start, family.think_end}
        self.specials = [s for s in getattr(tokenizer, "all_special_tokens", []) if s and s not in keep]

    def clean(self, text: str) -> str:
        for token in self.specials:
            if token in text:
                text = text.replace(token, "")
        return text

    def split(self, text: str) -> tuple[str, str, bool]:
        """(reasoning, content, whether a stop string cut the content) of a completion.

        The thinking ends at the first end-of-thinking delimiter; a completion that never closed
        its thinking is all reasoning and has no content. A leading start-of-thinking delimiter
        is not part of the reasoning; in the families of ``VLLM_PARSERS`` no start delimiter is,
        and a later end delimiter is not part of the content.
        """
        text = self.clean(text)
        fam = self.family
        at = text.find(fam.think_end)
        reasoning = text if at < 0 else text[:at]
        if reasoning.startswith(fam.think_start):
            reasoning = reasoning[len(fam.think_start):]
        elif fam.think_start.startswith(reasoning):  # the delimiter is still arriving
            reasoning = ""
        content = "" if at < 0 else text[at + len(fam.think_end):]
        if self.vllm:
            reasoning, content = reasoning.replace(fam.think_start, ""), content.replace(fam.think_end, "")
        content, cut = self.cut(content)
        return reasoning, content, cut

    def completion_text(self, text: str, include_reasoning: bool = True) -> str:
        """What ``/v1/completions`` returns: the thinking with its delimiters, then the (cut) answer,
        as generated (vLLM parses no reasoning there either)."""
        text = self.clean(text)
        te = self.family.think_end
        at = text.find(te)
        thinking = text if at < 0 else text[: at + len(te)]
        content = "" if at < 0 else self.cut(text[at + len(te):])[0]
        return (thinking if include_reasoning else "") + content

    def cut(self, content: str) -> tuple[str, bool]:
        """``content`` up to the first stop string (excluded), and whether one was found."""
        hits = [i for i in (content.find(s) for s in self.stop) if i >= 0]
        return (content[: min(hits)], True) if hits else (content, False)

    def settled(self, text: str) -> str:
        """The part of a still-growing sample text that can be sent now.

        Held back: an end-of-thinking delimiter at the very end (budget forcing may strip it and
        append "Wait"), and any tail that could be the start of that delimiter or of a stop string
        (or, in the families of ``VLLM_PARSERS``, of a start-of-thinking delimiter, which `split` drops).
        """
        text = self.clean(text)
        te = self.family.think_end
        if text.endswith(te):
            return text[: -len(te)]
        hold = 0
        starts = (self.family.think_start,) if self.vllm else ()
        for needle in (te, *starts, *self.stop):
            for k in range(min(len(needle) - 1, len(text)), 0, -1):
                if text.endswith(needle[:k]):
                    hold = max(hold, k)
                    break
        return text[: len(text) - hold]


def chosen_trace(solution: Solution) -> Trace | None:
    """The sample whose text answers the client: the controller's winner, else the first sample
    that was not aborted (a run without an answer still shows what its model wrote)."""
    winner = solution.info.get("winner")
    if isinstance(winner, int) and 0 <= winner < len(solution.traces):
        return solution.traces[winner]
    if solution.answer is not None:
        answered = [t for t in solution.traces if t.answer == solution.answer]
        if answered:
            return answered[0]
    alive = [t for t in solution.traces if not t.aborted]
    return (alive or solution.traces or [None])[0]
