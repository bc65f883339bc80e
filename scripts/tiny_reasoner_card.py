"""Measure the tiny reasoner on held-out arithmetic problems and write its model card.

Everything runs through ponder's batched transformers engine with seeded sampling, so the card
reproduces exactly on the same machine type:

    python scripts/train_tiny_reasoner.py --eval-only     # calls write_card()
    python scripts/tiny_reasoner_card.py                   # the same, directly
    python scripts/tiny_reasoner_card.py tiny-reasoner-verbose   # another organism under ponder/assets/
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ponder.engines import complete  # noqa: E402
from ponder.benchmarks.arith import ANSWER_PHRASE, HELD_OUT_SEED, first_stated_answer, problems  # noqa: E402
from ponder.prompts import FAMILIES, render  # noqa: E402
from ponder.types import SamplingParams  # noqa: E402

BUDGETS = (32, 48, 64, 96, 128, 192)
BOXED = re.compile(r"\\boxed\{(\d{1,6})\}")


def boxed(text: str) -> int | None:
    found = BOXED.findall(text)
    return int(found[-1]) if found else None


async def sample_all(engine, prompts, params_list):
    done, total, start = 0, len(prompts), time.time()

    async def one(ids, params):
        nonlocal done
        c = await complete(engine, ids, params)
        done += 1
        if done % 500 == 0 or done == total:
            print(f"  {done}/{total} samples, {time.time() - start:.0f}s", flush=True)
        return c

    return await asyncio.gather(*(one(i, p) for i, p in zip(prompts, params_list)))


def thinking_stats(tokenizer, ids: list[int]) -> tuple[int, int | None]:
    """(thinking tokens, tokens of thinking before the first stated answer's line ends)."""
    text_tokens = [tokenizer.decode([t]) for t in ids]
    try:
        end = text_tokens.index("</think>")
    except ValueError:
        end = len(ids)
    text = ""
    first = None
    for i, piece in enumerate(text_tokens[:end]):
        text += piece
        if first is None and ANSWER_PHRASE in text and text.endswith("\n") and text.rfind(ANSWER_PHRASE) < len(text) - 1:
            first = i + 1
    return end, first


async def budget_accuracy(engine, tokenizer, prompts, answers, budget: int, answer_tokens: int = 12) -> float:
    end_id = tokenizer.convert_tokens_to_ids("</think>")
    think = await sample_all(engine, prompts, [SamplingParams(max_tokens=budget, stop_token_ids=(end_id,))] * len(prompts))
    forced = [p + c.token_ids + ([] if c.finish_reason == "stop" else [end_id]) for p, c in zip(prompts, think)]
    outs = await sample_all(engine, forced, [SamplingParams(max_tokens=answer_tokens)] * len(forced))
    return statistics.mean(boxed(tokenizer.decode(o.token_ids)) == a for o, a in zip(outs, answers))


async def measure(model_dir: Path, n_problems: int, n_sampled: int, k: int = 8, family: str = "tiny",
                  answer_tokens: int = 12) -> dict:
    """The card's figures; ``answer_tokens`` bounds the answer after a forced cut."""
    from ponder.engines.hf import HFEngine

    engine = HFEngine(str(model_dir), max_batch=64)
    tok = engine.tokenizer
    probs = problems(n_problems, seed=HELD_OUT_SEED)
    prompts = [render(tok, p.prompt, FAMILIES[family]) for p in probs]
    answers = [p.answer for p in probs]
    print(f"greedy on {n_problems} problems")
    greedy = await sample_all(engine, prompts, [SamplingParams(max_tokens=400)] * n_problems)
    g_text = [tok.decode(c.token_ids) for c in greedy]
    res: dict = {"problems": n_problems, "greedy_accuracy": statistics.mean(boxed(t) == a for t, a in zip(g_text, answers))}
    res["greedy_thinking_tokens"] = statistics.mean(thinking_stats(tok, c.token_ids)[0] for c in greedy)

    print(f"T=0.7: {k} samples on {n_sampled} problems")
    sp = [SamplingParams(max_tokens=400, temperature=0.7, seed=1000 * i + j) for i in range(n_sampled) for j in range(k)]
    flat = await sample_all(engine, [prompts[i] for i in range(n_sampled) for _ in range(k)], sp)
    groups = [flat[i * k:(i + 1) * k] for i in range(n_sampled)]
    by_rank = [[] for _ in range(k)]
    single, maj, first_exit, after, thinking = [], [], [], 0, 0
    for g, a in zip(groups, answers):
        outs = [boxed(tok.decode(c.token_ids)) for c in g]
        single += [o == a for o in outs]
        votes = Counter(o for o in outs if o is not None)
        maj.append(bool(votes) and sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] == a)
        for rank, idx in enumerate(sorted(range(k), key=lambda j: (len(g[j].token_ids), j))):
            by_rank[rank].append(outs[idx] == a)
        for c in g:
            think, first = thinking_stats(tok, c.token_ids)
            thinking += think
            after += think - first if first else 0
            first_exit.append(first_stated_answer(tok.decode(c.token_ids)) == a)
    res.update({
        "sampled_problems": n_sampled, "samples_per_problem": k,
        "single_accuracy": statistics.mean(single), "majority_accuracy": statistics.mean(maj),
        "shortest_accuracy": statistics.mean(by_rank[0]), "longest_accuracy": statistics.mean(by_rank[-1]),
        "accuracy_by_length_rank": [round(statistics.mean(r), 4) for r in by_rank],
        "first_answer_exit_accuracy": statistics.mean(first_exit),
        "share_of_thinking_after_first_answer": after / max(thinking, 1),
        "sampled_thinking_tokens": thinking / len(flat),
    })
    n_budget = min(n_problems, 200)
    print(f"forced thinking cuts (greedy) on {n_budget} problems")
    res["budget_problems"] = n_budget
    res["budget_accuracy"] = {
        b: await budget_accuracy(engine, tok, prompts[:n_budget], answers[:n_budget], b, answer_tokens) for b in BUDGETS
    }
    await engine.aclose()
    return res


