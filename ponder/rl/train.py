"""`ponder train sgrpo|grpo`: S-GRPO (or plain GRPO as the baseline) on TRL, configured from YAML.

    ponder train sgrpo --config recipes/tiny-sgrpo.yaml max_steps=50 learning_rate=1e-5
    python scripts/train_sgrpo.py --config recipes/tiny-sgrpo.yaml --algo grpo

Both algorithms share the engine (the live policy behind ponder's Engine protocol), the verifier
and the data; they differ only in the rollout (one serial group vs G independent samples) and the
reward (decaying vs 0/1). Bad configurations fail before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["TrainConfig", "load_config", "load_training_problems", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """One RL run."""

    algo: Literal["sgrpo", "grpo"] = "sgrpo"
    """``sgrpo``: serial groups with decaying rewards; ``grpo``: independent samples, 0/1 reward."""
    model: str | None = None
    """Policy to train (default: the embedded tiny reasoner)."""
    dataset: str = "arith"
    """A ponder benchmark name (arith trains on seed-2 problems, disjoint from eval's seed 1)."""
    data: str | None = None
    """A local file of problems (ponder's schema, or the benchmark's with ``dataset``)."""
    limit: int | None = 2000
    """Most training problems."""
    num_generations: int = 8
    """Group size G (S-GRPO: m = G - 1 exits plus the full path)."""
    prompts_per_step: int = 4
    """Prompts per optimizer step."""
    max_steps: int = 100
    """Optimizer steps."""
    learning_rate: float = 1e-6
    """The paper's 1e-6 suits 7B+ models; the tiny reasoner's recipe sets its own."""
    beta: float = 0.0
    """KL coefficient against the reference model (0: none, TRL's default)."""
    temperature: float = 1.0
    """Rollout temperature; TRL computes log-probabilities at the same temperature."""
    max_completion_length: int = 400
    """Most tokens of a reasoning path."""
    answer_tokens: int = 32
    """Most tokens of each forced answer (S-GRPO)."""
    save_steps: int = 50
    """Checkpoint every this many steps (optimizer, scheduler, RNG and step are saved by TRL)."""
    output_dir: str = "runs/sgrpo"
    """Where checkpoints and logs go."""
    resume: bool = False
    """Continue from the newest checkpoint in ``output_dir``."""
    seed: int = 0
    """Seed of the trainer and of the rollouts."""

    def __post_init__(self) -> None:
        if self.algo not in ("sgrpo", "grpo"):
            raise ValueError(f"algo must be sgrpo or grpo (got {self.algo!r})")
        if not isinstance(self.num_generations, int) or self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2, i.e. m = num_generations - 1 >= 1 (got {self.num_generations!r})")
        for name in ("prompts_per_step", "max_steps", "max_completion_length", "answer_tokens", "save_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {getattr(self, name)!r})")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError("learning_rate and temperature must be > 0")


def load_config(path: str | Path | None, overrides: list[str] = (), **fixed: Any) -> TrainConfig:
    """Read a YAML recipe, apply ``key=value`` overrides, and validate; errors name the key and file."""
    import yaml

    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read the recipe: {exc}".splitlines()[0]) from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a recipe is a mapping of TrainConfig fields")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        try:
            values[key.strip()] = json.loads(raw)
        except ValueError:
            values[key.strip()] = raw
    values.update({k: v for k, v in fixed.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path or 'overrides'}: unknown field {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TrainConfig(**values)


def load_training_problems(cfg: TrainConfig):
    """The training problems; all must have a gold answer and one answer kind with a verifier."""
    from ponder.eval.arith import problems
    from ponder.types import Problem
    from ponder.verifiers import REGISTRY

    if cfg.dataset == "arith" and cfg.data is None:
        items = [Problem(p.prompt, gold=str(p.answer), answer_kind="integer", id=p.id)
                 for p in problems(cfg.limit or 2000, seed=2)]
    else:
        from ponder.eval.benchmarks import load_problems

        items = load_problems(None if cfg.data and cfg.dataset == "arith" else cfg.dataset, cfg.data, cfg.limit)
    missing = [p.id for p in items if p.gold in (None, "")]
    if missing:
        raise ValueError(f"{cfg.data or cfg.dataset}: no answer for row(s) {', '.join(missing[:5])}; RL needs gold answers")
    kinds = {p.answer_kind for p in items}
    if len(kinds) != 1 or next(iter(kinds)) not in REGISTRY:
        raise ValueError(f"{cfg.data or cfg.dataset}: training needs one answer kind with a verifier "
                         f"({', '.join(REGISTRY)}); found {', '.join(sorted(kinds))}")
    if not items:
        raise ValueError(f"{cfg.data or cfg.dataset}: no problems")
    return items


def train(cfg: TrainConfig) -> Any:
    """Build the TRL trainer for ``cfg`` and run it; returns the trainer."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer
    from transformers.trainer_utils import get_last_checkpoint

    from ponder.engines import resolve_model
    from ponder.rl.trainer import GRPORollout, SGRPORollout, sgrpo_reward

    items = load_training_problems(cfg)  # fails on bad data before the model loads
    path = resolve_model(cfg.model)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    golds = {p.prompt: p.gold for p in items}
    kind = items[0].answer_kind
    rollout = (SGRPORollout(tok, golds, answer_kind=kind, answer_tokens=cfg.answer_tokens) if cfg.algo == "sgrpo"
               else GRPORollout(tok, golds, answer_kind=kind))
    args = GRPOConfig(
        output_dir=cfg.output_dir, per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        learning_rate=cfg.learning_rate, max_steps=cfg.max_steps, logging_steps=1, beta=cfg.beta,
        # S-GRPO's advantage is r - mean(r); GRPO keeps its usual per-group std scaling
        scale_rewards="none" if cfg.algo == "sgrpo" else "group", temperature=cfg.temperature,
        report_to=[], save_strategy="steps", save_steps=cfg.save_steps, use_cpu=not _has_gpu(), seed=cfg.seed,
        bf16=False,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[sgrpo_reward], args=args, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": [p.prompt for p in items]}), rollout_func=rollout)
    last = get_last_checkpoint(cfg.output_dir) if cfg.resume and Path(cfg.output_dir).exists() else None
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(Path(cfg.output_dir) / "final"))
    return trainer


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
