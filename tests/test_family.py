"""Model family detection from the tokenizer (added tokens, chat template), not the model's name.

Tokenizers are built here with the `tokenizers` library in each family's shape, saved into a folder
whose name says nothing (``my-ft``) and loaded back with ``AutoTokenizer``: no hub, no model.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.engines import TINY_REASONER
from ponder.prompts import FAMILY_ENV, detect_family, family_for

R1_USER, R1_ASSISTANT, R1_EOS = "<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"

CHATML_TURNS = ("{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
                "'<|im_end|>\\n' }}{%- endfor %}")
QWEN3 = (CHATML_TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
         "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
         "{%- endif %}{%- endif %}")
QWQ = CHATML_TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
R1 = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ '" + R1_USER + "' + message['content'] }}"
      "{% elif message['role'] == 'assistant' %}{% set content = message['content'].split('</think>')[-1] %}"
      "{{ '" + R1_ASSISTANT + "' + content + '" + R1_EOS + "' }}{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}{{ '" + R1_ASSISTANT + "<think>\\n' }}{% endif %}")
R1_OLD = ("{% for message in messages %}{{ '" + R1_USER + "' + message['content'] }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '" + R1_ASSISTANT + "' }}{% endif %}")  # </think> only as a token
S1 = CHATML_TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<|im_start|>think\\n' }}{%- endif %}"
PHI4 = ("{{ '<|im_start|>system<|im_sep|>You are Phi. Think in <think> {Thought} </think>, then answer.<|im_end|>' }}"
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + "
        "'<|im_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}")
USER_ASSISTANT = ("{% for message in messages %}<|user|>{{ message['content'] }}{% endfor %}"
                  "{% if add_generation_prompt %}<|assistant|>{% endif %}")

THINK = ("<think>", "</think>")
CHATML = ("<|im_start|>", "<|im_end|>")

SHAPES = {  # name: (chat template, added tokens, special tokens, expected family)
    "qwen3": (QWEN3, THINK, CHATML, "qwen3"),
    "qwq": (QWQ, THINK, CHATML, "qwen3"),
    "r1-distill": (R1, THINK, (R1_USER, R1_ASSISTANT, R1_EOS) + CHATML, "deepseek-r1"),
    "r1-distill-old-template": (R1_OLD, THINK, (R1_USER, R1_ASSISTANT, R1_EOS), "deepseek-r1"),
    "s1": (S1, (), CHATML, "s1"),
    "phi4-reasoning": (PHI4, THINK, CHATML + ("<|im_sep|>",), "phi4-reasoning"),
    "other-think-tokens": (USER_ASSISTANT, THINK, ("<|user|>", "<|assistant|>"), "deepseek-r1"),
}
PLAIN = (CHATML_TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}", (), CHATML)


def _tokenizer(folder: Path, template: str, added=(), special=()):
    """A tiny word-level tokenizer with those tokens and that chat template, saved to ``folder`` and loaded back."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "b": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", chat_template=template)
    tok.add_special_tokens({"additional_special_tokens": list(special)})
    tok.add_tokens(list(added))
    tok.save_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(autouse=True)
def no_family_env(monkeypatch):
    """No ``$PONDER_FAMILY`` during a test, and none left behind by one."""
    monkeypatch.setenv(FAMILY_ENV, "unset")
    monkeypatch.delenv(FAMILY_ENV)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_family_detected_from_the_tokenizer_not_the_name(shape, tmp_path, caplog):
    template, added, special, expected = SHAPES[shape]
    folder = tmp_path / "my-ft"
    tok = _tokenizer(folder, template, added, special)
    assert detect_family(tok) == expected
    with caplog.at_level(logging.WARNING, logger="ponder.prompts"):
        assert family_for(tok, name=str(folder)).name == expected
        assert family_for(tok).name == expected  # the name from the tokenizer itself
    assert not caplog.records


