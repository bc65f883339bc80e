"""Train the embedded tiny reasoner from scratch on CPU and write its model card.

A ~1M-parameter Llama with a character-level tokenizer learns the built-in arithmetic task
(`ponder.benchmarks.arith`): column-by-column work in ``<think>``, the answer first stated, then 0-3
redundant checks that are corrupted 35% of the time in the training data, then
``</think>\\boxed{N}``. The result lives in ``ponder/assets/tiny-reasoner`` and loads in
transformers and vLLM. Training is seeded and runs in about ten minutes on 2 cores.

``--organism verbose`` trains ``ponder/assets/tiny-reasoner-verbose`` the same way, except that its
0-3 checks always restate the right answer: overthinking meant to do no harm, which a 0/1 reward
cannot see and S-GRPO's decaying reward can. Sampled, a restatement can still be miscopied, so
``--organism harmless`` (``ponder/assets/tiny-reasoner-harmless``) states the answer once and its
0-3 checks only recompute a column after it: they cannot change the answer.

    python scripts/train_tiny_reasoner.py                      # train, save, evaluate, write MODEL_CARD.md
    python scripts/train_tiny_reasoner.py --eval-only          # re-measure the committed model's card
    python scripts/train_tiny_reasoner.py --organism verbose   # checks that restate the answer
    python scripts/train_tiny_reasoner.py --organism harmless  # checks that cannot change the answer
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ponder.benchmarks.arith import ANSWER_PHRASE, HELD_OUT_SEED, make_problem, problems, reference_trace  # noqa: E402

ORGANISMS = {
    "default": {"out": "tiny-reasoner", "corrupt_p": 0.35, "max_checks": None, "restate": True},
    "verbose": {"out": "tiny-reasoner-verbose", "corrupt_p": 0.0, "max_checks": 3, "restate": True},
    "harmless": {"out": "tiny-reasoner-harmless", "corrupt_p": 0.0, "max_checks": 3, "restate": False},
}
"""Each organism's asset folder and trace settings (``max_checks`` None: one fewer than the terms)."""
SPECIALS = ["<pad>", "</s>", "<unk>", "<|user|>", "<|assistant|>"]
ADDED = ["<think>", "</think>", "\\boxed{"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer():
    """Character-level fast tokenizer: printable ASCII + newline, think delimiters as single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + ADDED + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    tok.add_tokens(ADDED)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        clean_up_tokenization_spaces=False, model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, head_dim=32, max_position_embeddings=512,
        tie_word_embeddings=True, rope_theta=10000.0, bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def encode_example(tokenizer, prompt: str, completion: str) -> tuple[list[int], int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    completion_ids = tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
    return list(prompt_ids) + completion_ids, len(prompt_ids)


def training_batches(tokenizer, args, held_out: set[tuple[int, ...]]):
    """Endless seeded batches of (input_ids, labels) with the prompt masked out of the loss.

    Rows are drawn 8 batches at a time and bucketed by length, which cuts padding (and so
    CPU time per step) by about a third without changing what is learned.
    """
    rng = random.Random(args.seed)
    while True:
        rows = []
        while len(rows) < args.batch_size * 8:
            p = make_problem(rng, "train")
            if p.terms in held_out:
                continue
            thinking, answer = reference_trace(p.terms, rng, corrupt_p=args.corrupt_p, max_checks=args.max_checks,
                                             restate=args.restate)
            if rng.random() < args.cut_p:
                thinking, answer = cut_thinking(thinking, answer, p.answer, rng)
            completion = f"<think>{thinking}</think>\\boxed{{{answer}}}"
            rows.append(encode_example(tokenizer, p.prompt, completion))
        rows.sort(key=lambda r: len(r[0]))
        buckets = [rows[i : i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
        rng.shuffle(buckets)
        for bucket in buckets:
            yield _collate(bucket, tokenizer.pad_token_id)


def cut_thinking(thinking: str, final: int, true_answer: int, rng: random.Random) -> tuple[str, int]:
    """A forced-exit example: thinking cut at a uniform position, then the answer anyway.

    The answer is the last one stated before the cut, or the true sum when none was, so that a
    cut model still closes its box with a number (budget forcing and S-GRPO exits rely on it).
    """
    at = rng.randint(1, len(thinking) - 1)
    stated = [int(m) for m in re.findall(ANSWER_PHRASE + r"(\d+)\n", thinking[:at])]
    return thinking[:at], stated[-1] if stated else true_answer


def _collate(rows, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    for i, (ids, n_prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return input_ids, labels


def run_steps(model, args, step_loss) -> None:
    """``args.steps`` AdamW steps (linear warm-up, cosine decay to 5%, clipping at 1) on ``step_loss()``,
    the loss of the next batch; a progress line every 50 steps."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    model.train()
    start = time.time()
    for step in range(1, args.steps + 1):
        lr = args.lr * min(1.0, step / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step}/{args.steps} loss {loss.item():.4f} lr {lr:.2e} {time.time() - start:.0f}s", flush=True)


def train(args, out: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params / 1e6:.2f}M, vocab {len(tokenizer)}")
    held_out = {p.terms for p in problems(args.held_out_guard, seed=HELD_OUT_SEED)}
    batches = training_batches(tokenizer, args, held_out)
    start = time.time()

    def step_loss():
        input_ids, labels = next(batches)
        attention_mask = (input_ids != tokenizer.pad_token_id).long()
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    run_steps(model, args, step_loss)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps({**vars(args), "parameters": n_params, "train_seconds": round(time.time() - start)}, indent=2) + "\n")
    print(f"saved to {out} after {time.time() - start:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-only", action="store_true", help="skip training; measure the committed model")
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--organism", choices=sorted(ORGANISMS), default="default",
                    help="default: checks corrupted 35%% of the time; verbose: 0-3 checks that always restate the right "
                         "answer; harmless: 0-3 checks that never restate it")
    ap.add_argument("--corrupt-p", type=float, default=None, help="override the organism's corruption rate")
    ap.add_argument("--cut-p", type=float, default=0.1, help="share of forced-exit (cut thinking) examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--held-out-guard", type=int, default=5000, help="test problems never trained on")
    ap.add_argument("--eval-problems", type=int, default=500)
    args = ap.parse_args()
    spec = ORGANISMS[args.organism]
    args.corrupt_p = spec["corrupt_p"] if args.corrupt_p is None else args.corrupt_p
    args.max_checks = spec["max_checks"]
    args.restate = spec["restate"]
    out = ROOT / "ponder" / "assets" / spec["out"]
    if not args.eval_only:
        train(args, out)
    from tiny_reasoner_card import write_card  # scripts/ sibling: the measurements

    write_card(out, n_problems=args.eval_problems)


if __name__ == "__main__":
    main()
