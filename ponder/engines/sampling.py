"""Token sampling shared by the in-process engines: greedy, temperature, top-k, top-p, logprobs.

Each row samples with its own `torch.Generator`, so a seeded request draws the same tokens
whatever else shares its batch.
"""

from __future__ import annotations

from typing import Any, Literal

from ponder.types import SamplingParams

__all__ = ["sample_rows"]


def _filter(logits: Any, top_k: int, top_p: float) -> Any:
    import torch

    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, -1)
        # drop a token once the mass before it already reaches top_p (the top token always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


def sample_rows(
    logits: Any, params: list[SamplingParams], generators: list[Any], logprobs_mode: Literal["raw", "processed"] = "raw"
) -> tuple[list[int], list[float], list[dict[int, float] | None]]:
    """Sample one token per row.

    Returns:
        (token ids, log-probability of each chosen token, top-k log-probabilities per row or None).
    """
    import torch

    raw = torch.log_softmax(logits, dim=-1)
    tokens, lps, tops = [], [], []
    for i, p in enumerate(params):
        if p.temperature == 0:
            token = int(torch.argmax(logits[i]))
            source = raw[i]
        else:
            scaled = logits[i] / p.temperature
            probs = torch.softmax(_filter(scaled, p.top_k, p.top_p), -1)
            token = int(torch.multinomial(probs, 1, generator=generators[i]))
            source = raw[i] if logprobs_mode == "raw" else torch.log_softmax(scaled, -1)
        tokens.append(token)
        lps.append(float(source[token]))
        if p.logprobs:
            values, ids = torch.topk(source, min(p.logprobs, source.shape[-1]))
            tops.append(dict(zip(ids.tolist(), values.tolist())))
        else:
            tops.append(None)
    return tokens, lps, tops
