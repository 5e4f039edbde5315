"""Conditions over one labelled example, for rule tags: ``amount > 500 and country == "BR"``.

A small tokenizer and a recursive-descent parser build a tree of comparisons; nothing is ever
handed to ``eval``, ``exec`` or ``compile``, and a condition can only read the example it is
given. Pure: no I/O.

Grammar (lowest precedence first)::

    condition := or_expr END
    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | "(" or_expr ")" | test
    test      := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                          | ["not"] "in" "[" [literal ("," literal)* [","]] "]")?
    operand   := literal | field
    field     := "prediction" | "label" | "correct" | "error"
               | ("feature" | "segment") ("." NAME | "[" STRING "]")
               | NAME                                  (a feature)
    literal   := STRING | NUMBER | "true" | "false" | "null"

Names are ASCII ``[A-Za-z_][A-Za-z0-9_]*``; a feature or segment key of another shape (or
one spelled like a keyword) is ``feature["my col"]`` / ``feature.prediction``. Strings take
single or double quotes with ``\\`` escapes (``\\n \\t \\\\ \\" \\'``); numbers are decimal,
optionally signed, with a fraction and an exponent, and finite. Keywords are lowercase.

What a test means, never raising:

* a field that the example lacks (a missing feature or segment key) is null, and so is a JSON
  ``null``; ``x == null`` (the literal) holds when ``x`` is null, ``x != null`` when it is not;
* any other comparison with a null side is false, ``!=`` included (``amount != 5`` is false
  when there is no ``amount``);
* numbers compare with numbers, strings with strings (all six operators), booleans with
  booleans (``==``/``!=`` only); any other pair (a string and a number, a boolean and a
  number, a list) is false, ``!=`` included;
* ``x in [a, b]`` holds when ``x == a`` or ``x == b``; ``x not in [a, b]`` when ``x != a``
  and ``x != b`` (so a missing ``x`` is in no list and "not in" none either);
* a field alone (``correct``) holds when its value is the boolean ``true``; ``not`` negates
  whatever it is given (``not correct`` also holds when ``correct`` is null, as for a
  regressor: say ``correct == false`` for the wrong ones).

Bounds: at most ``MAX_LENGTH`` characters, ``MAX_DEPTH`` levels of parentheses and ``not``,
``MAX_ITEMS`` values in a list. A condition that breaks the grammar or a bound raises
:class:`ConditionError` with the character position and what was expected there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

MAX_LENGTH = 500
MAX_DEPTH = 32
MAX_ITEMS = 100

Scalar = str | int | float | bool | None
Kind = Literal["feature", "segment", "prediction", "label", "correct", "error"]
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
SCALARS: dict[str, Kind] = {
    "prediction": "prediction",
    "label": "label",
    "correct": "correct",
    "error": "error",
}
ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")


class ConditionError(ValueError):
    """A condition that does not parse: where (0-based character position) and what was
    expected there."""

    def __init__(self, position: int, expected: str, found: str) -> None:
        self.position = position
        self.expected = expected
        self.found = found
        super().__init__(f"at position {position}: expected {expected}, found {found}")


# -- tokens -------------------------------------------------------------------------------
TokenKind = Literal["name", "string", "number", "op", "punct", "end"]


class Token(NamedTuple):
    kind: TokenKind
    text: str  # as written (for names, operators and punctuation: the token itself)
    value: Scalar  # a string's or a number's value
    position: int


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end"
    if token.kind == "string":
        return f"the string {token.text}"
    return repr(token.text)


def tokenize(text: str) -> list[Token]:
    """The condition's tokens, ending with an ``end`` token."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(MAX_LENGTH, f"at most {MAX_LENGTH} characters", f"{len(text)}")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_REST:
                j += 1
            tokens.append(Token("name", text[i:j], None, i))
            i = j
        elif _starts_number(text, i):
            i = _number(text, i, tokens)
        elif ch in "\"'":
            i = _string(text, i, tokens)
        elif text.startswith(("==", "!=", "<=", ">="), i):
            tokens.append(Token("op", text[i : i + 2], None, i))
            i += 2
        elif ch in "<>":
            tokens.append(Token("op", ch, None, i))
            i += 1
        elif ch in "()[],.":
            tokens.append(Token("punct", ch, None, i))
            i += 1
        elif ch == "=":
            raise ConditionError(i, "'==' to compare", "'='")
        elif ch == "!":
            raise ConditionError(i, "'!=' (or 'not' to negate)", "'!'")
        elif text.startswith("&&", i):
            raise ConditionError(i, "'and'", "'&&'")
        elif text.startswith("||", i):
            raise ConditionError(i, "'or'", "'||'")
        else:
            raise ConditionError(
                i, "a name, a value, a comparison, 'and', 'or', 'not' or a parenthesis", repr(ch)
            )
    tokens.append(Token("end", "", None, n))
    return tokens