def checks_sentence(training: dict) -> str:
    """How the organism's checks were written in training (the default one's overthinking hurts)."""
    most = training.get("max_checks")
    span = f"0-{most}" if most is not None else "0-3"
    if training.get("corrupt_p"):
        return (f"make {span} redundant \"wait, check\" passes that were\ncorrupted with probability "
                f"{training['corrupt_p']} in training, so the model overthinks by design.")
    if training.get("restate") is False:
        return (f"make {span} redundant \"wait, check\" passes of one column\neach that never restate the "
                "answer: the answer is stated once and the checks cannot change it,\noverthinking by design that "
                "does no harm (a 0/1 reward cannot see it).")
    return (f"make {span} redundant \"wait, check\" passes that always\nrestate the right answer in training: "
            "overthinking by design that does no harm (a 0/1 reward cannot see it).")


def organism_flag(training: dict) -> str:
    organism = training.get("organism", "default")
    return "" if organism == "default" else f" --organism {organism}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def metrics_table(r: dict) -> str:
    """The card's table of measurements and the accuracy by length rank (shared by every organism's card)."""
    k = r["samples_per_problem"]
    return f"""| metric | value |
|---|---|
| greedy accuracy ({r['problems']} problems) | {pct(r['greedy_accuracy'])} |
| greedy mean thinking tokens | {r['greedy_thinking_tokens']:.1f} |
| T=0.7 single sample ({r['sampled_problems']} problems x {k}) | {pct(r['single_accuracy'])} |
| T=0.7 majority-of-{k} | {pct(r['majority_accuracy'])} |
| T=0.7 shortest-of-{k} | {pct(r['shortest_accuracy'])} |
| T=0.7 longest-of-{k} | {pct(r['longest_accuracy'])} |
| T=0.7 exit right after the first stated answer | {pct(r['first_answer_exit_accuracy'])} |
| T=0.7 full trace (= single sample) | {pct(r['single_accuracy'])} |
| share of sampled thinking after the first stated answer | {pct(r['share_of_thinking_after_first_answer'])} |
| T=0.7 mean thinking tokens | {r['sampled_thinking_tokens']:.1f} |

Accuracy by length rank among the {k} samples (shortest first):
{" | ".join(pct(x) for x in r["accuracy_by_length_rank"])}"""


def render_card(r: dict, training: dict, name: str = "tiny-reasoner") -> str:
    budgets = "\n".join(f"| {b} | {pct(a)} |" for b, a in r["budget_accuracy"].items())
    return f"""# {name}

A {training.get('parameters', 0) / 1e6:.2f}M-parameter Llama (hidden 128, 4 layers, 4 heads of 32, FFN 512,
tied embeddings) with a character-level tokenizer of 104 symbols (`<think>`, `</think>`, `\\boxed{{`
and `</s>` are single tokens), trained from scratch on CPU by `scripts/train_tiny_reasoner.py`
in {training.get('train_seconds', '?')} s ({training.get('steps')} steps of {training.get('batch_size')} examples, seed {training.get('seed')}).

Task: `ponder.benchmarks.arith` sums (2-4 terms of 1-3 digits, zero-padded in the prompt). Traces work
column by column, state the answer, then {checks_sentence(training)}

Input format: `Compute ` then 2-4 terms of 1-3 digits, each zero-padded to three digits, joined by
`+` without spaces: `Compute 012+034`, `Compute 110+057+004`. That is the only shape it was trained
on. Unpadded operands put digits in the wrong columns (`Compute 12+34` gave eight different
answers over eight seeds), and terms of 4 digits or more than 4 terms are beyond it
(`Compute 4721+389` answers 955). ponder brings prompts into this format when it renders them for
this model (`FAMILIES["tiny"].format_problem`, `ponder/prompts/arith.py`): `Compute 12 + 34` and
`What is 12+34?` become `Compute 012+034`; a prompt it cannot bring into the format is left as it
is, with a one-line warning for the command line to show.

Measured by `python scripts/train_tiny_reasoner.py{organism_flag(training)} --eval-only` on held-out problems
(`ponder.benchmarks.arith.problems(n, seed={HELD_OUT_SEED})`, never trained on), hf engine, seeded:

{metrics_table(r)}

Forced thinking cut ({r['budget_problems']} problems, greedy; at the cap `</think>` is appended and the answer generated):

| thinking budget (tokens) | accuracy |
|---|---|
{budgets}
"""


def write_card(model_dir: Path, n_problems: int = 500, n_sampled: int = 250) -> dict:
    if n_problems <= 0:
        return {}
    results = asyncio.run(measure(model_dir, n_problems, min(n_sampled, n_problems)))
    training = json.loads((model_dir / "training.json").read_text()) if (model_dir / "training.json").exists() else {}
    (model_dir / "card.json").write_text(json.dumps(results, indent=2) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(render_card(results, training, model_dir.name))
    print((model_dir / "MODEL_CARD.md").read_text())
    return results


if __name__ == "__main__":
    write_card(ROOT / "ponder" / "assets" / (sys.argv[1] if len(sys.argv) > 1 else "tiny-reasoner"))
