"""Benchmarks by name: each turns its dataset's rows into `Problem`s (id, prompt, gold, answer kind).

Hub benchmarks load with ``datasets``; every one also loads from a local file in the dataset's own
schema (``--data path.jsonl|.parquet|.csv``), for users who are offline or behind a gate. ``arith``
is generated offline (the tiny reasoner's held-out set, seed 1). A file in ponder's own schema
(see ``data.py``) loads with ``load_problems(None, data=FILE)``.

    python -c "from ponder.benchmarks.registry import load_problems; print(load_problems('arith', limit=2))"
    python -c "from ponder.benchmarks.registry import load_problems; print(len(load_problems('aime24')))"  # hub
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ponder.benchmarks.data import (DataError, PONDER_SCHEMA, Row, first_line, answer_field, check_unique, convert_rows,
                                   finite_gold, load_ponder_file, ponder_problem, read_rows, row_id, text_field)
from ponder.types import AnswerKind, Problem

__all__ = ["Benchmark", "HubSource", "HubError", "BENCHMARKS", "get_benchmark", "load_problems", "shuffle_choices",
           "MATH_INSTRUCTION", "CHOICE_INSTRUCTION"]

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""Appended to math problems (DeepSeek-R1's recommended prompt)."""
CHOICE_INSTRUCTION = "Please reason step by step, and put the letter of your final answer (A, B, C or D) within \\boxed{}."
"""Appended to multiple-choice questions after the lettered options."""


class HubError(DataError):
    """The hub could not provide a benchmark; the message shows the ``--data`` alternative."""


@dataclass(frozen=True)
class HubSource:
    """One split of a dataset on the Hugging Face hub."""

    path: str
    """Dataset repository, e.g. ``HuggingFaceH4/aime_2024``."""
    config: str | None = None
    """Dataset configuration (subset), e.g. ``gpqa_diamond``."""
    split: str = "test"
    """Split to read."""

    @property
    def name(self) -> str:
        return self.path + (f" ({self.config})" if self.config else "") + f" [{self.split}]"


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark: where its rows come from and how a row becomes a `Problem`."""

    name: str
    """Registry key (``--benchmark``)."""
    answer_kind: AnswerKind
    """Verifier of its answers."""
    convert: Callable[[Row], Problem]
    """A record in the benchmark's own schema (hub or local file) to a Problem; DataError when malformed."""
    schema: str
    """The fields a local file needs, in one line (shown in errors)."""
    hub: tuple[HubSource, ...] = ()
    """Hub splits, concatenated in order; empty for generated benchmarks."""
    generate: Callable[[int | None], list[Problem]] | None = None
    """Offline generator (given the limit) used when no file is given, instead of the hub."""
    gated: bool = False
    """The hub dataset needs accepting its terms and a login."""

    def load(self, data: str | Path | None = None, limit: int | None = None) -> list[Problem]:
        """The benchmark's problems from ``data`` (a local file), the generator, or the hub; first ``limit``."""
        if data is None and self.generate is not None:
            return self.generate(limit)
        rows = read_rows(data) if data is not None else _hub_rows(self)
        problems = convert_rows(rows, self.convert)
        check_unique(problems, [row.where for row in rows])
        return problems[:limit] if limit else problems


def _hub_rows(bench: Benchmark) -> list[Row]:
    alternative = (f"run with --benchmark {bench.name} --data FILE.jsonl|.parquet holding its rows "
                   f"({bench.schema})")
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a dependency
        raise HubError(f"{bench.name}: the datasets package is missing ({first_line(exc)}); {alternative}") from exc
    rows: list[Row] = []
    for src in bench.hub:
        try:
            ds = datasets.load_dataset(src.path, src.config, split=src.split)
        except Exception as exc:
            what = "cannot reach the Hugging Face hub to load" if _unreachable(exc) else "cannot load"
            gate = ("it is gated: accept its terms on huggingface.co and log in (hf auth login), or "
                    if bench.gated else "")
            raise HubError(f"{bench.name}: {what} {src.name} ({first_line(exc)}); {gate}{alternative}") from exc
        for i, item in enumerate(ds):
            item = dict(item)
            if len(bench.hub) > 1 and item.get("id") in (None, ""):
                item["id"] = f"{src.config or src.path}-{i}"
            rows.append(Row(f"{src.name} row {i + 1}", len(rows), item))
    return rows


