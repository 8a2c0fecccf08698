"""FHIRPath text -> syntax tree: the grammar subset SQL on FHIR view runners use.

Pure Python (no Spark): the compiler turns the tree into Spark Columns. Precedence,
lowest first: implies, or/xor, and, =/!=, </<=/>/>=, |, +/-/&, * / div mod, unary
minus, then invocation (`.name`, `.fn(args)`, `[index]`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class FhirPathSyntaxError(ValueError):
    """Text that is not a FHIRPath expression; the message quotes where it breaks."""


@dataclass(frozen=True)
class Literal:
    value: object  # str, int, float, bool, or None for `{}`
    type: str  # FHIRPath system type: String, Integer, Decimal, Boolean, Date, DateTime, Time, Empty


@dataclass(frozen=True)
class Invoke:
    """`name` or `name(args)` applied to `target` (None: the current focus)."""

    target: object | None
    name: str
    args: tuple | None = None  # None for a member, a tuple for a function call


@dataclass(frozen=True)
class Index:
    target: object
    index: object


@dataclass(frozen=True)
class Binary:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Negate:
    operand: object


@dataclass(frozen=True)
class Variable:
    """`%name` (a view constant or %rowIndex) or `$this`."""

    name: str


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>@T?[0-9][0-9:\-T.+Z]*)
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
    | (?P<variable>%[A-Za-z_][A-Za-z0-9_]*|%`[^`]+`|\$this|\$index|\$total)
    | (?P<op><=|>=|!=|!~|[-+*/&|=<>~.,()\[\]{}])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_KEYWORD_OPS = {"and", "or", "xor", "implies", "div", "mod", "in", "contains", "is", "as"}


def _unescape(body: str) -> str:
    return re.sub(
        r"\\(u[0-9a-fA-F]{4}|.)",
        lambda m: chr(int(m[1][1:], 16)) if m[1][0] == "u" else _ESCAPES.get(m[1], m[1]),
        body,
    )


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FhirPathSyntaxError(f"unexpected {text[pos:].strip()[:20]!r} at offset {pos} in {text!r}")
        kind = match.lastgroup
        tokens.append((kind, match[kind]))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            found = token[1] if token else "end of expression"
            raise FhirPathSyntaxError(f"expected {value or 'a term'!r}, found {found!r} in {self.text!r}")
        self.pos += 1
        return token

    def at_op(self, *ops: str) -> str | None:
        token = self.peek()
        if token and token[1] in ops and (token[0] == "op" or token[1] in _KEYWORD_OPS):
            return token[1]
        return None

    def parse(self):
        tree = self.expression()
        if self.peek() is not None:
            raise FhirPathSyntaxError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return tree

    def expression(self):
        return self.binary_level(0)

    _LEVELS = (
        ("implies",),
        ("or", "xor"),
        ("and",),
        ("in", "contains"),
        ("=", "~", "!=", "!~"),
        ("<", "<=", ">", ">="),
        ("|",),
        ("+", "-", "&"),
        ("*", "/", "div", "mod"),
    )

    def binary_level(self, level: int):
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary_level(level + 1)
        while op := self.at_op(*self._LEVELS[level]):
            self.take()
            left = Binary(op, left, self.binary_level(level + 1))
        return left

    def unary(self):
        if self.at_op("-", "+"):
            sign = self.take()[1]
            operand = self.unary()
            return Negate(operand) if sign == "-" else operand
        return self.invocations(self.term())

    def invocations(self, node):
        while True:
            if self.at_op("."):
                self.take()
                node = self.member_or_call(node)
            elif self.at_op("["):
                self.take()
                index = self.expression()
                self.take("]")
                node = Index(node, index)
            else:
                return node

    def member_or_call(self, target):
        kind, name = self.take()
        if kind != "ident":
            raise FhirPathSyntaxError(f"expected a name after '.', found {name!r} in {self.text!r}")
        name = name.strip("`")
        if self.at_op("("):
            return Invoke(target, name, self.arguments())
        return Invoke(target, name)

    def arguments(self) -> tuple:
        self.take("(")
        args = []
        if not self.at_op(")"):
            args.append(self.expression())
            while self.at_op(","):
                self.take()
                args.append(self.expression())
        self.take(")")
        return tuple(args)

    def term(self):
        token = self.peek()
        if token is None:
            raise FhirPathSyntaxError(f"expression ends early: {self.text!r}")
        kind, value = token
        if kind == "op" and value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "op" and value == "{":
            self.take()
            self.take("}")
            return Literal(None, "Empty")
        self.take()
        if kind == "string":
            return Literal(_unescape(value[1:-1]), "String")
        if kind == "number":
            return Literal(float(value), "Decimal") if "." in value else Literal(int(value), "Integer")
        if kind == "datetime":
            return _date_literal(value, self.text)
        if kind == "variable":
            return Variable(value[1:].strip("`") if value.startswith("%") else value)
        if kind == "ident":
            if value in ("true", "false"):
                return Literal(value == "true", "Boolean")
            name = value.strip("`")
            if self.at_op("("):
                return Invoke(None, name, self.arguments())
            return Invoke(None, name)
        raise FhirPathSyntaxError(f"unexpected {value!r} in {self.text!r}")


def _date_literal(token: str, text: str) -> Literal:
    body = token[1:]
    if body.startswith("T"):
        return Literal(body[1:], "Time")
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", body):
        return Literal(body, "Date")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]*(Z|[+-]\d{2}:\d{2})?", body):
        return Literal(body, "DateTime")
    raise FhirPathSyntaxError(f"malformed date/time literal {token!r} in {text!r}")


def parse(text: str):
    """The syntax tree of one FHIRPath expression."""
    if not isinstance(text, str) or not text.strip():
        raise FhirPathSyntaxError(f"a FHIRPath expression must be a non-empty string, got {text!r}")
    return _Parser(text).parse()
