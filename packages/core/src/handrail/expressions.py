"""A small, safe expression language for rules and policies. Never ``eval``.

Expressions read values out of a JSON context and compare them::

    output.eligible == false
    if output.eligible == false then output.reason_code in ["denied_policy", "denied_timeframe"]
    args.amount > 1000 and not (args.to ends_with "@ourcompany.com")
    len(output.items) >= 1 and output.items[0].sku starts_with "A-"

Grammar, loosest binding first::

    expr    := "if" expr "then" expr ["else" expr] | or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum [op sum]          op: == != < <= > >= in, "not in", starts_with,
                                     ends_with, contains, matches
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/" | "%") unary)*
    unary   := "-" unary | postfix
    postfix := atom ("." name | "[" expr "]")*
    atom    := number | string | true | false | null | [expr, ...] | name | name(expr, ...)
             | "(" expr ")"

A bare name is a path into the context (``output``, ``payload``, ``args``...). A missing
path is ``null``; comparing ``null`` with ``<`` is false, never an error. ``if A then B``
without ``else`` is true when A is false (read it as "A implies B"). Functions: ``len``,
``lower``, ``upper``, ``abs``, ``min``, ``max``, ``exists``. ``matches`` takes a regular
expression of at most 200 characters against text of at most 10,000.

Compiling checks the syntax (``ExpressionError`` names the column); evaluating never
raises for missing data, but a type clash (``"a" + 1``) raises ``ExpressionError``.

``strict`` evaluation (what policies use) raises instead of answering false when an
ordering comparison (``<`` ...), ``starts_with``, ``ends_with``, ``matches``, ``in`` or
``contains`` meets a missing value or the wrong type, so a rule such as
``args.amount > 1000`` cannot quietly fail to match a string amount: it errs, and the
policy asks a person. Guard optional fields with ``exists(...)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import ValidationError, ValidationIssue

__all__ = ["Expression", "ExpressionError", "compile_expression"]


class ExpressionError(ValidationError):
    code = "expression_error"

    def __init__(self, source: str, message: str, column: int | None = None) -> None:
        where = f" at column {column}" if column is not None else ""
        super().__init__(
            [ValidationIssue("$.expression", f"{message}{where}")],
            summary=f"bad expression {source!r}",
        )
        self.source = source
        self.column = column


_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.|\+|-|\*|/|%)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"in", "starts_with", "ends_with", "contains", "matches"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="} | _WORD_OPS
_KEYWORDS = {"and", "or", "not", "if", "then", "else", "true", "false", "null"} | _WORD_OPS


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # number, string, op, name, end
    text: str
    column: int


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = _TOKEN.match(source, pos)
        if m is None or m.end() == pos:
            column = pos + len(source[pos:]) - len(source[pos:].lstrip()) + 1
            raise ExpressionError(source, f"unexpected {source[column - 1]!r}", column)
        kind = m.lastgroup or "op"
        out.append(_Tok(kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    out.append(_Tok("end", "", len(source) + 1))
    return out


Node = tuple[Any, ...]  # ("lit", v) ("path", [parts]) ("op", name, a, b) ...


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.toks = _tokens(source)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, message: str) -> ExpressionError:
        got = self.tok.text or "the end"
        return ExpressionError(self.source, f"{message}, found {got!r}", self.tok.column)

    def take(self, text: str) -> bool:
        if self.tok.text == text and self.tok.kind in ("op", "name"):
            self.i += 1
            return True
        return False

    def need(self, text: str) -> None:
        if not self.take(text):
            raise self.fail(f"expected {text!r}")

    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            raise self.fail("expected the end of the expression")
        return node

    def expr(self) -> Node:
        if self.take("if"):
            cond = self.expr()
            self.need("then")
            then = self.expr()
            other: Node = ("lit", True)
            if self.take("else"):
                other = self.expr()
            return ("if", cond, then, other)
        return self.or_()

    def or_(self) -> Node:
        node = self.and_()
        while self.take("or"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("and"):
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.take("not"):
            return ("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        left = self.sum()
        tok = self.tok
        if tok.text == "not" and self.toks[self.i + 1].text == "in":
            self.i += 2
            return ("not", ("cmp", "in", left, self.sum()))
        if tok.text in _COMPARE and tok.kind in ("op", "name"):
            self.i += 1
            return ("cmp", tok.text, left, self.sum())
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.tok.text in ("+", "-") and self.tok.kind == "op":
            op = self.tok.text
            self.i += 1
            node = ("arith", op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.tok.text in ("*", "/", "%") and self.tok.kind == "op":
            op = self.tok.text
            self.i += 1
            node = ("arith", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.take("-"):
            return ("neg", self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        while True:
            if self.take("."):
                if self.tok.kind != "name":
                    raise self.fail("expected a field name after '.'")
                node = ("get", node, ("lit", self.tok.text))
                self.i += 1
            elif self.take("["):
                node = ("get", node, self.expr())
                self.need("]")
            else:
                return node

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            value = float(tok.text)
            return ("lit", int(value) if value.is_integer() and "." not in tok.text else value)
        if tok.kind == "string":
            self.i += 1
            return ("lit", _unquote(tok.text))
        if self.take("("):
            node = self.expr()
            self.need(")")
            return node
        if self.take("["):
            items: list[Node] = []
            if not self.take("]"):
                items.append(self.expr())
                while self.take(","):
                    items.append(self.expr())
                self.need("]")
            return ("list", items)
        if tok.kind == "name":
            literal = {"true": True, "false": False, "null": None}
            if tok.text in literal:
                self.i += 1
                return ("lit", literal[tok.text])
            if tok.text in _KEYWORDS:
                raise self.fail("expected a value")
            self.i += 1
            if self.take("("):
                if tok.text not in _FUNCTIONS:
                    known = ", ".join(sorted(_FUNCTIONS))
                    raise ExpressionError(
                        self.source, f"unknown function {tok.text!r} (known: {known})", tok.column
                    )
                args: list[Node] = []
                if not self.take(")"):
                    args.append(self.expr())
                    while self.take(","):
                        args.append(self.expr())
                    self.need(")")
                return ("call", tok.text, args)
            return ("var", tok.text)
        raise self.fail("expected a value")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _len(value: Any) -> Any:
    return len(value) if isinstance(value, str | list | dict) else None


def _num_or_none(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*values: Any) -> Any:
        flat = values[0] if len(values) == 1 and isinstance(values[0], list) else values
        if not flat or not all(_is_number(v) for v in flat):
            return None
        return fn(*flat)

    return call


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "lower": lambda v: v.lower() if isinstance(v, str) else None,
    "upper": lambda v: v.upper() if isinstance(v, str) else None,
    "abs": lambda v: abs(v) if _is_number(v) else None,
    "min": _num_or_none(min),
    "max": _num_or_none(max),
    "exists": lambda v: v is not None,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


class Expression:
    """A compiled expression: evaluate it against any number of contexts."""

    def __init__(self, source: str, tree: Node) -> None:
        self.source = source
        self._tree = tree

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, context: Mapping[str, Any], *, strict: bool = False) -> Any:
        return self._eval(self._tree, context, strict)

    def test(self, context: Mapping[str, Any], *, strict: bool = False) -> bool:
        """The expression's truth: only ``true`` is true (not 1, not "yes")."""
        return self.evaluate(context, strict=strict) is True

    def _eval(self, node: Node, ctx: Mapping[str, Any], strict: bool) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "var":
            return ctx.get(node[1])
        if kind == "list":
            return [self._eval(n, ctx, strict) for n in node[1]]
        if kind == "get":
            base, key = self._eval(node[1], ctx, strict), self._eval(node[2], ctx, strict)
            if isinstance(base, Mapping) and isinstance(key, str):
                return base.get(key)
            if isinstance(base, Sequence) and not isinstance(base, str) and _is_number(key):
                index = int(key)
                return base[index] if -len(base) <= index < len(base) else None
            return None
        if kind == "not":
            return self._eval(node[1], ctx, strict) is not True
        if kind == "and":
            return (
                self._eval(node[1], ctx, strict) is True
                and self._eval(node[2], ctx, strict) is True
            )
        if kind == "or":
            return (
                self._eval(node[1], ctx, strict) is True or self._eval(node[2], ctx, strict) is True
            )
        if kind == "if":
            branch = node[2] if self._eval(node[1], ctx, strict) is True else node[3]
            return self._eval(branch, ctx, strict)
        if kind == "neg":
            value = self._eval(node[1], ctx, strict)
            if not _is_number(value):
                raise ExpressionError(self.source, f"cannot negate {value!r}")
            return -value
        if kind == "arith":
            left, right = self._eval(node[2], ctx, strict), self._eval(node[3], ctx, strict)
            return self._arith(node[1], left, right)
        if kind == "cmp":
            left, right = self._eval(node[2], ctx, strict), self._eval(node[3], ctx, strict)
            if strict:
                self._check_strict(node[1], left, right)
            return self._compare(node[1], left, right)
        if kind == "call":
            return _FUNCTIONS[node[1]](*(self._eval(a, ctx, strict) for a in node[2]))
        raise AssertionError(kind)  # pragma: no cover

    def _check_strict(self, op: str, a: Any, b: Any) -> None:
        """Refuse, in strict mode, a comparison that could only be false by accident."""
        if op in ("<", "<=", ">", ">=") and not _same_kind(a, b):
            raise ExpressionError(self.source, f"cannot order {a!r} {op} {b!r}")
        if op in ("starts_with", "ends_with", "matches") and not (
            isinstance(a, str) and isinstance(b, str)
        ):
            raise ExpressionError(self.source, f"{op} needs two strings, got {a!r} and {b!r}")
        if op in ("in", "contains"):
            item, container = (a, b) if op == "in" else (b, a)
            if not isinstance(container, str | list):
                raise ExpressionError(
                    self.source, f"{op} needs a list or a string, got {container!r}"
                )
            if isinstance(container, str) and not isinstance(item, str):
                raise ExpressionError(self.source, f"cannot look for {item!r} in a string")

    def _arith(self, op: str, a: Any, b: Any) -> Any:
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if not (_is_number(a) and _is_number(b)):
            raise ExpressionError(self.source, f"cannot compute {a!r} {op} {b!r}")
        if op in ("/", "%") and b == 0:
            return None
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "+": lambda x, y: x + y,
            "-": lambda x, y: x - y,
            "*": lambda x, y: x * y,
            "/": lambda x, y: x / y,
            "%": lambda x, y: x % y,
        }
        return ops[op](a, b)

    def _compare(self, op: str, a: Any, b: Any) -> bool:
        if op == "==":
            return bool(
                (a == b and type(a) is type(b)) or (_is_number(a) and _is_number(b) and a == b)
            )
        if op == "!=":
            return not self._compare("==", a, b)
        if op in ("<", "<=", ">", ">="):
            if not _same_kind(a, b):
                return False
            return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
        if op == "in":
            if isinstance(b, str):
                return isinstance(a, str) and a in b
            return isinstance(b, list) and any(self._compare("==", a, item) for item in b)
        if op == "contains":
            return self._compare("in", b, a)
        if op == "starts_with":
            return isinstance(a, str) and isinstance(b, str) and a.startswith(b)
        if op == "ends_with":
            return isinstance(a, str) and isinstance(b, str) and a.endswith(b)
        if op == "matches":
            if not (isinstance(a, str) and isinstance(b, str)):
                return False
            if len(b) > 200 or len(a) > 10_000:
                raise ExpressionError(self.source, "regex or text too long for 'matches'")
            return _regex(b).search(a) is not None
        raise AssertionError(op)  # pragma: no cover


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> Expression:
    """Parse ``source`` once (cached); ``ExpressionError`` names what is wrong, and where."""
    if len(source) > 4_000:
        raise ExpressionError(source[:40] + "...", "longer than 4,000 characters")
    return Expression(source, _Parser(source).parse())