def test_nothing_found_warns_once_and_assumes_deepseek_r1(tmp_path, caplog):
    folder = tmp_path / "my-ft"
    tok = _tokenizer(folder, *PLAIN)
    assert detect_family(tok) is None
    with caplog.at_level(logging.WARNING, logger="ponder.prompts"):
        names = [family_for(tok, name=str(folder)).name for _ in range(3)]
    assert names == ["deepseek-r1"] * 3
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "\n" not in message and str(folder) in message and "--family" in message and "deepseek-r1" in message


def test_the_name_is_the_second_step(tmp_path, caplog):
    folder = tmp_path / "s1-32B"  # s1 models ship Qwen2.5's tokenizer: nothing to detect
    tok = _tokenizer(folder, *PLAIN)
    with caplog.at_level(logging.WARNING, logger="ponder.prompts"):
        assert family_for(tok, name=str(folder)).name == "s1"
        assert family_for(name="Qwen/Qwen3-8B").name == "qwen3"  # no tokenizer: the name alone, no warning
        assert family_for(name="/models/my-ft").name == "deepseek-r1"
    assert not caplog.records


def test_the_tiny_reasoner_stays_tiny(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY_REASONER)
    assert family_for(tok, TINY_REASONER).name == "tiny"
    assert family_for(tok).name == "tiny"
    copy = tmp_path / "my-ft"  # its tokenizer alone (a renamed copy) is recognised too
    shutil.copytree(TINY_REASONER, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    assert family_for(AutoTokenizer.from_pretrained(str(copy)), str(copy)).name == "tiny"


def test_an_explicit_family_wins_then_the_environment(tmp_path, monkeypatch):
    folder = tmp_path / "my-ft"
    tok = _tokenizer(folder, *SHAPES["qwen3"][:3])
    assert family_for(tok, str(folder), family="s1").name == "s1"
    monkeypatch.setenv(FAMILY_ENV, "phi4-reasoning")  # what --family sets
    assert family_for(tok, str(folder)).name == "phi4-reasoning"
    assert family_for(name=TINY_REASONER).name == "phi4-reasoning"
    assert family_for(tok, str(folder), family="s1").name == "s1"
    monkeypatch.setenv(FAMILY_ENV, "nope")
    with pytest.raises(ValueError, match=f"unknown model family in \\${FAMILY_ENV} 'nope'; choose one of"):
        family_for(tok, str(folder))


def test_detection_reads_no_signal_from_stubs():
    class Stub:
        chat_template = None

    assert detect_family(None) is None and detect_family(Stub()) is None and detect_family(object()) is None


async def test_family_travels_on_the_engine_not_the_environment(tmp_path):
    """``--family`` is checked once (`use_family`), given to `open_engine`, and read by the
    controllers from the engine; the process environment is left alone."""
    import os

    from ponder.cli.options import use_family
    from ponder.controllers.base import make_context
    from ponder.engines import open_engine
    from ponder.eval.runner import RunConfig
    from ponder.types import Problem

    assert use_family(None) is None and use_family("qwen3") == "qwen3" and FAMILY_ENV not in os.environ
    with pytest.raises(ValueError, match="unknown --family value 'nope'; choose one of tiny, qwen3"):
        use_family("nope")
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        await open_engine("hf", family="nope")  # before any model loads
    engine = await open_engine("hf", family="s1")
    try:
        assert engine.family == "s1" and make_context(Problem("Compute 1+2"), engine).family.name == "s1"
        plain = await open_engine("hf")
        assert make_context(Problem("Compute 1+2"), plain).family.name == "tiny"
        await plain.aclose()
    finally:
        await engine.aclose()
    identity = RunConfig(out=str(tmp_path), family="qwen3").identity([Problem("x")])
    assert identity["family"] == "qwen3" and "family" not in RunConfig(out=str(tmp_path)).identity([Problem("x")])


@pytest.mark.parametrize("command", [["solve", "Compute 1+2"], ["eval", "--limit", "1"], ["serve"]])
def test_cli_unknown_family_exits_2_with_one_line(command):
    r = subprocess.run([sys.executable, "-m", "ponder.cli", *command, "--family", "nope"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2
    assert "unknown --family value 'nope'" in r.stderr and "deepseek-r1" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
