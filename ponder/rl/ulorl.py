"""UloRL (arXiv 2507.19766) on TRL: segment rollouts carried across steps, and DMMPT.

Segment rollout: every training step decodes at most ``segment_tokens`` for each unfinished
sample, plus the samples of the step's new prompts. A sample that ends joins its group's finished
members; one that reaches the segment's end waits in the unfinished pool and continues next step
from its exact token prefix (prompt + everything it generated: nothing lost, repeated or
re-decoded); one that reaches ``max_tokens`` is truncated and scored 0. A group trains once all of
its samples are done; each step hands TRL a fixed number of complete groups (oldest first),
decoding further segments while too few are ready. With ``algo="sgrpo"`` a group's one full path
is the segmented sample, and its exits are cut once it ends.

Pseudo on-policy importance sampling: the tokens of older segments keep the sampler's logprobs in
the rollout, but the trainer's "old" log-probabilities are the current policy's (ratio 1 at the
first update; TRL's importance-sampling correction is switched off), as the paper adopts.

DMMPT (dynamic masking of well-mastered positive tokens): in a sample with positive reward whose
mean token entropy is below ``sigma``, tokens the policy predicts with p >= ``tau`` leave the
loss (``env_mask`` 0); the share of masked tokens is logged.

    rollout = SegmentRollout(tokenizer, golds, answer_kind="integer", algo="grpo", segment_tokens=100,
                             dmmpt=DMMPTConfig())
    GRPOTrainer(..., rollout_func=rollout, callbacks=[PoolCheckpoint(rollout)])
"""

from __future__ import annotations

import asyncio
import json
import random

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.prompts import render
from ponder.rl.rollout import (Rollout, TrlRows, callback_base, eval_mode, global_step, on_policy,
                               with_metrics)

__all__ = ["DMMPTConfig", "dmmpt_mask", "apply_dmmpt", "Sample", "decode_segment", "SegmentRollout",
           "PoolCheckpoint", "POOL_FILE"]

POOL_FILE = "ulorl_pools.json"
"""Name of the pool state saved in every checkpoint folder."""


@dataclass(frozen=True)
class DMMPTConfig:
    """Dynamic masking of well-mastered positive tokens."""

    tau: float = 0.99
    """Tokens predicted with probability >= tau are masked (in positive, low-entropy samples)."""
    sigma: float = 0.2
    """Mask only while the sample's mean token entropy (nats) is below sigma."""

    def __post_init__(self) -> None:
        if not 0 < self.tau <= 1 or self.sigma <= 0:
            raise ValueError(f"dmmpt: needs 0 < tau <= 1 and sigma > 0 (got tau={self.tau}, sigma={self.sigma})")


def dmmpt_mask(probs: list[float], entropies: list[float], reward: float, mask: list[int],
               config: DMMPTConfig) -> list[int]:
    """The loss mask after DMMPT for one sample (``probs``/``entropies`` per completion token).

    The mean entropy is taken over the tokens the policy generated (``mask`` 1); injected tokens
    stay masked either way.
    """
    generated = [e for e, m in zip(entropies, mask) if m]
    if reward <= 0 or not generated or sum(generated) / len(generated) >= config.sigma:
        return list(mask)
    return [0 if m and p >= config.tau else m for p, m in zip(probs, mask)]


