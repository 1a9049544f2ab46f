"""The rule language: a small expression grammar, parsed here into a tree and evaluated by walking it.

Nothing is ever handed to Python's `eval`, and nothing in an expression can reach an object: a name is a
key into the flat dict of features (`ip.orders_1m`), checked against the known names when the rule is
saved. There are no calls, no attribute access, no indexing, no exponent; literals, nesting and the
expression's length are bounded, so any rule evaluates in a few microseconds.

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := "-" unary | primary
    primary    := number | string | "true" | "false" | "null" | name | "(" expression ")" | "[" literals "]"

A missing feature is `null`: `==`/`!=` compare it like any value (`page.submit_ms == null`), an ordering
(`<`, `>=`, `in`) with it is false and arithmetic on it is `null`, so a rule about something the request
did not carry simply does not hit.
"""

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from kaquan.risk.errors import InvalidRule

MAX_LENGTH = 500
MAX_TOKENS = 200
MAX_DEPTH = 20
MAX_NUMBER = 10**12
MAX_STRING = 100
MAX_LIST = 50
LIMIT = 1e15  # an arithmetic result past this is null: no rule needs it, and it stops runaway products

Value: TypeAlias = "int | float | bool | str | tuple[Value, ...] | None"

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<number>\d+(?:\.\d+)?)
    |(?P<string>'[^'\\]*'|"[^"\\]*")
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<op>==|!=|<=|>=|\*\*|[<>+\-*/%()\[\],])
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    position: int


def tokenize(source: str) -> list[Token]:
    if len(source) > MAX_LENGTH:
        raise InvalidRule(f"an expression is at most {MAX_LENGTH} characters", position=MAX_LENGTH)
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise InvalidRule(f"unexpected character {source[position]!r}", position=position)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "op" and text == "**":
            raise InvalidRule("there is no exponent operator", position=position)
        if kind == "name":
            if "__" in text:
                raise InvalidRule("names with a double underscore are not allowed", position=position)
            if text in _KEYWORDS:
                kind = "keyword"
        if kind != "space":
            tokens.append(Token(kind, text, position))
            if len(tokens) > MAX_TOKENS:
                raise InvalidRule(f"an expression has at most {MAX_TOKENS} tokens", position=position)
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


# The tree ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Value


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: "Node"


@dataclass(frozen=True)
class Binary:
    op: str
    left: "Node"
    right: "Node"


Node = Literal | Name | Unary | Binary


class _Parser:
    def __init__(self, source: str, known: Collection[str]) -> None:
        self.tokens = tokenize(source)
        self.index = 0
        self.depth = 0
        self.known = known

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, *texts: str) -> Token | None:
        if self.token.kind in ("op", "keyword") and self.token.text in texts:
            return self.take()
        return None

    def expect(self, text: str) -> None:
        if self.accept(text) is None:
            raise InvalidRule(
                f"expected {text!r}, found {self.token.text or 'the end'!r}", position=self.token.position
            )

    def nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidRule(f"nested more than {MAX_DEPTH} deep", position=self.token.position)
        try:
            return parse()
        finally:
            self.depth -= 1

    def parse(self) -> Node:
        node = self.expression()
        if self.token.kind != "end":
            raise InvalidRule(f"unexpected {self.token.text!r}", position=self.token.position)
        return node

    def expression(self) -> Node:
        return self.nested(self.disjunction)

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.accept("or"):
            node = Binary("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.accept("and"):
            node = Binary("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.accept("not"):
            return Unary("not", self.nested(self.negation))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum()
        if op := self.accept("==", "!=", "<", "<=", ">", ">=", "in"):
            return Binary(op.text, node, self.sum())
        if self.token.text == "not" and self.tokens[self.index + 1].text == "in":
            self.index += 2
            return Unary("not", Binary("in", node, self.sum()))
        return node

    def sum(self) -> Node:
        node = self.product()
        while op := self.accept("+", "-"):
            node = Binary(op.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while op := self.accept("*", "/", "%"):
            node = Binary(op.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return Unary("-", self.nested(self.unary))
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if self.accept("("):
            node = self.expression()
            self.expect(")")
            return node
        if self.accept("["):
            return Literal(self.literal_list(token))
        self.take()
        if token.kind == "number":
            return Literal(self.number(token))
        if token.kind == "string":
            if len(token.text) - 2 > MAX_STRING:
                raise InvalidRule(f"a string is at most {MAX_STRING} characters", position=token.position)
            return Literal(token.text[1:-1])
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[token.text])
        if token.kind == "name":
            if token.text not in self.known:
                raise InvalidRule(f"unknown feature {token.text!r}", position=token.position)
            return Name(token.text)
        raise InvalidRule(f"unexpected {token.text or 'end of the expression'!r}", position=token.position)

    def number(self, token: Token) -> int | float:
        value = float(token.text) if "." in token.text else int(token.text)
        if len(token.text) > 16 or value > MAX_NUMBER:
            raise InvalidRule(f"a number is at most {MAX_NUMBER}", position=token.position)
        return value

    def literal_list(self, opening: Token) -> tuple[Value, ...]:
        items: list[Value] = []
        while not self.accept("]"):
            if items:
                self.expect(",")
            token = self.take()
            if token.kind == "number":
                items.append(self.number(token))
            elif token.kind == "string":
                items.append(token.text[1:-1])
            else:
                raise InvalidRule("a list holds numbers and strings only", position=token.position)
            if len(items) > MAX_LIST:
                raise InvalidRule(f"a list holds at most {MAX_LIST} items", position=opening.position)
        return tuple(items)


def parse(source: str, known: Collection[str]) -> Node:
    """The tree of `source`, or InvalidRule with the position of the first problem."""
    return _Parser(source, known).parse()


# Evaluation ----------------------------------------------------------------------------------------


def _number(value: Value) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _arithmetic(op: str, left: Value, right: Value) -> Value:
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return None
    if op in ("/", "%") and b == 0:
        return None
    result: int | float
    if op == "+":
        result = a + b
    elif op == "-":
        result = a - b
    elif op == "*":
        result = a * b
    elif op == "/":
        result = a / b
    else:
        result = a % b
    return result if abs(result) <= LIMIT else None


def _compare(op: str, left: Value, right: Value) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    if op == "in":
        return isinstance(right, tuple) and left in right
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def evaluate(node: Node, features: Mapping[str, Value]) -> Value:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return features.get(node.name)
    if isinstance(node, Unary):
        operand = evaluate(node.operand, features)
        if node.op == "not":
            return not operand
        number = _number(operand)
        return None if number is None else -number
    if node.op == "and":
        return evaluate(node.left, features) and evaluate(node.right, features)
    if node.op == "or":
        return evaluate(node.left, features) or evaluate(node.right, features)
    left, right = evaluate(node.left, features), evaluate(node.right, features)
    if node.op in ("+", "-", "*", "/", "%"):
        return _arithmetic(node.op, left, right)
    return _compare(node.op, left, right)


def holds(node: Node, features: Mapping[str, Value]) -> bool:
    """Whether the rule hits: its expression is exactly true (a number or a string is not)."""
    return evaluate(node, features) is True
