"""Held-out evaluation during RL: accuracy and mean thinking tokens, greedy and sampled.

`HeldOutEval` is a transformers `TrainerCallback`: before the first step and every ``every`` steps
it runs the live policy (no copy, eval mode) over a fixed held-out set through ponder's engine,
once greedily and once at ``temperature``, and appends one JSON line per evaluation to
``<output_dir>/eval.jsonl``::

    {"step": 20, "greedy_accuracy": 0.84, "greedy_thinking_tokens": 97.1,
     "sampled_accuracy": 0.72, "sampled_thinking_tokens": 95.4, "problems": 128, "seconds": 14.2}

`JsonlLog` appends every training log (reward, loss, exit statistics) to ``<output_dir>/log.jsonl``.
`measure` is the same measurement as a function (used by the demonstration script on saved models);
`measure_rows` gives its per-problem rows (the experiment script's ``heldout.jsonl``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from ponder.rl.rollout import callback_base, eval_mode

__all__ = ["measure", "measure_rows", "summarize", "HeldOutEval", "JsonlLog", "read_eval_log"]


async def measure_rows(engine: Any, problems: list, *, temperature: float = 0.7, max_tokens: int = 400,
                       seed: int = 0, family: str | None = None) -> list[dict]:
    """One row per problem and mode (``greedy``, then ``sampled`` with seed ``seed + i`` for problem i):
    id, gold, answer, correct, thinking tokens, tokens, finish reason."""
    from ponder.controllers.trace import SampleContext, thinking_tokens
    from ponder.engines import complete
    from ponder.prompts import family_for, render, split_thinking
    from ponder.types import SamplingParams
    from ponder.verifiers import get_verifier

    tok = engine.tokenizer
    fam = family_for(tok, getattr(tok, "name_or_path", None), family)
    ctx = SampleContext(engine, [], fam)
    prompts = [render(tok, p.prompt, fam) for p in problems]
    rows: list[dict] = []
    for mode, temp in (("greedy", 0.0), ("sampled", temperature)):
        params = [SamplingParams(max_tokens=max_tokens, temperature=temp, seed=seed + i) for i in range(len(prompts))]
        done = await asyncio.gather(*(complete(engine, ids, sp) for ids, sp in zip(prompts, params)))
        for p, c in zip(problems, done):
            verifier, text = get_verifier(p.answer_kind), tok.decode(c.token_ids)
            _, answer_part, closed = split_thinking(text, fam)
            rows.append({"id": p.id, "mode": mode, "gold": p.gold, "answer": verifier.extract(answer_part) if closed else None,
                         "correct": bool(verifier.verify(p.gold, text)), "thinking_tokens": thinking_tokens(ctx, c.token_ids),
                         "tokens": len(c.token_ids), "finish_reason": c.finish_reason})
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    """Accuracy and mean thinking tokens per mode, from `measure_rows`' rows."""
    out: dict[str, float] = {"problems": sum(r["mode"] == "greedy" for r in rows)}
    for mode in ("greedy", "sampled"):
        mine = [r for r in rows if r["mode"] == mode]
        out[f"{mode}_accuracy"] = statistics.mean(r["correct"] for r in mine)
        out[f"{mode}_thinking_tokens"] = statistics.mean(r["thinking_tokens"] for r in mine)
    return out


async def measure(engine: Any, problems: list, *, temperature: float = 0.7, max_tokens: int = 400,
                  seed: int = 0, family: str | None = None) -> dict[str, float]:
    """Greedy and sampled (one sample at ``temperature``) accuracy and mean thinking tokens."""
    return summarize(await measure_rows(engine, problems, temperature=temperature, max_tokens=max_tokens,
                                        seed=seed, family=family))


def read_eval_log(path: str | Path) -> list[dict]:
    """The evaluations a run wrote, in step order (a resumed run's repeat of a step replaces it)."""
    rows = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["step"]] = row
    return [rows[k] for k in sorted(rows)]



class HeldOutEval(callback_base()):
    """Evaluate the live policy on held-out problems every ``every`` steps (and before step 1).

    Args:
        tokenizer: the policy's tokenizer.
        problems: the held-out `Problem`s (with gold answers).
        every: steps between evaluations.
        output_dir: where ``eval.jsonl`` is appended.
        temperature: the sampled evaluation's temperature.
        max_tokens: most tokens per completion.
    """

    def __init__(self, tokenizer: Any, problems: list, every: int, output_dir: str | Path,
                 temperature: float = 0.7, max_tokens: int = 400) -> None:
        self.tokenizer, self.problems, self.every = tokenizer, problems, every
        self.path = Path(output_dir) / "eval.jsonl"
        self.temperature, self.max_tokens = temperature, max_tokens

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._run(model, 0, state.is_world_process_zero)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._run(model, state.global_step, state.is_world_process_zero)

    def _run(self, model: Any, step: int, write: bool = True) -> None:
        # every process measures (under ZeRO-3 a forward pass is a collective); one writes
        from ponder.engines.hf import HFEngine

        if model is None:
            return
        start = time.perf_counter()
        with eval_mode(model):
            engine = HFEngine.from_model(model, self.tokenizer)
            row = asyncio.run(measure(engine, self.problems, temperature=self.temperature, max_tokens=self.max_tokens))
        row = {"step": step, **row, "seconds": round(time.perf_counter() - start, 2)}
        if not write:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"[eval step {step}] greedy {row['greedy_accuracy']:.1%} / {row['greedy_thinking_tokens']:.1f} tok, "
              f"T={self.temperature} {row['sampled_accuracy']:.1%} / {row['sampled_thinking_tokens']:.1f} tok "
              f"({row['seconds']:.0f}s)", flush=True)


class JsonlLog(callback_base()):
    """Append each of the trainer's logs, with its step, to ``<output_dir>/log.jsonl``."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / "log.jsonl"

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:  # one line per step, not one per process
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")
