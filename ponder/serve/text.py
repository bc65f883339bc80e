"""From a sample's text to what a client sees: its thinking (``reasoning``) and its answer
(``content``), special tokens removed, the answer cut at the client's stop strings.

The same functions shape the streamed deltas and the final message, so a streaming client ends
up with exactly the text a non-streaming one gets.

    view = Display(tokenizer, family, stop=("\\n",))
    reasoning, content, cut = view.split(trace.text)
"""

from __future__ import annotations

from typing import Any

from ponder.prompts import ModelFamily
from ponder.types import Solution, Trace

__all__ = ["Display", "chosen_trace"]


class Display:
    """How one model's completions are split and cleaned for clients.

    Args:
        tokenizer: the engine's tokenizer (its special tokens, e.g. ``</s>``, are removed).
        family: the model family (its thinking delimiters mark where the answer starts).
        stop: the client's stop strings; the answer ends before the first one.
    """

    def __init__(self, tokenizer: Any, family: ModelFamily, stop: tuple[str, ...] = ()) -> None:
        self.family, self.stop = family, stop
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
        is not part of the reasoning.
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
        content, cut = self.cut(content)
        return reasoning, content, cut

    def completion_text(self, text: str, include_reasoning: bool = True) -> str:
        """What ``/v1/completions`` returns: the thinking with its delimiters, then the (cut) answer."""
        text = self.clean(text)
        _, content, _ = self.split(text)
        te = self.family.think_end
        thinking = text[: text.find(te) + len(te)] if te in text else text
        return (thinking if include_reasoning else "") + content

    def cut(self, content: str) -> tuple[str, bool]:
        """``content`` up to the first stop string (excluded), and whether one was found."""
        hits = [i for i in (content.find(s) for s in self.stop) if i >= 0]
        return (content[: min(hits)], True) if hits else (content, False)

    def settled(self, text: str) -> str:
        """The part of a still-growing sample text that can be sent now.

        Held back: an end-of-thinking delimiter at the very end (budget forcing may strip it and
        append "Wait"), and any tail that could be the start of that delimiter or of a stop string.
        """
        text = self.clean(text)
        te = self.family.think_end
        if text.endswith(te):
            return text[: -len(te)]
        hold = 0
        for needle in (te, *self.stop):
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
