"""The embedded tiny reasoner: shipped files, tokenizer contract, and real behaviour on the task."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from ponder.engines import TINY_REASONER, complete
from ponder.benchmarks.arith import first_stated_answer, problems
from ponder.prompts import FAMILIES, render
from ponder.types import SamplingParams


def test_assets_are_small_and_complete():
    folder = Path(TINY_REASONER)
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 10 * 2**20
    for name in ("config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md", "card.json"):
        assert (folder / name).exists(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 4


def test_tokenizer_has_single_token_delimiters(hf_engine):
    tok = hf_engine.tokenizer
    assert len(tok) == 104
    for piece in ("<think>", "</think>", "\\boxed{", "</s>"):
        assert len(tok.encode(piece, add_special_tokens=False)) == 1, piece
    text = "<think>\nd1: 1+2+c0=03\n</think>\\boxed{3}"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


async def test_reasons_in_the_trained_format_and_mostly_right(hf_engine):
    items = problems(24, seed=1)
    outs = await asyncio.gather(*(
        complete(hf_engine, render(hf_engine.tokenizer, p.prompt, FAMILIES["tiny"]), SamplingParams(max_tokens=400))
        for p in items))
    texts = [hf_engine.tokenizer.decode(o.token_ids) for o in outs]
    assert all(t.startswith("<think>\nd1: ") and "</think>\\boxed{" in t for t in texts)
    first_right = sum(first_stated_answer(t) == p.answer for t, p in zip(texts, items))
    assert first_right >= 12  # well above chance (the card reports the exact figures)


async def test_answers_after_a_forced_cut(hf_engine):
    """Cut the thinking anywhere: appending </think> still yields a boxed number."""
    tok = hf_engine.tokenizer
    end = tok.convert_tokens_to_ids("</think>")
    items = problems(8, seed=1)
    for cut in (20, 45, 70):
        prompts = [render(tok, p.prompt, FAMILIES["tiny"]) for p in items]
        heads = await asyncio.gather(*(complete(hf_engine, ids, SamplingParams(max_tokens=cut)) for ids in prompts))
        tails = await asyncio.gather(*(
            complete(hf_engine, ids + h.token_ids + [end], SamplingParams(max_tokens=12))
            for ids, h in zip(prompts, heads)))
        closed = sum(bool(re.match(r"\\boxed\{\d+\}", tok.decode(t.token_ids))) for t in tails)
        assert closed >= 6, f"cut at {cut}: only {closed}/8 answers closed their box"


def test_rl_training_problems_share_nothing_with_the_held_out_pool():
    """The recipes' RL set (seed 2, 2000 problems) vs every held-out problem an evaluation can draw."""
    import pytest

    from ponder.benchmarks.arith import HELD_OUT_POOL
    from ponder.benchmarks.registry import load_problems
    from ponder.rl.train import TrainConfig, load_config, load_training_problems

    recipe = load_config(str(Path(__file__).resolve().parents[1] / "recipes" / "tiny-sgrpo.yaml"))
    train = load_training_problems(recipe)
    held_out = load_problems("arith", None, HELD_OUT_POOL)
    assert len(train) == recipe.limit == 2000 and len(held_out) == HELD_OUT_POOL
    assert {p.prompt for p in train} & {p.prompt for p in held_out} == set()
    # without the exclusion the same draw does collide, so the check above can fail
    assert {p.prompt for p in problems(2000, seed=2)} & {p.prompt for p in load_problems("arith", None, 500)}
    assert len(load_training_problems(TrainConfig(limit=50))) == 50
    with pytest.raises(ValueError, match="at most 2000 held-out"):
        load_problems("arith", None, HELD_OUT_POOL + 1)


async def test_verbose_organism_overthinks_without_harm():
    """tiny-reasoner-verbose: the same format, and its checks restate the answer it first stated."""
    from ponder.benchmarks.arith import ANSWER_PHRASE
    from ponder.engines import TINY_REASONER_VERBOSE, make_engine

    folder = Path(TINY_REASONER_VERBOSE)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md", "card.json", "training.json"):
        assert (folder / name).exists(), name
    assert json.loads((folder / "training.json").read_text())["corrupt_p"] == 0.0
    engine = make_engine("hf", model="tiny-reasoner-verbose")
    try:
        items = problems(24, seed=1)
        outs = await asyncio.gather(*(
            complete(engine, render(engine.tokenizer, p.prompt, FAMILIES["tiny"]), SamplingParams(max_tokens=400))
            for p in items))
    finally:
        await engine.aclose()
    texts = [engine.tokenizer.decode(o.token_ids) for o in outs]
    assert all(t.startswith("<think>\nd1: ") and "</think>\\boxed{" in t for t in texts)
    stated = [[int(x) for x in re.findall(re.escape(ANSWER_PHRASE) + r"(\d+)", t.split("</think>")[0])] for t in texts]
    checked = [s for s in stated if len(s) > 1]
    assert len(checked) >= 6  # it does check after answering...
    assert sum(len(set(s)) == 1 for s in checked) >= 0.9 * len(checked)  # ...and the checks change nothing
    assert sum(s[0] == p.answer for s, p in zip(stated, items) if s) >= 12


async def test_harmless_organism_checks_cannot_change_the_answer():
    """tiny-reasoner-harmless: it states the answer once, often checks after it, and boxes what it stated."""
    from ponder.benchmarks.arith import ANSWER_PHRASE
    from ponder.engines import TINY_REASONER_HARMLESS, make_engine

    folder = Path(TINY_REASONER_HARMLESS)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md", "card.json", "training.json"):
        assert (folder / name).exists(), name
    assert json.loads((folder / "training.json").read_text())["restate"] is False
    engine = make_engine("hf", model="tiny-reasoner-harmless")
    try:
        items = problems(24, seed=1)
        outs = await asyncio.gather(*(
            complete(engine, render(engine.tokenizer, p.prompt, FAMILIES["tiny"]),
                     SamplingParams(max_tokens=400, temperature=0.7, seed=i))
            for i, p in enumerate(items)))
    finally:
        await engine.aclose()
    texts = [engine.tokenizer.decode(o.token_ids) for o in outs]
    assert all(t.startswith("<think>\n") and "</think>\\boxed{" in t for t in texts)
    # like every organism it learnt forced exits (cut traces), so a sample may close its thinking early
    thinking = [th for th in (t.split("</think>")[0] for t in texts) if ANSWER_PHRASE in th]
    assert len(thinking) >= 20
    assert all(th.count(ANSWER_PHRASE) == 1 for th in thinking)  # stated once, never restated
    assert sum("wait, check" in th.split(ANSWER_PHRASE)[1] for th in thinking) >= 6  # but checked after
    full = [(t, p) for t, p in zip(texts, items) if ANSWER_PHRASE in t.split("</think>")[0]]
    stated = [int(re.search(re.escape(ANSWER_PHRASE) + r"(\d+)", t).group(1)) for t, _ in full]
    boxed = [int(re.search(r"\\boxed\{(\d+)\}", t).group(1)) for t, _ in full]
    assert sum(s == b for s, b in zip(stated, boxed)) >= len(full) - 1  # the box copies the one stated answer
    assert sum(s == p.answer for s, (_, p) in zip(stated, full)) >= 18