def _starts_number(text: str, i: int) -> bool:
    """A digit, or '.', '+' or '-' before one ('-.5' too)."""
    if text[i] in "+-":
        i += 1
    if text.startswith(".", i):
        i += 1
    return i < len(text) and text[i] in _DIGITS


def _number(text: str, start: int, tokens: list[Token]) -> int:
    i, n = start, len(text)
    if text[i] in "+-":
        i += 1
    digits_before = i
    while i < n and text[i] in _DIGITS:
        i += 1
    whole = i > digits_before
    fraction = False
    if i < n and text[i] == ".":
        i += 1
        after = i
        while i < n and text[i] in _DIGITS:
            i += 1
        fraction = i > after
    if not (whole or fraction):
        raise ConditionError(start, "a number", repr(text[start:i] or text[start]))
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j >= n or text[j] not in _DIGITS:
            raise ConditionError(j, "the exponent's digits", _char(text, j))
        while j < n and text[j] in _DIGITS:
            j += 1
        i = j
    if i < n and (text[i] in _NAME_REST or text[i] == "."):
        raise ConditionError(i, "a space or an operator after a number", repr(text[i]))
    written = text[start:i]
    is_int = all(c in _DIGITS or c in "+-" for c in written)
    value: int | float = int(written) if is_int else float(written)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConditionError(start, "a finite number", repr(written))
    tokens.append(Token("number", written, value, start))
    return i


def _char(text: str, i: int) -> str:
    return "the end" if i >= len(text) else repr(text[i])


def _string(text: str, start: int, tokens: list[Token]) -> int:
    quote = text[start]
    i, n = start + 1, len(text)
    parts: list[str] = []
    while True:
        if i >= n:
            raise ConditionError(start, f"a closing {quote} for the string opened here", "the end")
        ch = text[i]
        if ch == quote:
            break
        if ch == "\\":
            if i + 1 >= n or text[i + 1] not in ESCAPES:
                raise ConditionError(i, "an escape (\\n \\t \\\\ \\\" \\')", _char(text, i + 1))
            parts.append(ESCAPES[text[i + 1]])
            i += 2
            continue
        parts.append(ch)
        i += 1
    tokens.append(Token("string", text[start : i + 1], "".join(parts), start))
    return i + 1


# -- the tree -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """A value of the example: a feature, a segment key, or one of ``SCALARS``."""

    kind: Kind
    name: str = ""


@dataclass(frozen=True)
class Const:
    value: Scalar


Operand = Field | Const


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class Member:
    operand: Operand
    values: tuple[Scalar, ...]
    negated: bool  # "not in"


@dataclass(frozen=True)
class Truth:
    """A field alone: holds when its value is the boolean ``true``."""

    field: Field


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]


Node = Compare | Member | Truth | Not | AllOf | AnyOf


# -- the parser ---------------------------------------------------------------------------
class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def _advance(self) -> Token:
        token = self.tokens[self.at]
        if token.kind != "end":
            self.at += 1
        return token

    def _is(self, kind: TokenKind, text: str) -> bool:
        return self.token.kind == kind and self.token.text == text

    def _fail(self, expected: str) -> ConditionError:
        return ConditionError(self.token.position, expected, _describe(self.token))

    def _expect(self, kind: TokenKind, text: str, expected: str) -> Token:
        if not self._is(kind, text):
            raise self._fail(expected)
        return self._advance()

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                self.token.position,
                f"at most {MAX_DEPTH} levels of parentheses and 'not'",
                "one more",
            )

    def _at_end(self) -> bool:
        return self.token.kind == "end"

    def condition(self) -> Node:
        if self._at_end():
            raise self._fail("a condition")
        node = self.or_expr()
        if not self._at_end():
            raise self._fail("'and', 'or' or the end of the condition")
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self._is("name", "or"):
            self._advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self._is("name", "and"):
            self._advance()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def not_expr(self) -> Node:
        if self._is("name", "not"):
            self._deeper()
            self._advance()
            node: Node = Not(self.not_expr())
            self.depth -= 1
            return node
        if self._is("punct", "("):
            self._deeper()
            self._advance()
            if self._is("punct", ")"):
                raise self._fail("a condition inside the parentheses")
            node = self.or_expr()
            self._expect("punct", ")", "')' or 'and', 'or'")
            self.depth -= 1
            return node
        return self.test()

    def test(self) -> Node:
        start = self.token
        left = self.operand()
        token = self.token
        if token.kind == "op":
            self._advance()
            return Compare(left, token.text, self.operand())
        if self._is("name", "not"):
            self._advance()
            self._expect("name", "in", "'in' after 'not' (x not in [...])")
            return Member(left, self.values(), negated=True)
        if self._is("name", "in"):
            self._advance()
            return Member(left, self.values(), negated=False)
        if isinstance(left, Const):
            raise ConditionError(
                token.position,
                f"a comparison (== != < <= > >=) or 'in' after the value {start.text}",
                _describe(token),
            )
        return Truth(left)

    def values(self) -> tuple[Scalar, ...]:
        self._expect("punct", "[", "'[' to open the list of values")
        values: list[Scalar] = []
        while not self._is("punct", "]"):
            if len(values) >= MAX_ITEMS:
                raise self._fail(f"at most {MAX_ITEMS} values in a list")
            literal = self._literal()
            if literal is None:
                raise self._fail("a value (a string, a number, true, false or null) or ']'")
            values.append(literal.value)
            if self._is("punct", ","):
                self._advance()
            elif not self._is("punct", "]"):
                raise self._fail("',' or ']'")
        self._advance()
        return tuple(values)

    def _literal(self) -> Const | None:
        token = self.token
        if token.kind in ("string", "number"):
            self._advance()
            return Const(token.value)
        if token.kind == "name" and token.text in ("true", "false", "null"):
            self._advance()
            return Const({"true": True, "false": False, "null": None}[token.text])
        return None

    def operand(self) -> Operand:
        literal = self._literal()
        if literal is not None:
            return literal
        token = self.token
        if token.kind != "name" or token.text in KEYWORDS:
            raise self._fail("a field (a feature name, segment.<key>, prediction, ...) or a value")
        if token.text.lower() in KEYWORDS | {"none"} and token.text != token.text.lower():
            spelled = "null" if token.text.lower() == "none" else token.text.lower()
            named = f"feature.{token.text}"
            raise self._fail(f"lowercase {spelled!r} (a feature of that name: {named})")
        self._advance()
        if token.text in SCALARS:
            return Field(SCALARS[token.text])
        if token.text == "feature":
            return Field("feature", self._key(token.text))
        if token.text == "segment":
            return Field("segment", self._key(token.text))
        return Field("feature", token.text)

    def _key(self, of: str) -> str:
        if self._is("punct", "."):
            self._advance()
            if self.token.kind != "name":
                raise self._fail(f"a name after '{of}.'")
            return self._advance().text
        if self._is("punct", "["):
            self._advance()
            if self.token.kind != "string":
                raise self._fail(f'a quoted name in {of}["..."]')
            key = self._advance().value
            self._expect("punct", "]", "']'")
            return str(key)
        raise self._fail(f"'.' or '[' after '{of}' ({of}.<name> or {of}[\"<name>\"])")


