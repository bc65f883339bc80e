"""Log-probability checks shared by the RL-on-vLLM tests: what the trainer's model gives a sequence,
and the largest difference between two lists of log-probabilities."""

from __future__ import annotations


def trainer_logprobs(model, ids: list[int]) -> list[float]:
    """Log-probability of each next id of ``ids`` under ``model`` (eval mode, no gradient)."""
    import torch

    from ponder.rl.rollout import eval_mode

    with torch.no_grad(), eval_mode(model):
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return [logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]


def gap(a: list[float], b: list[float]) -> float:
    """The largest absolute difference of two equally long lists."""
    return max(abs(x - y) for x, y in zip(a, b, strict=True))
