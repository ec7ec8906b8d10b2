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

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Self

from .errors import ValidationError, ValidationIssue

__all__ = ["Expression", "ExpressionError", "compile_expression", "compiles"]


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

    @classmethod
    def _rebuild(cls, fields: Mapping[str, Any], detail: str) -> Self:
        """From a problem body: only the issues travel (source and column stay behind)."""
        error = cls(str(fields.get("source") or ""), detail)
        error.errors = ValidationError._rebuild(fields, detail).errors
        return error


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
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
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


_NUMBERS = (int, float)  # JSON numbers; a bool (a subclass of int) is not one


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBERS or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _field_path(node: Node) -> tuple[str, ...] | None:
    """``("args", "a", "b")`` for the tree of ``args.a.b``; None for anything else."""
    names: list[str] = []
    while node[0] == "get":
        key = node[2]
        if key[0] != "lit" or not isinstance(key[1], str):
            return None
        names.append(key[1])
        node = node[1]
    if node[0] != "var":
        return None
    return (node[1], *reversed(names))


def _get(base: Any, key: Any) -> Any:
    """``base[key]``: a mapping's field or a list's item; null when there is none."""
    if isinstance(base, Mapping) and isinstance(key, str):
        return base.get(key)
    if isinstance(base, Sequence) and not isinstance(base, str) and _is_number(key):
        index = int(key)
        return base[index] if -len(base) <= index < len(base) else None
    return None


def _same_kind(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


Fn = Callable[[Mapping[str, Any]], Any]


class Expression:
    """A compiled expression: evaluate it against any number of contexts.

    The syntax tree is turned once into nested Python closures (one per node, built from
    a fixed set of functions: never ``eval``), a lenient and a strict one, so evaluating is
    a few calls per node."""

    def __init__(self, source: str, tree: Node) -> None:
        self.source = source
        self._tree = tree
        self._lenient = self._build(tree, strict=False)
        self._strict = self._build(tree, strict=True)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, context: Mapping[str, Any], *, strict: bool = False) -> Any:
        return (self._strict if strict else self._lenient)(context)

    def test(self, context: Mapping[str, Any], *, strict: bool = False) -> bool:
        """The expression's truth: only ``true`` is true (not 1, not "yes")."""
        return (self._strict if strict else self._lenient)(context) is True

    def function(self, *, strict: bool = False) -> Callable[[Mapping[str, Any]], Any]:
        """The compiled expression as a plain function of the context (for hot loops)."""
        return self._strict if strict else self._lenient

    def _build(self, node: Node, *, strict: bool) -> Fn:
        kind = node[0]
        if kind == "lit":
            value = node[1]
            return lambda ctx: value
        if kind == "var":
            name = node[1]
            return lambda ctx: ctx.get(name)
        if kind == "list":
            items = [self._build(n, strict=strict) for n in node[1]]
            return lambda ctx: [f(ctx) for f in items]
        if kind == "get":
            names = _field_path(node)
            if names is not None:  # args.a.b: one closure walks the whole path
                root, rest = names[0], names[1:]

                def walk(ctx: Mapping[str, Any]) -> Any:
                    found = ctx.get(root)
                    for name in rest:
                        if type(found) is dict or isinstance(found, Mapping):
                            found = found.get(name)
                        else:
                            return None
                    return found

                return walk
            base = self._build(node[1], strict=strict)
            if node[2][0] == "lit" and isinstance(node[2][1], str):  # a.b: the common case
                name = node[2][1]

                def field(ctx: Mapping[str, Any]) -> Any:
                    found = base(ctx)
                    if type(found) is dict or isinstance(found, Mapping):
                        return found.get(name)
                    return None

                return field
            key = self._build(node[2], strict=strict)
            return lambda ctx: _get(base(ctx), key(ctx))
        if kind == "not":
            inner = self._build(node[1], strict=strict)
            return lambda ctx: inner(ctx) is not True
        if kind == "and":
            left, right = self._build(node[1], strict=strict), self._build(node[2], strict=strict)
            return lambda ctx: left(ctx) is True and right(ctx) is True
        if kind == "or":
            left, right = self._build(node[1], strict=strict), self._build(node[2], strict=strict)
            return lambda ctx: left(ctx) is True or right(ctx) is True
        if kind == "if":
            cond = self._build(node[1], strict=strict)
            then, other = self._build(node[2], strict=strict), self._build(node[3], strict=strict)
            return lambda ctx: then(ctx) if cond(ctx) is True else other(ctx)
        if kind == "neg":
            inner = self._build(node[1], strict=strict)

            def negate(ctx: Mapping[str, Any]) -> Any:
                value = inner(ctx)
                if not _is_number(value):
                    raise ExpressionError(self.source, f"cannot negate {value!r}")
                return -value

            return negate
        if kind == "arith":
            op = node[1]
            left, right = self._build(node[2], strict=strict), self._build(node[3], strict=strict)
            return lambda ctx: self._arith(op, left(ctx), right(ctx))
        if kind == "cmp":
            op = node[1]
            left, right = self._build(node[2], strict=strict), self._build(node[3], strict=strict)
            if op in _ORDER:
                return self._ordering(op, left, right, node[3], strict=strict)
            if strict:

                def checked(ctx: Mapping[str, Any]) -> bool:
                    a, b = left(ctx), right(ctx)
                    self._check_strict(op, a, b)
                    return self._compare(op, a, b)

                return checked
            return lambda ctx: self._compare(op, left(ctx), right(ctx))
        if kind == "call":
            fn = _FUNCTIONS[node[1]]
            args = [self._build(a, strict=strict) for a in node[2]]
            return lambda ctx: fn(*(a(ctx) for a in args))
        raise AssertionError(kind)  # pragma: no cover

    def _ordering(self, op: str, left: Fn, right: Fn, right_node: Node, *, strict: bool) -> Fn:
        """``<``, ``<=``, ``>``, ``>=``: numbers with numbers, strings with strings; any
        other pair is false (strict: an error)."""
        order = _ORDER[op]
        source = self.source
        constant = right_node[0] == "lit"
        fixed = right_node[1] if constant else None

        def ordered(ctx: Mapping[str, Any]) -> bool:
            a, b = left(ctx), fixed if constant else right(ctx)
            ta, tb = type(a), type(b)
            if (ta in _NUMBERS and tb in _NUMBERS) or (ta is str and tb is str):
                return bool(order(a, b))
            if _same_kind(a, b):  # subclasses of int, float or str
                return bool(order(a, b))
            if strict:
                raise ExpressionError(source, f"cannot order {a!r} {op} {b!r}")
            return False

        return ordered

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


def compiles(source: str | None) -> str | None:
    """For model validators: ``source`` when it compiles (or is None), else ``ValueError``
    saying what is wrong, and where."""
    if source is not None:
        try:
            compile_expression(source)
        except ExpressionError as exc:
            raise ValueError(exc.errors[0].message if exc.errors else str(exc)) from None
    return source