# -- evaluation ---------------------------------------------------------------------------
_MISSING: Any = None  # a field the example lacks reads as null


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def compare(op: str, left: Any, right: Any) -> bool:
    """One comparison of two values under the rules above: false with a null side, false
    for two kinds; never raises. (A test against the literal ``null`` is ``null_test``.)"""
    kl, kr = _kind_of(left), _kind_of(right)
    if kl == "null" or kl != kr or kl == "other":
        return False
    if kl == "bool" and op not in ("==", "!="):
        return False
    if kl == "number" and any(isinstance(v, float) and math.isnan(v) for v in (left, right)):
        return False
    return _ORDER[op](left, right)


def null_test(op: str, value: Any) -> bool:
    """``value <op> null``: ``==`` holds for a null (or missing) value, ``!=`` for any other;
    an ordering never holds."""
    if op == "==":
        return value is None
    return op == "!=" and value is not None


def _is_null(operand: Operand) -> bool:
    return isinstance(operand, Const) and operand.value is None


def _read(operand: Operand, example: Mapping[str, Any]) -> Any:
    if isinstance(operand, Const):
        return operand.value
    if operand.kind in ("feature", "segment"):
        values = example.get("features" if operand.kind == "feature" else "segment")
        if not isinstance(values, Mapping):
            return _MISSING
        return values.get(operand.name, _MISSING)
    return example.get(operand.kind, _MISSING)


def holds(node: Node, example: Mapping[str, Any]) -> bool:
    """Whether the tree holds for ``example`` (keys ``features``, ``segment``,
    ``prediction``, ``label``, ``correct``, ``error``)."""
    if isinstance(node, Compare):
        if _is_null(node.right):
            return null_test(node.op, _read(node.left, example))
        if _is_null(node.left):
            return null_test(node.op, _read(node.right, example))
        return compare(node.op, _read(node.left, example), _read(node.right, example))
    if isinstance(node, Member):
        value = _read(node.operand, example)
        op = "!=" if node.negated else "=="
        tests = (null_test(op, value) if v is None else compare(op, value, v) for v in node.values)
        return all(tests) if node.negated else any(tests)
    if isinstance(node, Truth):
        return _read(node.field, example) is True
    if isinstance(node, Not):
        return not holds(node.inner, example)
    if isinstance(node, AllOf):
        return all(holds(part, example) for part in node.parts)
    return any(holds(part, example) for part in node.parts)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its text, and its tree."""

    text: str
    tree: Node

    def holds(self, example: Mapping[str, Any]) -> bool:
        return holds(self.tree, example)


def parse(text: str) -> Condition:
    """The condition ``text`` parsed; :class:`ConditionError` says where it breaks."""
    return Condition(text, _Parser(tokenize(text)).condition())
