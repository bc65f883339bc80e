"""tiny-qwen3: Qwen3's exact format (tokenizer ids, chat template, think tokens) through every controller.

What the tiny reasoner's characters hide: byte-level BPE where appended text is tokenized apart from
what the model wrote, ``<think>``/``</think>`` as added ids 151667/151668, ``<|im_end|>`` as EOS, "Wait"
as one of several BPE tokens, vLLM's ``Qwen3ForCausalLM``, a 151,936-row vocabulary. The engines'
conformance suite runs on it too (tests/test_engines.py, ``hf-qwen3`` / ``vllm-qwen3`` / ``openai-qwen3``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.benchmarks.arith import problems
from ponder.controllers import BudgetForcing, DeepConf, FirstFinish, Majority, Probe, Sampling, Single
from ponder.engines import resolve_model
from ponder.prompts import FAMILIES, family_for, render
from ponder.types import Problem
from ponder.verifiers import get_verifier

pytestmark = pytest.mark.timeout(900)

THINK, END_THINK, IM_END = 151667, 151668, 151645
PROBLEMS = [Problem(p.prompt, gold=str(p.answer), answer_kind="integer", id=p.id) for p in problems(6, seed=21)]
QWEN3 = FAMILIES["qwen3"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("tiny-qwen3"))


def test_tokenizer_has_qwen3s_ids(tokenizer):
    enc = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    assert len(tokenizer) == 151669 and tokenizer.eos_token_id == IM_END and tokenizer.pad_token_id == 151643
    assert enc("<think></think><|im_start|><|im_end|><|endoftext|>") == [THINK, END_THINK, 151644, IM_END, 151643]
    assert tokenizer.convert_ids_to_tokens(list(range(151643, 151669)))[14:16] == ["<tool_call>", "</tool_call>"]
    assert len(enc("Compute 472+389")) == 9 and enc("472") == enc("4") + enc("7") + enc("2")  # digits one per token
    # Qwen's published ids: "\n" 198, "\n\n" 271, " " 220, "system" 8948, "user" 872, "assistant" 77091
    assert enc("\n") == [198] and enc("\n\n") == [271] and enc(" ") == [220]
    ids = render(tokenizer, "Compute 1+2", QWEN3, system="Be brief.")
    assert ids[:3] == [151644, 8948, 198] and [151644, 872, 198] == ids[ids.index(872) - 1:ids.index(872) + 2]
    assert ids[-3:] == [151644, 77091, 198]
    # "Wait" is several BPE tokens: s1's appended "Wait" is the line-initial one the model writes after "\n"
    assert enc(" Wait") != enc("Wait") and len(enc("Wait")) == 1 and enc(",Wait") == enc(",") + enc("Wait")
    assert enc("\nWait") == enc("\n") + enc("Wait")


def test_chat_template_renders_qwen3s_turns(tokenizer):
    msgs = [{"role": "user", "content": "hi"}]
    assert tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    off = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False, enable_thinking=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    history = msgs + [{"role": "assistant", "content": "<think>\nx\n</think>\n\nyes"}, {"role": "user", "content": "q"}]
    assert "<|im_start|>assistant\nyes<|im_end|>" in tokenizer.apply_chat_template(history, tokenize=False)


def test_materialized_folder_is_a_qwen3_checkpoint():
    path = Path(resolve_model("tiny-qwen3"))
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["vocab_size"] == 151936
    assert config["tie_word_embeddings"] and resolve_model("tiny-qwen3") == str(path)  # cached, not rebuilt


def random_qwen3(folder: Path) -> str:
    """A random-weights Qwen3 in a folder whose name says nothing, with tiny-qwen3's tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=1024,
                      tie_word_embeddings=True, eos_token_id=IM_END, bos_token_id=151643)
    Qwen3ForCausalLM(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("tiny-qwen3")).save_pretrained(folder)
    return str(folder)


CONTROLLERS = {
    "single": lambda s: Single(sampling=s),
    "majority": lambda s: Majority(n=3, sampling=s),
    "ffs": lambda s: FirstFinish(n=3, sampling=s),
    "ffs-k": lambda s: FirstFinish(n=4, k=2, sampling=s),
    "budget_forcing-cap": lambda s: BudgetForcing(max_thinking_tokens=8, answer_tokens=6, sampling=s),
    "budget_forcing-extend": lambda s: BudgetForcing(extend=1, sampling=s),
    "ffs-of-budget-forced": lambda s: FirstFinish(n=3, sample=BudgetForcing(max_thinking_tokens=8), sampling=s),
    "deepconf": lambda s: DeepConf(n=4, warmup=2, window=8, sampling=s),
    "probe-consistent": lambda s: Probe(rule="consistent", interval=8, sampling=s),
    "probe-confidence": lambda s: Probe(rule="confidence", sampling=s),
}


@pytest.mark.vllm
@pytest.mark.parametrize("kind", ["hf", "vllm"])
async def test_a_random_qwen3_in_an_unnamed_folder_is_detected_and_runs_every_controller(tmp_path, kind):
    from ponder.engines import make_engine

    path = random_qwen3(tmp_path / "my-ft")
    engine = make_engine(kind, model=path, **({"max_model_len": 256} if kind == "vllm" else {}))
    try:
        if hasattr(engine, "start"):
            await engine.start()
        assert family_for(engine.tokenizer, engine.model_name).name == "qwen3"
        sampling = Sampling(temperature=0.8, seed=1, max_tokens=24)
        for name, make in CONTROLLERS.items():
            sol = await make(sampling).run(PROBLEMS[0], engine, verifier=get_verifier("integer"))
            assert sol.traces and sol.total_tokens > 0, name
            if name == "budget_forcing-cap":  # random text never closes its thinking: forced at the cap
                assert sol.info["forced"] and sol.traces[0].thinking_tokens == 8
        for _ in range(100):
            if engine.unfinished() == 0:
                break
            await asyncio.sleep(0.05)
        assert engine.unfinished() == 0
    finally:
        if hasattr(engine, "shutdown"):
            engine.shutdown()
        elif hasattr(engine, "aclose"):
            await engine.aclose()