def _unreachable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        names = " ".join(k.__name__ for k in type(seen).__mro__)
        text = str(seen).lower()
        if any(w in names for w in ("Connect", "Timeout", "Offline")) or any(
                w in text for w in ("offline", "connection", "resolve", "max retries", "network", "unreachable")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _integer_gold(answer: str) -> str:
    """AIME answers are integers written with leading zeros ("033"): store them as "33"."""
    m = re.fullmatch(r"\s*\$?\s*\+?0*(\d+)\s*\$?\s*", answer)
    return (m.group(1) or "0") if m else answer


def _aime(prefix: str) -> Callable[[Row], Problem]:
    def convert(row: Row) -> Problem:
        rid = row_id(row, "id", prefix)
        problem = text_field(row, rid, "problem", "question", "Problem", "Question")
        gold = _integer_gold(answer_field(row, rid, "answer", "Answer"))
        return Problem(f"{problem.strip()}\n\n{MATH_INSTRUCTION}", gold, "integer", rid)
    return convert


def shuffle_choices(qid: str, correct: str, incorrect: list[str], seed: int = 0) -> tuple[list[str], str]:
    """The four options in an order fixed by ``(seed, qid)``, and the letter of the correct one.

    The order depends only on the question id (not on Python's hash seed or the row order), so
    runs on different machines and resumed runs see the same question.
    """
    options = [correct, *incorrect]
    order = list(range(len(options)))
    random.Random(f"gpqa/{seed}/{qid}").shuffle(order)
    return [options[i] for i in order], "ABCD"[order.index(0)]


def _gpqa(row: Row) -> Problem:
    rid = row_id(row, "Record ID")
    question = text_field(row, rid, "Question")
    correct = text_field(row, rid, "Correct Answer").strip()
    incorrect = [text_field(row, rid, f"Incorrect Answer {j}").strip() for j in (1, 2, 3)]
    options, gold = shuffle_choices(rid, correct, incorrect)
    lettered = "\n".join(f"{letter}) {text}" for letter, text in zip("ABCD", options))
    return Problem(f"{question.strip()}\n\n{lettered}\n\n{CHOICE_INSTRUCTION}", gold, "choice", rid)


def _math500(row: Row) -> Problem:
    rid = row_id(row, "unique_id")
    problem = text_field(row, rid, "problem")
    return Problem(f"{problem.strip()}\n\n{MATH_INSTRUCTION}", answer_field(row, rid, "answer"), "math", rid)


def _gsm8k(row: Row) -> Problem:
    rid = row_id(row, "id")
    question = text_field(row, rid, "question")
    answer = text_field(row, rid, "answer")
    if "####" not in answer:
        raise DataError(f"{row.where}: row {rid!r}: field 'answer': no final answer after '####'")
    gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise DataError(f"{row.where}: row {rid!r}: field 'answer': empty after '####'")
    finite_gold(row, rid, "answer", gold)
    return Problem(f"{question.strip()}\n\n{MATH_INSTRUCTION}", gold, "integer", rid)


def _arith(limit: int | None) -> list[Problem]:
    from ponder.benchmarks.arith import HELD_OUT_POOL, HELD_OUT_SEED, problems

    if limit is not None and limit > HELD_OUT_POOL:  # beyond it, RL training problems may reappear
        raise ValueError(f"arith: at most {HELD_OUT_POOL} held-out problems (got limit={limit})")
    return [Problem(p.prompt, str(p.answer), "integer", p.id) for p in problems(limit or 500, seed=HELD_OUT_SEED)]


_AIME = "problem (or question), answer; optional id"
BENCHMARKS: dict[str, Benchmark] = {
    "aime24": Benchmark("aime24", "integer", _aime("aime24-"), _AIME,
                        (HubSource("HuggingFaceH4/aime_2024", split="train"),)),
    "aime25": Benchmark("aime25", "integer", _aime("aime25-"), _AIME,
                        (HubSource("opencompass/AIME2025", "AIME2025-I"), HubSource("opencompass/AIME2025", "AIME2025-II"))),
    "gpqa-diamond": Benchmark("gpqa-diamond", "choice", _gpqa,
                              "Question, Correct Answer, Incorrect Answer 1..3; optional Record ID",
                              (HubSource("Idavidrein/gpqa", "gpqa_diamond", split="train"),), gated=True),
    "math500": Benchmark("math500", "math", _math500, "problem, answer; optional unique_id",
                         (HubSource("HuggingFaceH4/MATH-500"),)),
    "gsm8k": Benchmark("gsm8k", "integer", _gsm8k, "question, answer ending in '#### N'",
                       (HubSource("openai/gsm8k", "main"),)),
    "arith": Benchmark("arith", "integer", lambda row: ponder_problem(row, "integer"), PONDER_SCHEMA,
                       generate=_arith),
}
"""Every benchmark by name."""


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark; DataError naming the choices otherwise."""
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)} (or --data FILE alone)")
    return BENCHMARKS[name]


def load_problems(benchmark: str | None, data: str | Path | None = None, limit: int | None = None) -> list[Problem]:
    """Problems of a named benchmark (from the hub, a generator or ``data``), or of a ponder-schema file.

    Args:
        benchmark: a key of `BENCHMARKS`; None with ``data`` reads ``data`` in ponder's own schema,
            None without ``data`` means ``arith``.
        data: a local file in the benchmark's schema.
        limit: keep the first ``limit`` problems (arith: generate that many; default 500).
    """
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be >= 1 (got {limit})")
    if benchmark is None and data is not None:
        problems = load_ponder_file(data)
        return problems[:limit] if limit else problems
    return get_benchmark(benchmark or "arith").load(data, limit)
