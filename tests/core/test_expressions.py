"""The safe expression language behind rules and policies."""

from __future__ import annotations

from typing import Any

import pytest

from handrail.expressions import ExpressionError, compile_expression

CTX: dict[str, Any] = {
    "output": {"eligible": False, "reason_code": "denied_policy", "items": [{"sku": "A-1"}]},
    "args": {"amount": 1500, "to": "ops@ourcompany.com", "path": "/prod/db", "n": 2.5},
    "payload": {"tags": ["vip", "eu"], "flag": True},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("output.eligible == false", True),
        ('if output.eligible == false then output.reason_code in ["denied_policy"]', True),
        ('if output.eligible == true then output.reason_code == "approved"', True),
        ('if args.amount > 10 then "big" else "small"', "big"),
        ('args.amount > 1000 and not (args.to ends_with "@ourcompany.com")', False),
        ('args.path starts_with "/prod"', True),
        ('args.to contains "@" and args.to matches "^[a-z]+@"', True),
        ('len(output.items) >= 1 and output.items[0].sku starts_with "A-"', True),
        ('"vip" in payload.tags and "us" not in payload.tags', True),
        ('payload.tags contains "eu"', True),
        ("args.amount * 2 - 1 == 2999", True),
        ("args.amount / 0", None),
        ("args.amount % 7", 2),
        ("-args.n", -2.5),
        ("max(1, args.amount, 3)", 1500),
        ("min([4, 2])", 2),
        ("abs(-3) + len('abc')", 6),
        ('lower("ABC") == "abc" and upper(args.to) ends_with "COM"', True),
        ("exists(args.missing) or exists(args.amount)", True),
        ("args.missing > 3", False),  # missing is null: comparisons are false, not errors
        ("args.missing == null", True),
        ('args.amount > "1000"', False),  # different kinds never order
        ("payload.flag == 1", False),  # true is not 1
        ("args.amount == 1500.0", True),
        ("output.items[5].sku == null", True),
        ('output["reason_code"]', "denied_policy"),
        ("'it\\'s' == \"it's\"", True),
    ],
)
def test_evaluation(source: str, expected: Any) -> None:
    assert compile_expression(source).evaluate(CTX) == expected


def test_only_true_is_true() -> None:
    assert compile_expression("args.amount").test(CTX) is False
    assert compile_expression("payload.flag").test(CTX) is True


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("args.amount >", "expected a value, found 'the end' at column 14"),
        ("open('x')", "unknown function 'open'"),
        ("a ~ b", "unexpected '~' at column 3"),
        ("if a then", "expected a value"),
        ("(a", "expected ')'"),
        ("a b", "expected the end of the expression, found 'b' at column 3"),
        ("__import__('os')", "unknown function '__import__'"),
        ("a.", "expected a field name"),
        ("x" * 4001, "longer than 4,000 characters"),
    ],
)
def test_syntax_errors_name_the_column(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert message in str(caught.value)
    assert caught.value.errors[0].path == "$.expression"


def test_type_clashes_are_errors_not_crashes() -> None:
    with pytest.raises(ExpressionError, match="cannot compute"):
        compile_expression("args.to + 1").evaluate(CTX)
    with pytest.raises(ExpressionError, match="cannot negate"):
        compile_expression("-args.to").evaluate(CTX)
    with pytest.raises(ExpressionError, match="too long"):
        compile_expression('args.to matches "' + "a" * 201 + '"').evaluate(CTX)


def test_nothing_outside_the_context_is_reachable() -> None:
    for source in ("__class__", "args.__class__", "output.__dict__", "args.amount.real"):
        assert compile_expression(source).evaluate(CTX) is None


class TestStrict:
    """What policies use: a comparison that could only be false by accident errs."""

    @pytest.mark.parametrize(
        "source",
        [
            "args.amount > 1000",  # missing
            "args.name > 1000",  # a string against a number
            "args.to ends_with '@x.com'",  # missing
            "args.n starts_with 'a'",  # a number
            "args.name matches '^a'  and args.n matches 'b'",
            "args.n in 'abc'",
            "'a' in args.n",
            "args.list contains 3 and args.n contains 1",
        ],
    )
    def test_strict_errs_where_lenient_says_false(self, source: str) -> None:
        context = {"args": {"name": "ann", "n": 7, "list": [3]}}
        expression = compile_expression(source)
        assert expression.test(context) is False
        with pytest.raises(ExpressionError):
            expression.test(context, strict=True)

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            ("args.n > 5", True),
            ("args.name == null", False),
            ("args.missing == null", True),  # equality never errs
            ("exists(args.missing) and args.missing > 3", False),  # guarded: short-circuit
            ("args.n in [1, 7]", True),
            ("'nn' in args.name", True),
            ("args.list contains 3", True),
            ("not (args.name starts_with 'b')", True),
        ],
    )
    def test_strict_agrees_on_well_typed_input(self, source: str, expected: bool) -> None:
        context = {"args": {"name": "ann", "n": 7, "list": [3]}}
        assert compile_expression(source).test(context, strict=True) is expected