GREEDY = Sampling(temperature=0.0, max_tokens=300)


async def test_budget_forcing_cap_appends_qwen3s_end_of_thinking_once(qwen3_engine):
    """At the cap the model has written 16 thinking ids; the controller appends ``</think>`` (151668) and
    the answer cue, tokenized apart from the model's ids (so the ids the model sees after the cut are
    exactly ``encode("</think>\\n\\n**Final Answer**\\n\\boxed{")``), and the model answers."""
    tok = qwen3_engine.tokenizer
    sol = await BudgetForcing(max_thinking_tokens=16, sampling=GREEDY).run(PROBLEMS[1], qwen3_engine,
                                                                           verifier=get_verifier("integer"))
    t = sol.traces[0]
    assert sol.info["forced"] and t.thinking_tokens == 16 and t.token_ids[0] == THINK
    assert t.context_ids == t.token_ids[:16] + tok.encode(QWEN3.force_suffix(), add_special_tokens=False) + \
        t.token_ids[16:]
    assert t.text.startswith(tok.decode(t.token_ids[:16]) + QWEN3.force_suffix())
    assert t.answer is not None and t.text.endswith("}<|im_end|>"), t.text
    injected = tok.encode(QWEN3.force_suffix(), add_special_tokens=False)
    assert injected[0] == END_THINK and injected.count(END_THINK) == 1


async def test_budget_forcing_extend_replaces_the_end_of_thinking_by_wait(qwen3_engine):
    """s1's minimum: the model's ``</think>`` (151668) is stripped and ``Wait`` appended as its own id
    (14190, the line-initial form; not " Wait" 13824) after the model's ``\\n``; the model continues a
    check line from there, in distribution."""
    sol = await BudgetForcing(extend=1, sampling=Sampling(temperature=0.0, max_tokens=500)).run(
        PROBLEMS[2], qwen3_engine, verifier=get_verifier("integer"))
    t = sol.traces[0]
    assert sol.info == {"waits": 1, "forced": False}
    assert t.token_ids.count(END_THINK) == 2 and t.text.count("</think>") == 1  # the first one was replaced
    thinking = t.text[:t.text.index("</think>")]
    assert "\nWait, check d" in thinking and t.answer is not None and t.text.endswith("}<|im_end|>"), t.text


async def test_ffs_majority_deepconf_probe_on_tiny_qwen3(qwen3_engine):
    verifier, sampling = get_verifier("integer"), Sampling(temperature=0.7, top_p=0.95, seed=3, max_tokens=300)
    for i, ctrl in enumerate((FirstFinish(n=4, sampling=sampling), Majority(n=4, sampling=sampling),
                              DeepConf(n=6, warmup=3, window=16, sampling=sampling),
                              Probe(rule="confidence", sampling=GREEDY),
                              FirstFinish(n=4, sample=BudgetForcing(max_thinking_tokens=24), sampling=sampling))):
        sol = await ctrl.run(PROBLEMS[3], qwen3_engine, verifier=verifier)
        assert sol.answer is not None and all(t.token_ids for t in sol.traces), ctrl.name
        if i == 0:  # plain FFS: sampled lengths differ, the losers were stopped
            assert sum(t.aborted for t in sol.traces) >= 1, [t.tokens for t in sol.traces]
    for _ in range(100):
        if qwen3_engine.unfinished() == 0:
            break
        await asyncio.sleep(0.05)
    assert qwen3_engine.unfinished() == 0


async def test_greedy_tiny_qwen3_is_mostly_right(qwen3_engine):
    verifier = get_verifier("integer")
    sols = await asyncio.gather(*(Single(sampling=GREEDY).run(p, qwen3_engine, verifier=verifier) for p in PROBLEMS))
    right = sum(s.answer == p.gold for s, p in zip(sols, PROBLEMS))
    for s in sols:
        assert s.traces[0].token_ids[0] == THINK and s.traces[0].token_ids[-1] == IM_END
        assert s.traces[0].token_ids.count(END_THINK) == 1
    assert right >= 4, [s.traces[0].text for s in sols]


def ponder_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("ponder")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.vllm
@pytest.mark.slow
def test_cli_solve_budget_forcing_on_vllm_shows_qwen3s_ids():
    out = ponder_cli("solve", "Compute 472+389", "--model", "tiny-qwen3", "--engine", "vllm", "-c", "budget_forcing",
                     "--max-thinking-tokens", "16", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    sol = json.loads(out.stdout)
    trace = sol["traces"][0]
    # what the model saw after the prompt: its 16 thinking ids, then </think> once (appended), then the answer
    seen = trace["context_ids"]
    assert seen.count(END_THINK) == 1 and seen.index(END_THINK) == trace["thinking_tokens"] == 16
    assert seen[:16] == trace["token_ids"][:16] and END_THINK not in trace["token_ids"]
    assert sol["answer"] is not None and sol["info"]["forced"] and seen[-1] == IM_END


def test_cli_eval_on_tiny_qwen3(tmp_path):
    out = ponder_cli("eval", "--model", "tiny-qwen3", "-c", "majority", "-n", "2", "--limit", "6",
                     "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and sum(bool(r["correct"]) for r in rows) >= 3
