"""Train ``tiny-qwen3``, the Qwen3-format organism, from scratch on CPU and write its model card.

A small ``Qwen3ForCausalLM`` (hidden 128, 4 layers, 4 query / 2 key-value heads of 32, tied
embeddings) with Qwen3's exact tokenizer (`ponder.engines.tiny_qwen3`) learns the built-in
arithmetic task in Qwen3's style: the model opens ``<think>``, works column by column, states the
answer, makes 0-3 redundant "Wait, check" passes (corrupted 35% of the time in training, as the
tiny reasoner's), closes ``</think>`` and answers ``**Final Answer**`` with ``\\boxed{N}`` and
``<|im_end|>``. 10% of examples are forced exits (thinking cut at a token, then the exit text a
controller appends, tokenized apart as controllers do), 5% are non-thinking turns
(``enable_thinking=False``). Only the few hundred ids the data uses get their own embedding rows;
every other id shares one row, trained as one softmax class weighted by their count (the module
docstring of `ponder.engines.tiny_qwen3` says why that is exact). The result is
``ponder/assets/tiny-qwen3`` (compact weights, config, card); `resolve_model("tiny-qwen3")` expands it.

    python scripts/train_tiny_qwen3.py --threads 1     # train (~14 CPU min), save, write MODEL_CARD.md
    python scripts/train_tiny_qwen3.py --eval-only     # re-measure the committed model's card
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from ponder.benchmarks.arith import ANSWER_PHRASE, HELD_OUT_SEED, make_problem, problems, reference_trace  # noqa: E402
from ponder.engines.tiny_qwen3 import ASSET, VOCAB_ROWS, build_tokenizer  # noqa: E402
from ponder.prompts import FAMILIES  # noqa: E402
from train_tiny_reasoner import run_steps  # noqa: E402  (scripts/ sibling: the same optimiser and schedule)

FAMILY = FAMILIES["qwen3"]
ANSWER = FAMILY.answer_cue  # "\n\n**Final Answer**\n\\boxed{": a forced answer and a natural one look alike


class Data:
    """Training examples as Qwen3 token ids, with the prompt masked out of the loss."""

    def __init__(self, tokenizer, args):
        self.tok, self.args = tokenizer, args
        self.im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.think = tokenizer.convert_tokens_to_ids("<think>")

    def enc(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def prompt(self, text: str, thinking: bool = True) -> list[int]:
        msgs = [{"role": "user", "content": text}]
        return self.enc(self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False,
                                                     enable_thinking=thinking))

    def example(self, rng: random.Random, p) -> tuple[list[int], int]:
        """(ids, prompt length) of one example drawn for problem ``p``."""
        a = self.args
        thinking, answer = reference_trace(p.terms, rng, corrupt_p=a.corrupt_p)
        thinking = thinking.replace("wait, check", "Wait, check")
        if rng.random() < a.no_think_p:
            prompt = self.prompt(p.prompt, thinking=False)
            return prompt + self.enc(f"**Final Answer**\n\\boxed{{{p.answer}}}") + [self.im_end], len(prompt)
        prompt = self.prompt(p.prompt)
        body = self.enc("<think>" + thinking)
        if rng.random() < a.cut_p:  # a forced exit: cut at a token, the controller's suffix tokenized apart
            at = rng.randint(2, len(body) - 1)
            stated = self.tok.decode(body[:at])
            found = [int(line[len(ANSWER_PHRASE):]) for line in stated.split("\n")[:-1] if line.startswith(ANSWER_PHRASE)]
            answer = found[-1] if found else p.answer
            suffix = self.enc(FAMILY.force_suffix(with_exit_prompt=rng.random() < 0.5))
            return prompt + body[:at] + suffix + self.enc(f"{answer}}}") + [self.im_end], len(prompt)
        return prompt + body + self.enc(f"</think>{ANSWER}{answer}}}") + [self.im_end], len(prompt)

    def extra_ids(self) -> set[int]:
        """Ids a controller may append that the examples might not hold (the s1 "Wait" forms)."""
        texts = [FAMILY.wait, " " + FAMILY.wait, "," + FAMILY.wait, FAMILY.force_suffix(True), "<|endoftext|>"]
        return {i for t in texts for i in self.enc(t)}


def batches(data: Data, args, held_out: set, used: dict[int, int]):
    """Endless seeded batches of compact (input_ids, labels); rows bucketed by length to cut padding."""
    import torch

    rng = random.Random(args.seed)
    while True:
        rows = []
        while len(rows) < args.batch_size * 8:
            p = make_problem(rng, "train")
            if p.terms not in held_out:
                rows.append(data.example(rng, p))
        rows.sort(key=lambda r: len(r[0]))
        buckets = [rows[i:i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
        rng.shuffle(buckets)
        for bucket in buckets:
            width = max(len(ids) for ids, _ in bucket)
            x = torch.full((len(bucket), width), used[data.tok.pad_token_id])
            y = torch.full((len(bucket), width), -100)
            for i, (ids, n) in enumerate(bucket):
                x[i, :len(ids)] = torch.tensor([used[t] for t in ids])
                y[i, n:len(ids)] = x[i, n:len(ids)]
            yield x, y


def vocabulary(data: Data, args, held_out: set) -> list[int]:
    """Every id that occurs in 20,000 examples, plus the ones controllers append, sorted."""
    rng = random.Random(args.seed + 1)
    seen = set(data.extra_ids()) | {data.tok.pad_token_id, data.im_end, data.think}
    for _ in range(20000):
        seen.update(data.example(rng, make_problem(rng, "vocab"))[0])
    return sorted(seen)


def build_model(n_vocab: int, seed: int, tok):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=n_vocab, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=2048, tie_word_embeddings=True,
        rope_theta=1000000.0, rms_norm_eps=1e-6, bos_token_id=tok.pad_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=None,
    )
    return Qwen3ForCausalLM(cfg)


def loss_fn(model, x, y, n_other: int, pad: int):
    import torch.nn.functional as F

    logits = model(input_ids=x, attention_mask=(x != pad).long()).logits.float()
    logits[..., -1] += math.log(n_other)  # the shared row stands for n_other ids at once
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1), ignore_index=-100)


def save(model, used: list[int], tok, args, seconds: float) -> None:
    import torch
    from safetensors.torch import save_file

    ASSET.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state["used_ids"] = torch.tensor(used, dtype=torch.int64)
    save_file(state, str(ASSET / "compact.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.update(vocab_size=VOCAB_ROWS, architectures=["Qwen3ForCausalLM"], dtype="float32")
    cfg.pop("torch_dtype", None)
    (ASSET / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = {"bos_token_id": tok.pad_token_id, "eos_token_id": [tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id],
           "pad_token_id": tok.pad_token_id, "do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20}
    (ASSET / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    info = {**vars(args), "parameters_trained": n_params, "used_ids": len(used), "train_seconds": round(seconds),
            "cpu_note": f"{time.process_time():.0f} CPU s, user + system of the training process"}
    (ASSET / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def train(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    tok = build_tokenizer()
    data = Data(tok, args)
    held_out = {p.terms for p in problems(args.held_out_guard, seed=HELD_OUT_SEED)}
    used = vocabulary(data, args, held_out)
    index = {t: i for i, t in enumerate(used)}
    model = build_model(len(used) + 1, args.seed, tok)
    print(f"{len(used)} ids in use; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M trained parameters")
    stream, n_other, start = batches(data, args, held_out, index), VOCAB_ROWS - len(used), time.time()
    run_steps(model, args, lambda: loss_fn(model, *next(stream), n_other, index[tok.pad_token_id]))
    save(model, used, tok, args, time.time() - start)
    print(f"saved to {ASSET} after {time.time() - start:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-only", action="store_true", help="skip training; measure the committed model")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--corrupt-p", type=float, default=0.35)
    ap.add_argument("--cut-p", type=float, default=0.1, help="share of forced-exit examples")
    ap.add_argument("--no-think-p", type=float, default=0.05, help="share of enable_thinking=False examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--held-out-guard", type=int, default=5000, help="test problems never trained on")
    ap.add_argument("--eval-problems", type=int, default=500)
    args = ap.parse_args()
    if not args.eval_only:
        train(args)
    if args.eval_problems > 0:
        from tiny_qwen3_card import write_card  # scripts/ sibling: the measurements

        write_card(n_problems=args.eval_problems)


if __name__ == "__main__":
    main()
