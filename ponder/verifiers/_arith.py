"""Exact arithmetic on the numbers in an answer, for the integer verifier (stdlib only).

`tokens` splits text into numbers, operators, brackets and everything else; `evaluate` computes a
run of arithmetic tokens exactly, with `fractions.Fraction`:

    2^5 -> 32      1{,}033 -> 1033      \\frac{12}{4} -> 3      \\sqrt{49} -> 7
    5! -> 120      \\binom{5}{2} -> 10      \\sqrt[3]{27} -> 3      4^{1/2} -> 2
    \\sqrt 2, \\frac{1+\\sqrt5}{2}, 3.5 -> not integers      10^{10^{10}} -> refused (too big)

A root or fractional power of a negative number is refused: sympy (and so Math-Verify) reads
`\\sqrt[3]{-8}` as a complex principal root, not -2.

Numbers follow Math-Verify's grammar: thousands groups are exactly three digits after a lead of
one to three ("12,000,023", "1 000", "1{,}033", "1\\,033"); any other comma between digits
("1,22": a decimal comma, or "1,2,3": a list) makes a number that is never an integer. Work is
bounded: numerals over 1000 digits and powers over about 1200 digits are refused, never computed.
"""

import math
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["NotArithmetic", "Token", "evaluate", "tokens"]

_MAX_DIGITS = 1000
_MAX_TOKENS = 200
_MAX_BITS = 4000  # about 1200 decimal digits: 2^4000 is cheap, 10^{10^{10}} is not

_TOKEN = re.compile(
    r"(?P<num>[1-9]\d{0,2}(?:(?:,|\{,\}|\\,)\d{3})+(?!\d|,\d)(?:\.\d+)?"  # 12,000,023  1{,}033
    r"|\d{1,3}(?:\ \d{3})+(?![\d.,])"  # 1 000
    r"|\d+(?:\.\d+)?(?!\d|,\d)|\.\d+)"  # 33  33.5  .5
    r"|(?P<badnum>\d+(?:[.,]\d+)+)"  # 1,22  1,2,3  1234,567: a decimal comma or a list
    r"|(?P<op>\*\*|!(?!=)|[-+*/^×÷·−]"  # "!" is a factorial ("!=" is not)
    r"|\\times(?![A-Za-z])|\\cdot(?![A-Za-z])|\\div(?![A-Za-z]))"
    r"|(?P<cmd>\\[dt]?frac(?![A-Za-z])|\\sqrt(?![A-Za-z])|\\[dt]?binom(?![A-Za-z]))"
    r"|(?P<open>[({\[])|(?P<close>[)}\]])"
    r"|(?P<eq>=|≈|\\approx(?![A-Za-z])|\\equiv(?![A-Za-z]))"
    r"|(?P<space>\s+|\\[,;:! ]|~|\\q?quad(?![A-Za-z])|\\left(?![A-Za-z])|\\right(?![A-Za-z])"
    r"|\\displaystyle(?![A-Za-z]))"
    # Latin, Greek and Cyrillic letters make words ("3x", "2π" are not numbers); scripts written
    # without spaces (Chinese, Japanese) would glue every number to a word, so they do not.
    r"|(?P<word>\\[A-Za-z]+|[A-Za-z_\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]+)"
    r"|(?P<other>.)",
    re.DOTALL,
)
ARITHMETIC = frozenset({"num", "badnum", "op", "cmd", "open", "close"})
"""Token kinds that can be part of an arithmetic run."""


class NotArithmetic(ValueError):
    """The tokens are not exact arithmetic on numerals, or the result would be too big."""


@dataclass(frozen=True)
class Token:
    """One token of an answer."""

    kind: str
    """num, badnum, op, cmd, open, close, eq, space, word or other."""
    text: str
    """The characters matched."""
    start: int
    """Where the token starts in the text."""


