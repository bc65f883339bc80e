"""The Math-Verify worker: a child process that parses and compares answers for `math_answers.py`.

The parent (`ponder.verifiers.math_answers`) starts it as
    python -P _worker.py <memory_limit_mb>
and talks to it in JSON lines: one request per line on stdin, one reply per line on a private
copy of stdout. Requests are `{"op": "extract", "text": ...}` or
`{"op": "verify", "golds": [...], "text": ...}` (plus "soft_timeout"); replies are
`{"result": str | bool | None}`, or `{"error": "..."}` when this process ran out of memory (a
failure of the machinery, which the parent retries on a fresh worker, never a verdict). Only
plain JSON crosses the boundary, never pickles.

This file must stay importable without `ponder` (it is run by path) and is never imported by
the parent at run time, so sympy and Math-Verify stay out of the caller's process.

Model output is untrusted. sympy's string parser ends in `eval`, and Math-Verify reaches it in
two ways: `ExprExtractionConfig` calls `parse_expr` on plain-text expressions, and
`sympy.Number(str)` (used by both extractors for every number) calls `sympify(str)`, which
calls `parse_expr`. `install_eval_guard` wraps both the entry (`parse_expr`) and the sink
(`eval_expr`, the one line in sympy's parser that calls `eval`) so that only arithmetic on
numerals can ever be evaluated. sympy itself also parses strings while importing some modules
lazily (`simplify` imports `sympy.physics.units`, which calls `sympify("yotta")`), so `preload`
imports and exercises them before the guard goes in: a refused import there would make every
equivalence that needs simplification silently False.
"""

import functools
import importlib
import json
import logging
import math
import os
import re
import resource
import signal
import sys
import time

__all__ = ["install_eval_guard", "handle", "main", "preload"]

# What a string may contain to reach sympy's parser: numerals and arithmetic, nothing that can
# name a Python object. Math-Verify's own regexes only ever pass such strings; anything else
# means a new code path we have not audited, so it is refused rather than evaluated.
_SAFE_SOURCE = re.compile(r"[0-9\s.,+\-*/^()]{1,2000}")
# The names sympy's transformations emit for such strings; a compiled expression that
# references (or reads an attribute named) anything else is refused.
_SAFE_NAMES = frozenset({"Integer", "Float", "Rational", "Add", "Mul", "Pow"})
_SAFE_STRING = re.compile(r"[0-9.eE+\-]*|evaluate")
_MAX_RESULT_CHARS = 1000
# Math between delimiters that holds a LaTeX command; and a command.
_LATEX_SPAN = re.compile(
    r"\$\$[^$]*?\\[A-Za-z][^$]*?\$\$|\$[^$]*?\\[A-Za-z][^$]*?\$"
    r"|\\\[.{0,4000}?\\\]|\\\(.{0,4000}?\\\)",
    re.DOTALL,
)
_COMMAND = re.compile(r"\\[A-Za-z]")


class UnsafeExpression(ValueError):
    """Raised instead of evaluating a string that is not plain arithmetic."""


class _OutOfMemory(Exception):
    """This process hit its memory limit during the request: the reply is an error."""


class _Deadline(BaseException):
    """The soft per-request deadline. A BaseException so that Math-Verify's and sympy's
    `except Exception` blocks do not swallow it and carry on working past the deadline."""


def _check_code(code) -> None:
    """Refuse a code object unless it only builds numbers with sympy constructors."""
    bad = set(code.co_names) - _SAFE_NAMES
    if bad:
        raise UnsafeExpression(f"refusing to evaluate names {sorted(bad)[:5]}")
    stack = list(code.co_consts)
    while stack:
        const = stack.pop()
        if isinstance(const, tuple):
            stack.extend(const)
        elif isinstance(const, str) and not _SAFE_STRING.fullmatch(const):
            raise UnsafeExpression("refusing to evaluate a string constant")
        elif hasattr(const, "co_code"):  # lambdas, comprehensions: never produced by numerals
            raise UnsafeExpression("refusing to evaluate nested code")


def install_eval_guard() -> None:
    """Guard every route from Math-Verify into `eval` (idempotent).

    Two layers: `parse_expr` refuses any source that is not numerals and arithmetic, and
    `eval_expr` (looked up as a module global by `parse_expr`, so references that were bound
    before the patch still go through it) refuses compiled code that names anything but
    sympy's number constructors, and evaluates with no builtins at all.
    """
    import latex2sympy2_extended.latex2sympy2 as l2s
    import math_verify.parser as mv_parser
    import sympy.parsing
    import sympy.parsing.sympy_parser as sp

    if getattr(sp.parse_expr, "_ponder_guarded", False):
        return
    original_parse, original_eval = sp.parse_expr, sp.eval_expr

    def guarded_parse_expr(s, *args, **kwargs):
        if not isinstance(s, str) or not _SAFE_SOURCE.fullmatch(s):
            raise UnsafeExpression("refusing to parse non-arithmetic text")
        return original_parse(s, *args, **kwargs)

    def guarded_eval_expr(code, local_dict, global_dict):
        if isinstance(code, str):
            code = compile(code, "<ponder-guarded>", "eval")
        _check_code(code)
        names = {k: v for k, v in global_dict.items() if k in _SAFE_NAMES}
        names["__builtins__"] = {}
        return original_eval(code, local_dict, names)

    guarded_parse_expr._ponder_guarded = True
    # sympify imports parse_expr from the module at call time; the others bound it at import.
    for module in (sp, sympy.parsing, mv_parser, l2s):
        module.parse_expr = guarded_parse_expr
    sp.eval_expr = guarded_eval_expr


