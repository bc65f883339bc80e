"""User text as literal tokens: a ``</think>`` typed in a problem must not become the model's ``</think>``.

A tokenizer matches its *added* tokens (``</s>``, ``<|im_end|>``, and on Qwen3 or the tiny reasoner
also ``<think>``/``</think>``, which are added but not "special") anywhere in the text it encodes,
before its model sees the text. Encoding a chat-templated prompt as one string therefore lets a
user forge control tokens: ``split_special_tokens=True`` does not help for the non-special ones.
`encode_literal` cuts user text inside every added-token string it contains and encodes the
pieces separately, so each such string comes out as ordinary text tokens (it decodes back to the
same text); `render_pieces` applies the chat template around placeholders so that only the
template's own text is encoded with its control tokens recognised.

    from ponder.prompts.literal import encode_literal
    ids = encode_literal(tokenizer, "a </think> b")   # no id of </think> in ids
"""

from __future__ import annotations

import uuid
import weakref
from typing import Any

__all__ = ["added_tokens", "encode_literal", "render_pieces"]

_ADDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def added_tokens(tokenizer: Any) -> tuple[tuple[str, ...], frozenset[int]]:
    """The strings a tokenizer matches as whole added tokens, and their ids (cached per tokenizer)."""
    try:
        return _ADDED[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab: dict[str, int] = {}
    get = getattr(tokenizer, "get_added_vocab", None)
    if get is not None:
        vocab.update(get())
    for token in getattr(tokenizer, "all_special_tokens", None) or []:
        if token not in vocab and hasattr(tokenizer, "convert_tokens_to_ids"):
            vocab[token] = tokenizer.convert_tokens_to_ids(token)
    strings = tuple(sorted((s for s in vocab if len(s) > 1), key=len, reverse=True))
    found = (strings, frozenset(int(i) for i in vocab.values() if i is not None))
    try:
        _ADDED[tokenizer] = found
    except TypeError:  # not weak-referenceable: no cache
        pass
    return found


def _fragments(text: str, strings: tuple[str, ...]) -> list[str]:
    """``text`` cut after the first character of every occurrence of ``strings``, so that no
    fragment contains one (a cut can expose another string: repeat until none is left)."""
    pieces, done = [text], False
    while not done:
        done = True
        out: list[str] = []
        for piece in pieces:
            cuts = sorted({at + 1 for s in strings if s in piece for at in _find_all(piece, s)})
            if cuts:
                done = False
                out.extend(piece[a:b] for a, b in zip([0, *cuts], [*cuts, len(piece)]) if a < b)
            else:
                out.append(piece)
        pieces = out
    return pieces


def _find_all(text: str, sub: str) -> list[int]:
    found, at = [], text.find(sub)
    while at >= 0:
        found.append(at)
        at = text.find(sub, at + 1)
    return found


def encode_literal(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with every added-token string in it encoded as plain text.

    Text without such strings is encoded in one piece, exactly as ``encode`` would. A fragment
    whose ids still hold an added token (a tokenizer that normalises before matching) is
    encoded character by character.
    """
    if not text:
        return []
    strings, ids = added_tokens(tokenizer)
    out: list[int] = []
    for piece in _fragments(text, strings) if any(s in text for s in strings) else [text]:
        encoded = list(tokenizer.encode(piece, add_special_tokens=False))
        if ids.intersection(encoded) and len(piece) > 1:
            encoded = [t for ch in piece for t in tokenizer.encode(ch, add_special_tokens=False)]
        out.extend(encoded)
    return out


def render_pieces(tokenizer: Any, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
    """The chat template applied to ``messages`` (with the generation prompt), as token ids in which
    only the template's text may hold control tokens; every message's content is `encode_literal`-ed.

    The template is rendered around unique placeholders. A template that trims the content (the
    only change templates make to user text) is honoured by comparing against a real rendering.
    """
    slots = [f"PONDERSLOT{uuid.uuid4().hex}" for _ in messages]
    templated = [dict(m, content=slot) for m, slot in zip(messages, slots)]
    text = tokenizer.apply_chat_template(templated, add_generation_prompt=True, tokenize=False, **kwargs)
    real = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **kwargs)
    contents = [m["content"] for m in messages]
    if _fill(text, slots, contents) != real and _fill(text, slots, [c.strip() for c in contents]) == real:
        contents = [c.strip() for c in contents]
    ids: list[int] = []
    rest = text
    for slot, content in zip(slots, contents):
        before, found, rest_after = rest.partition(slot)
        if not found:  # a template that drops this message (e.g. no system role)
            continue
        ids.extend(tokenizer.encode(before, add_special_tokens=False) if before else [])
        ids.extend(encode_literal(tokenizer, content))
        rest = rest_after
    ids.extend(tokenizer.encode(rest, add_special_tokens=False) if rest else [])
    return ids


def _fill(text: str, slots: list[str], contents: list[str]) -> str:
    for slot, content in zip(slots, contents):
        text = text.replace(slot, content)
    return text