def tokens(text: str) -> list[Token]:
    """Split `text` into tokens (every character belongs to exactly one)."""
    return [Token(m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(text)]


def _numeral(text: str) -> Fraction:
    digits = re.sub(r"\{,\}|\\,|[ ,]", "", text)
    if len(digits) > _MAX_DIGITS:
        raise NotArithmetic("numeral too long")
    return Fraction(digits)


class _Parser:
    """Recursive descent over arithmetic tokens (spaces already removed)."""

    _MUL = frozenset({"*", "/", "×", "÷", "·", "\\times", "\\cdot", "\\div"})

    def __init__(self, toks: list[Token]):
        self.toks, self.i, self.depth = toks, 0, 0

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise NotArithmetic("expression ends early")
        self.i += 1
        return tok

    def expr(self) -> Fraction:
        self.depth += 1
        if self.depth > 100:
            raise NotArithmetic("nested too deeply")
        value = self.term()
        while (tok := self.peek()) is not None and tok.text in ("+", "-", "−"):
            self.i += 1
            value = value + self.term() if tok.text == "+" else value - self.term()
        self.depth -= 1
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while (tok := self.peek()) is not None:
            if tok.text in self._MUL:
                self.i += 1
                right = self.unary()
                if tok.text in ("/", "÷", "\\div"):
                    if right == 0:
                        raise NotArithmetic("division by zero")
                    value /= right
                else:
                    value *= right
            elif tok.kind == "open" or tok.text == "\\sqrt":  # 2(3+4), 2\sqrt{9}
                value *= self.unary()
            elif tok.kind == "cmd":  # 2\frac{1}{2} is the mixed number 5/2 to some, 1 to others
                raise NotArithmetic("a number before a fraction is ambiguous")
            else:
                break
        return value

    def unary(self) -> Fraction:
        tok = self.peek()
        if tok is not None and tok.text in ("+", "-", "−"):
            self.i += 1
            value = self.unary()
            return value if tok.text == "+" else -value
        return self.power()

    def power(self) -> Fraction:
        base = self.atom()
        if (tok := self.peek()) is not None and tok.text == "!":  # 5! (postfix, binds first)
            self.i += 1
            if (after := self.peek()) is not None and after.text == "!":
                raise NotArithmetic("a double factorial")  # 5!! is 15, not (5!)!
            base = _factorial(base)
        tok = self.peek()
        if tok is None or tok.text not in ("^", "**"):
            return base
        self.i += 1
        return _power(base, self.unary())

    def atom(self) -> Fraction:
        tok = self.take()
        if tok.kind == "num":
            return _numeral(tok.text)
        if tok.kind == "open":
            value = self.expr()
            if self.take().kind != "close":
                raise NotArithmetic("unbalanced brackets")
            return value
        if tok.kind == "cmd" and tok.text.endswith("frac"):
            return self._frac()
        if tok.kind == "cmd" and tok.text.endswith("binom"):
            return _binom(self.atom(), self.atom())
        if tok.kind == "cmd":  # \sqrt, or \sqrt[n]
            degree = Fraction(2)
            nxt = self.peek()
            if nxt is not None and nxt.text == "[":
                self.i += 1
                degree = self.expr()
                if self.take().text != "]":
                    raise NotArithmetic("unbalanced brackets")
            return _root(self.atom(), degree)
        raise NotArithmetic(f"unexpected {tok.text!r}")

    def _frac(self) -> Fraction:
        nxt = self.peek()
        if nxt is not None and nxt.kind == "num" and nxt.text.isdigit() and len(nxt.text) >= 2:
            # \frac12 is \frac{1}{2}: LaTeX reads one digit per argument
            self.i += 1
            rest = nxt.text[2:]
            if rest:
                self.toks.insert(self.i, Token("num", rest, nxt.start + 2))
            numerator, denominator = Fraction(nxt.text[0]), Fraction(nxt.text[1])
        else:
            numerator, denominator = self.atom(), self.atom()
        if denominator == 0:
            raise NotArithmetic("division by zero")
        return numerator / denominator


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:  # 4^{1/2}: exact only when the root is
        base, exponent = _root(base, Fraction(exponent.denominator)), Fraction(exponent.numerator)
    n = exponent.numerator
    size = max(abs(base.numerator), base.denominator)
    if size > 1 and abs(n) * size.bit_length() > _MAX_BITS:
        raise NotArithmetic("power too big")
    if base == 0 and n < 0:
        raise NotArithmetic("division by zero")
    return base**n


def _iroot(n: int, k: int) -> int:
    """The integer k-th root of n >= 0, rounded down (Newton's method on integers)."""
    if n < 2:
        return n
    x = 1 << -(-n.bit_length() // k)  # a power of two at or above the root
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            return x
        x = y


def _root(value: Fraction, degree: Fraction) -> Fraction:
    """The exact `degree`-th root of `value`, when it is rational."""
    if degree.denominator != 1 or not 1 <= degree.numerator <= 1000:
        raise NotArithmetic("unusual root")
    if value < 0:
        raise NotArithmetic("root of a negative number")
    k = degree.numerator
    num, den = _iroot(value.numerator, k), _iroot(value.denominator, k)
    if num**k != value.numerator or den**k != value.denominator:
        raise NotArithmetic("irrational root")
    return Fraction(num, den)


def _factorial(value: Fraction) -> Fraction:
    # 450! has about 3,300 bits: within _MAX_BITS
    if value.denominator != 1 or not 0 <= value.numerator <= 450:
        raise NotArithmetic("factorial of a non-integer, negative or big number")
    return Fraction(math.factorial(value.numerator))


def _binom(n: Fraction, k: Fraction) -> Fraction:
    # C(4000, k) has at most about 4,000 bits
    if n.denominator != 1 or k.denominator != 1 or not 0 <= n.numerator <= 4000 or k < 0:
        raise NotArithmetic("binomial of a non-integer, negative or big number")
    return Fraction(math.comb(n.numerator, k.numerator))


def evaluate(run: list[Token]) -> Fraction:
    """The exact value of a run of arithmetic tokens (spaces allowed between them).

    Args:
        run: tokens, e.g. from `tokens("2^{5}")`.

    Returns:
        The value as a Fraction.

    Raises:
        NotArithmetic: when the run is not complete arithmetic on numerals (a "1,22", a
            letter, an unbalanced bracket, an irrational root) or its value would be too big.
    """
    toks = [t for t in run if t.kind != "space"]
    if not toks or any(t.kind not in ARITHMETIC or t.kind == "badnum" for t in toks):
        raise NotArithmetic("not arithmetic on numerals")
    if len(toks) > _MAX_TOKENS:
        raise NotArithmetic("expression too long")
    parser = _Parser(toks)
    try:
        value = parser.expr()
    except RecursionError as exc:
        raise NotArithmetic("nested too deeply") from exc
    if parser.peek() is not None:
        raise NotArithmetic(f"unexpected {parser.peek().text!r}")
    return value