# Modules sympy imports lazily on Math-Verify's paths (found by running peer projects' answer
# tables through a guard that logs refusals): sympy.physics.units parses "yotta" and friends
# while importing, the others are imported late but parse nothing today.
_LAZY_MODULES = ("sympy.physics.units", "sympy.assumptions.wrapper", "sympy.sets.setexpr")


def preload() -> None:
    """Import what sympy loads lazily, and run one comparison (Math-Verify compiles its regexes
    and loads the ANTLR parser on first use); call before the eval guard goes in."""
    for name in _LAZY_MODULES:
        importlib.import_module(name)
    _verify(["x^2-1"], r"\boxed{(x-1)(x+1)}")


class _MemoryWatch(logging.Handler):
    """Notices a MemoryError that Math-Verify caught and logged instead of raising.

    Math-Verify turns any exception in parse() or verify() into "no answer" / False and logs
    it at debug level; a MemoryError there is this process failing, not the answer being
    wrong, so the request must be reported as an error.
    """

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.tripped = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], MemoryError):
            self.tripped = True


_memory_watch = _MemoryWatch()


def _watch_memory() -> None:
    for name in ("math_verify", "latex2sympy2_extended"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [_memory_watch]  # records go nowhere else: stderr stays quiet
        logger.propagate = False
        logger.setLevel(logging.DEBUG)


def _answer_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # boxed first: reasoning models put the final answer in \boxed{}, and Math-Verify then
    # takes the rightmost one.
    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def _parse(text: str) -> list:
    from math_verify import parse

    # parsing_timeout=None: Math-Verify's timeout is signal.alarm, which would replace our own
    # SIGALRM deadline (they share one timer). The parent's hard kill is the real guarantee.
    parsed = parse(text, _answer_config(), parsing_timeout=None)
    if _from_failed_latex(text, parsed):
        # Math-Verify's current tests: LaTeX that does not parse ("$\\sum_{k=0}^n\\bigl(k\\bigr)$")
        # supplies none of its embedded numbers (0.9's number fallback reads the 0 of "k=0"),
        # while a number outside it ("... I hope. 42") still counts.
        parsed = parse(_LATEX_SPAN.sub(" ", text), _answer_config(), parsing_timeout=None)
    return parsed


def _from_failed_latex(text: str, parsed: list) -> bool:
    """Whether the number Math-Verify read came from inside math it could not parse: the
    reading's source is LaTeX with commands that does not parse on its own."""
    from math_verify import LatexExtractionConfig, parse
    from sympy import Number

    if len(parsed) != 2 or not isinstance(parsed[0], Number) or not isinstance(parsed[1], str):
        return False
    if not _COMMAND.search(parsed[1]) or not _LATEX_SPAN.search(text):
        return False
    source = "$" + parsed[1].replace("$", " ") + "$"
    latex = parse(source, [LatexExtractionConfig()], parsing_timeout=None)
    return not any(_is_sympy(p) for p in latex)


@functools.lru_cache(maxsize=256)
def _parse_gold(gold: str) -> tuple:
    """Parse a reference answer; golds are usually bare LaTeX, so box them first.

    Cached: an eval or a vote checks many answers against one gold (sympy objects are
    immutable, and a parse cut short by the deadline raises, so it is never cached).
    """
    gold = gold.strip()
    if not gold:
        return ()
    candidates = [gold] if ("\\boxed" in gold or "$" in gold) else ["\\boxed{" + gold + "}", gold]
    for candidate in candidates:
        parsed = _parse(candidate)
        if any(_is_sympy(p) for p in parsed):
            return tuple(parsed)
    return ()


def _is_sympy(obj) -> bool:
    from sympy import Basic, MatrixBase

    return isinstance(obj, (Basic, MatrixBase))


def _is_tame(expr) -> bool:
    """Whether `doit()` on expr is cheap: no big powers, big integer arguments or calculus.

    Evaluating `10^{10^{10}}` or `(10^6)!` happens in C and cannot be interrupted, so voting
    keeps such answers unevaluated instead of killing the worker.
    """
    from sympy import Add, Basic, Integral, Limit, Mul, Pow, Product, Sum, preorder_traversal

    for node in preorder_traversal(expr):
        if isinstance(node, (Integral, Limit, Product, Sum)):  # doit() may run for minutes
            return False
        if isinstance(node, Pow):
            exp = node.exp
            if not (exp.is_Rational and abs(exp.p) <= 1000 and exp.q <= 1000):
                return False
        elif isinstance(node, Basic) and node.args and not isinstance(node, (Add, Mul)):
            if any(a.is_Integer and abs(a) > 10_000 for a in node.args if isinstance(a, Basic)):
                return False
    return True


def canonical(obj) -> str | None:
    """A voting key for one parsed answer: str() of the evaluated sympy object.

    Floats become exact decimal rationals (0.5 -> 1/2) so decimals and fractions vote together;
    evaluation folds 2^{10} into 1024 and sqrt(12) into 2*sqrt(3); "x = 3" becomes 3.
    """
    from sympy import Eq, Float, Rational, Symbol

    if isinstance(obj, str):
        text = " ".join(obj.split())
        return text[:_MAX_RESULT_CHARS] or None
    try:
        if isinstance(obj, Eq) and isinstance(obj.lhs, Symbol):
            obj = obj.rhs  # "x = 3" votes with "3", as Math-Verify's verify treats them
        floats = {f: Rational(str(f)) for f in obj.atoms(Float)}
        if floats:
            obj = obj.xreplace(floats)
        if _is_tame(obj):
            obj = obj.doit()
    except Exception:  # an odd object: vote on it as it was parsed
        pass
    return str(obj)[:_MAX_RESULT_CHARS]


def _extract(text: str) -> str | None:
    parsed = _parse(text)
    sympy_objs = [p for p in parsed if _is_sympy(p)]
    return canonical(sympy_objs[0] if sympy_objs else parsed[0]) if parsed else None


def _verify(golds: list[str], text: str) -> bool | None:
    """True if `text` matches any reading of the gold; None if no reading parses."""
    from math_verify import verify

    parsed_golds = [list(p) for p in (_parse_gold(gold) for gold in golds) if p]
    if not parsed_golds:
        return None
    answer = _parse(text) if text.strip() else []
    if not answer:
        return False
    return any(bool(verify(gold, answer, timeout_seconds=None)) for gold in parsed_golds)


def _raise_deadline(signum, frame):
    raise _Deadline()


def _golds(request: dict) -> list[str]:
    golds = request.get("golds")
    if not isinstance(golds, list):
        golds = [request.get("gold", "")]
    return [str(gold) for gold in golds]


def handle(request: dict):
    """Answer one request.

    Every failure caused by the answer (unparseable, too deep, past the soft deadline) becomes
    the op's negative answer (None for extract, False for verify): that is the verdict.

    Raises:
        _OutOfMemory: this process hit its memory limit, even where Math-Verify swallowed the
            MemoryError; the parent retries on a fresh worker.
    """
    op = request.get("op")
    failed = None if op == "extract" else False
    _memory_watch.tripped = False
    signal.signal(signal.SIGALRM, _raise_deadline)
    # The soft deadline returns a timely "no" without losing this warm worker; it cannot
    # interrupt C code (a huge int power), which the parent's hard kill and RLIMIT_CPU cover.
    signal.setitimer(signal.ITIMER_REAL, max(0.05, float(request.get("soft_timeout", 4.0))))
    try:
        if op == "extract":
            result = _extract(str(request.get("text", "")))
        elif op == "verify":
            result = _verify(_golds(request), str(request.get("text", "")))
        else:
            result = failed
    except MemoryError as exc:
        raise _OutOfMemory("MemoryError") from exc
    except (_Deadline, Exception, RecursionError):
        result = failed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if _memory_watch.tripped:
        raise _OutOfMemory("MemoryError (caught inside Math-Verify)")
    return result


def _limit_cpu(seconds: float) -> None:
    """Let the kernel kill this process if one request burns more CPU than `seconds`.

    Covers the case no signal handler can: a parent that died while we were stuck in C.
    """
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _send(channel, message: dict) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def main(argv: list[str]) -> None:
    """Serve requests from stdin until it closes (the parent exited or closed us)."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # stray prints from libraries go to stderr and cannot corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    memory_mb = int(argv[1]) if len(argv) > 1 else 0
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        import math_verify  # noqa: F401

        logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # quiet during preload
        preload()
        install_eval_guard()
        _watch_memory()
    except BaseException as exc:  # report why we cannot serve instead of dying silently
        _send(channel, {"error": f"{type(exc).__name__}: {exc}"})
        return
    _send(channel, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        _limit_cpu(2 * float(request.get("soft_timeout", 4.0)) + 2)
        started = time.monotonic()
        try:
            reply = {"result": handle(request)}
        except _Deadline:  # the alarm fired just as handle() was disarming it
            reply = {"result": None if request.get("op") == "extract" else False}
        except _OutOfMemory as exc:
            reply = {"error": str(exc)}
        reply["seconds"] = round(time.monotonic() - started, 4)
        _send(channel, reply)


if __name__ == "__main__":
    main(sys.argv)