def token_probs(model: Any, prompt_ids: list[list[int]], completion_ids: list[list[int]], temperature: float,
                batch: int = 16, max_logits: int = 1 << 25) -> list[tuple[list[float], list[float]]]:
    """Per completion token: the policy's probability of that token and its entropy, at ``temperature``.

    Memory is bounded for large vocabularies: only the logits of completion positions are made
    (``logits_to_keep``, where the model takes it), a forward pass batches at most ``batch`` rows
    and only as many as keep rows x positions x vocabulary within ``max_logits`` (one row at
    least: Qwen3's 151,936-token vocabulary makes one 220-token row 33M logits), and the softmax
    runs over chunks of at most ``max_logits`` logits. Without that, 16 rows of 250 tokens would
    need a 2.4 GB logits tensor and several float32 copies of it.
    """
    import inspect

    import torch

    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    vocab = max(int(head.weight.shape[0]), 1) if head is not None else int(model.config.vocab_size)
    keeps = "logits_to_keep" in inspect.signature(model.forward).parameters
    out: list[tuple[list[float], list[float]]] = [([], [])] * len(prompt_ids)
    todo = [i for i, c in enumerate(completion_ids) if c]
    with torch.no_grad():
        while todo:
            rows = todo[:1]  # grow the forward pass while its logits stay within max_logits
            while len(rows) < min(batch, len(todo)):
                nxt = todo[:len(rows) + 1]
                width = max(len(prompt_ids[i]) + len(completion_ids[i]) for i in nxt)
                if len(nxt) * width * vocab > max_logits:
                    break
                rows = nxt
            todo = todo[len(rows):]
            seqs = [prompt_ids[i] + completion_ids[i] for i in rows]
            width = max(len(s) for s in seqs)
            first = min(len(prompt_ids[i]) for i in rows) - 1  # the first position that predicts a completion token
            ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=device)
            attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
            kwargs = {"logits_to_keep": width - first} if keeps else {}
            logits = model(input_ids=ids, attention_mask=attn, **kwargs).logits
            offset = first if keeps else 0  # logits[:, j] is position j + offset
            for k, i in enumerate(rows):
                p, c = prompt_ids[i], completion_ids[i]
                at = len(p) - 1 - offset  # position t predicts token t + 1
                chosen, entropy = [], []
                step = max(1, max_logits // vocab)  # positions per softmax chunk
                for lo in range(0, len(c), step):
                    hi = min(lo + step, len(c))
                    lp = torch.log_softmax(logits[k, at + lo:at + hi].float() / temperature, dim=-1)
                    picked = torch.tensor(c[lo:hi], device=device).unsqueeze(-1)
                    chosen += lp.gather(-1, picked).squeeze(-1).exp().tolist()
                    entropy += (-(lp.exp() * lp).sum(-1)).tolist()
                out[i] = (chosen, entropy)
            del logits
    return out


def apply_dmmpt(out: dict[str, list], model: Any, temperature: float, config: DMMPTConfig) -> float:
    """Rewrite ``out["env_mask"]`` in place with DMMPT; returns the share of generated tokens masked."""
    positive = [i for i, r in enumerate(out["ponder_reward"]) if r > 0]
    with eval_mode(model):
        stats = token_probs(model, [out["prompt_ids"][i] for i in positive],
                            [out["completion_ids"][i] for i in positive], temperature)
    before = sum(sum(m) for m in out["env_mask"])
    for i, (probs, entropies) in zip(positive, stats):
        out["env_mask"][i] = dmmpt_mask(probs, entropies, out["ponder_reward"][i], out["env_mask"][i], config)
    after = sum(sum(m) for m in out["env_mask"])
    return (before - after) / max(before, 1)


@dataclass
class Sample:
    """One sample of a group, possibly decoded over several steps."""

    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    seed: int = 0
    segments: int = 0
    finish: str | None = None
    """None while unfinished; ``stop`` (ended by itself) or ``length`` (truncated at max_tokens)."""
    prior: int = 0
    """Tokens it had when the current step began (decoded in earlier steps)."""
    first_step: int = -1
    """Training step of its first segment."""
    last_step: int = -1
    """Training step of its latest segment (> first_step: it was carried over)."""


async def decode_segment(engine: Any, prompt_ids: list[int], sample: Sample, segment_tokens: int, max_tokens: int,
                         temperature: float) -> None:
    """Decode at most ``segment_tokens`` more for ``sample``, continuing its exact token prefix."""
    from ponder.engines import complete
    from ponder.types import SamplingParams

    budget = min(segment_tokens, max_tokens - len(sample.tokens))
    # a new seed per segment: replaying the first segment's random stream would correlate the segments
    params = SamplingParams(max_tokens=budget, temperature=temperature, seed=sample.seed + 7919 * sample.segments,
                            logprobs=0)
    c = await complete(engine, prompt_ids + sample.tokens, params)
    sample.tokens += c.token_ids
    sample.logprobs += c.logprobs or [0.0] * len(c.token_ids)
    sample.segments += 1
    if c.finish_reason == "stop":
        sample.finish = "stop"
    elif len(sample.tokens) >= max_tokens:
        sample.finish = "length"


@dataclass
class _Group:
    prompt: str
    prompt_ids: list[int]
    samples: list[Sample]
    born: int
    rows: list[dict[str, Any]] | None = None
    """Set once scored: one TRL row per member (completion_ids, logprobs, env_mask, ponder_reward)."""
    exit_stats: dict[str, float] | None = None


@dataclass
class SegmentRollout(Rollout):
    """A TRL ``rollout_func`` with UloRL segment rollouts, for GRPO or S-GRPO groups.

    Args (beyond the tokenizer, golds, answer kind and family of every rollout):
        algo: ``grpo`` (G independent samples, reward 0/1) or ``sgrpo`` (one segmented full path,
            then m = G - 1 exits and decaying rewards).
        segment_tokens: most tokens decoded per sample per step (TRL's ``max_completion_length``
            is the global maximum).
        answer_tokens: most tokens of each S-GRPO forced answer.
        dmmpt: mask well-mastered positive tokens (None: off).
        extra_groups: groups kept in flight beyond one step's batch, drawn once from
            ``extra_prompts`` (the training prompts): without them every group of a step would
            have to finish in that step, and nothing could be carried over.
    """

    algo: Literal["grpo", "sgrpo"] = "grpo"
    segment_tokens: int = 128
    answer_tokens: int = 32
    dmmpt: DMMPTConfig | None = None
    extra_groups: int = 0
    extra_prompts: tuple[str, ...] = ()
    groups: dict[int, _Group] = field(default_factory=dict, init=False)
    next_gid: int = field(default=0, init=False)
    history: list[dict[str, float]] = field(default_factory=list, init=False)
    """What each step did (the logged ``ulorl/*`` values)."""
    lengths: list[int] = field(default_factory=list, init=False)
    """Length of every trained sample (S-GRPO: of the full path), for length distributions."""

    def __post_init__(self) -> None:
        if self.algo not in ("grpo", "sgrpo"):
            raise ValueError(f"ulorl: algo must be grpo or sgrpo (got {self.algo!r})")
        if not isinstance(self.extra_groups, int) or self.extra_groups < 0:
            raise ValueError(f"ulorl: extra_groups must be an integer >= 0 (got {self.extra_groups!r})")
        if not isinstance(self.segment_tokens, int) or self.segment_tokens < 1:
            raise ValueError(f"ulorl: segment_tokens must be an integer >= 1 (got {self.segment_tokens!r})")

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        args, fam, verifier, blocks, rendered = self.setup(prompts, trainer)
        g, step = args.num_generations, global_step(trainer, self.steps)
        for group in self.groups.values():
            for s in group.samples:
                s.prior = len(s.tokens)
        for i, (prompt, ids) in enumerate(zip(blocks, rendered)):
            self._new_group(prompt, ids, g, step, seed=1000 * step + g * i)
        need = len(blocks)
        rng = random.Random(f"ulorl-extra-{step}")
        while len(self.groups) < need + self.extra_groups:  # the first step fills the pool
            prompt = rng.choice(self.extra_prompts or blocks)
            self._new_group(prompt, render(self.tokenizer, prompt, fam), g, step,
                            seed=10**6 + 1000 * step + g * len(self.groups))

        sequential = [0]  # decode positions this step waited for: the longest segment of each round

        async def work(engine) -> int:
            rounds = 0
            while True:
                live = [(gr, s) for gr in self.groups.values() for s in gr.samples if s.finish is None]
                if live:
                    before = [_mark(s, step) for _, s in live]
                    await asyncio.gather(*(decode_segment(engine, gr.prompt_ids, s, self.segment_tokens,
                                                          args.max_completion_length, args.temperature)
                                           for gr, s in live))
                    sequential[0] += max(len(s.tokens) - b for (_, s), b in zip(live, before))
                    rounds += 1
                done = [gr for gr in self.groups.values() if gr.rows is None and all(s.finish for s in gr.samples)]
                await asyncio.gather(*(self._score(engine, gr, fam, verifier, args) for gr in done))
                if sum(gr.rows is not None for gr in self.groups.values()) >= need:
                    return rounds

        rounds = on_policy(trainer, self.tokenizer, work)
        self.steps += 1
        ready = sorted(gid for gid, gr in self.groups.items() if gr.rows is not None)[:need]
        taken = [self.groups.pop(gid) for gid in ready]
        rows = TrlRows()
        for group in taken:
            for row in group.rows:
                rows.add(group.prompt_ids, row["completion_ids"], row["logprobs"], row["ponder_reward"], row["env_mask"])
        out = rows.to_dict()
        self.lengths += [len(smp.tokens) for gr in taken for smp in gr.samples]
        stats = self._stats(taken, step, rounds)
        stats["ulorl/sequential_tokens"] = sequential[0]
        if self.dmmpt is not None:
            stats["ulorl/dmmpt_masked"] = apply_dmmpt(out, trainer.model, args.temperature, self.dmmpt)
        if self.algo == "sgrpo":
            stats.update({k: sum(gr.exit_stats[k] for gr in taken) / len(taken) for k in taken[0].exit_stats})
        self.history.append(stats)
        return with_metrics(out, stats, trainer)

    def _new_group(self, prompt: str, ids: list[int], g: int, step: int, seed: int) -> None:
        n = 1 if self.algo == "sgrpo" else g  # S-GRPO segments its one full path
        self.groups[self.next_gid] = _Group(prompt, ids, [Sample(seed=seed + j) for j in range(n)], step)
        self.next_gid += 1

    async def _score(self, engine: Any, group: _Group, fam: Any, verifier: Any, args: Any) -> None:
        from ponder.controllers.trace import SampleContext
        from ponder.rl.sgrpo import SGRPOConfig, exit_stats, group_from_path
        from ponder.types import Trace

        gold = self.golds[group.prompt]
        if self.algo == "grpo":
            group.rows = [{"completion_ids": s.tokens, "logprobs": s.logprobs, "env_mask": [1] * len(s.tokens),
                           "ponder_reward": float(s.finish == "stop" and bool(
                               verifier.verify(gold, self.tokenizer.decode(s.tokens))))}
                          for s in group.samples]
            return
        s = group.samples[0]
        path = Trace(token_ids=list(s.tokens), logprobs=list(s.logprobs), finish_reason=s.finish)
        ctx = SampleContext(engine, group.prompt_ids, fam, verifier)
        config = SGRPOConfig(m=args.num_generations - 1, temperature=args.temperature, seed=s.seed,
                             max_tokens=args.max_completion_length, answer_tokens=self.answer_tokens)
        scored = await group_from_path(ctx, path, gold, config)
        group.rows = [{"completion_ids": m.completion_ids, "logprobs": m.logprobs, "env_mask": m.env_mask,
                       "ponder_reward": m.reward} for m in scored.members]
        group.exit_stats = exit_stats([scored])

    def _stats(self, taken: list[_Group], step: int, rounds: int) -> dict[str, float]:
        samples = [s for gr in taken for s in gr.samples]
        carried = [s for s in samples if s.last_step > s.first_step]
        return {"ulorl/rounds": rounds,
                "ulorl/carried_samples": len(carried),
                "ulorl/carried_tokens": sum(s.prior for s in carried),
                "ulorl/waited_groups": sum(gr.born < step for gr in taken),
                "ulorl/segments": sum(s.segments for s in samples) / len(samples),
                "ulorl/truncated": sum(s.finish == "length" for s in samples) / len(samples),
                "ulorl/unfinished": sum(s.finish is None for gr in self.groups.values() for s in gr.samples),
                "ulorl/waiting_groups": len(self.groups)}

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"next_gid": self.next_gid, "steps": self.steps,
                "groups": {str(gid): {**asdict(gr), "samples": [asdict(s) for s in gr.samples]}
                           for gid, gr in self.groups.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.next_gid, self.steps = int(state["next_gid"]), int(state["steps"])
        self.groups = {int(gid): _Group(**{**gr, "samples": [Sample(**s) for s in gr["samples"]]})
                       for gid, gr in state["groups"].items()}

    def load(self, checkpoint: str | Path) -> bool:
        """Restore the pools saved in ``checkpoint`` (False when it holds none)."""
        path = Path(checkpoint) / POOL_FILE
        if not path.exists():
            return False
        try:
            self.load_state_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a ulorl pool file: {exc}") from None
        return True


def _mark(sample: Sample, step: int) -> int:
    """Record that ``sample`` gets a segment in ``step``; returns its length before it."""
    if sample.first_step < 0:
        sample.first_step = step
    sample.last_step = step
    return len(sample.tokens)



class PoolCheckpoint(callback_base()):
    """Save the rollout's pools into every checkpoint folder (``checkpoint-N/ulorl_pools.json``)."""

    def __init__(self, rollout: SegmentRollout) -> None:
        self.rollout = rollout

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (POOL_FILE + ".tmp")
        tmp.write_text(json.dumps(self.rollout.state_dict()))
        tmp.replace(folder / POOL_FILE)


