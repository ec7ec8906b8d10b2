"""Domain values: money, decisions, task specs and ids."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handrail import Action, Currency, Decision, DecisionType, Kind, Money, TaskSpec
from handrail.ids import new_id
from handrail.money import MAX_MINOR


class TestMoney:
    @pytest.mark.parametrize(
        ("amount", "currency", "minor", "shown"),
        [
            ("0.50", "USD", 50, "0.50"),
            ("12", "USD", 1200, "12.00"),
            ("0.5", "USD", 50, "0.50"),
            (Decimal("3.07"), "USD", 307, "3.07"),
            ("1500", "SATS", 1500, "1500"),
            (7, "SATS", 7, "7"),
        ],
    )
    def test_edges_and_minor_units(
        self, amount: str | int | Decimal, currency: str, minor: int, shown: str
    ) -> None:
        money = Money.parse(amount, currency)
        assert money.minor == minor
        assert money.amount == shown
        assert money.model_dump() == {"currency": currency, "amount": shown}
        assert Money.model_validate_json(money.model_dump_json()) == money

    @pytest.mark.parametrize(
        ("amount", "currency", "message"),
        [
            (0.5, "USD", "never floats"),
            ("0.005", "USD", "at most 2 decimal places"),
            ("1.5", "SATS", "at most 0 decimal places"),
            ("abc", "USD", "not a decimal amount"),
            ("NaN", "USD", "not a finite amount"),
            ("-1.00", "USD", "greater than or equal to 0"),
            (True, "USD", "never floats"),
        ],
    )
    def test_bad_amounts_are_refused(self, amount: object, currency: str, message: str) -> None:
        with pytest.raises(pydantic.ValidationError, match=message):
            Money.model_validate({"currency": currency, "amount": amount})

    def test_unknown_currency_and_overflow(self) -> None:
        with pytest.raises(ValueError, match="EUR"):
            Money.parse("1.00", "EUR")
        with pytest.raises(pydantic.ValidationError):
            Money(currency=Currency.USD, minor=MAX_MINOR + 1)

    def test_arithmetic_keeps_currency(self) -> None:
        fee = Money.parse("0.10", "USD")
        assert (Money.parse("0.50", "USD") * 3 + fee).amount == "1.60"
        with pytest.raises(ValueError, match="cannot combine"):
            _ = fee + Money.parse("1", "SATS")

    @given(st.integers(min_value=0, max_value=MAX_MINOR))
    def test_every_amount_round_trips(self, minor: int) -> None:
        for currency in Currency:
            money = Money(currency=currency, minor=minor)
            assert Money.parse(money.amount, currency) == money


class TestDecision:
    def test_constructors(self) -> None:
        assert Decision.approve().approved
        assert Decision.modify({"to": "x"}, "fixed").approved
        assert not Decision.reject("no").approved
        assert not Decision.respond("use the other tool").approved
        assert Decision.modify({"a": 1}).content() == {
            "type": "modify",
            "message": None,
            "args": {"a": 1},
        }

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"type": "modify"}, "needs the edited 'args'"),
            ({"type": "approve", "args": {}}, "takes no 'args'"),
            ({"type": "reject"}, "needs a 'message'"),
            ({"type": "respond", "message": "  "}, "needs a 'message'"),
            ({"type": "maybe"}, "Input should be"),
            ({"type": "approve", "extra": 1}, "Extra inputs are not permitted"),
        ],
    )
    def test_malformed_decisions(self, data: dict[str, object], message: str) -> None:
        with pytest.raises(pydantic.ValidationError, match=message):
            Decision.model_validate(data)


class TestTaskSpec:
    def test_review_defaults(self) -> None:
        spec = TaskSpec(kind=Kind.REVIEW, action=Action(name="send_email"))
        assert spec.allowed_decisions == (
            DecisionType.APPROVE,
            DecisionType.REJECT,
            DecisionType.MODIFY,
        )
        assert spec.effective_title == "Approve send_email"
        assert spec.effective_task_type == "send_email"
        assert spec.redundancy == 1
        assert spec.sla_seconds == 3600

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"kind": "review"}, "needs an 'action'"),
            ({"kind": "judgment"}, "needs an 'output_schema'"),
            (
                {"kind": "review", "action": {"name": "x"}, "output_schema": {}},
                "drop 'output_schema'",
            ),
            (
                {"kind": "judgment", "output_schema": {}, "action": {"name": "x"}},
                "belongs to review",
            ),
            ({"kind": "review", "action": {"name": "x"}, "allowed_decisions": []}, "not be empty"),
            (
                {"kind": "review", "action": {"name": "x"}, "allowed_decisions": ["approve"] * 2},
                "twice",
            ),
            ({"kind": "review", "action": {"name": " "}}, "must not be blank"),
            ({"kind": "review", "action": {"name": "x"}, "confidence": 1.5}, "less than or equal"),
            ({"kind": "review", "action": {"name": "x"}, "sla_seconds": 0}, "greater than"),
            ({"kind": "review", "action": {"name": "x"}, "redundancy": 26}, "less than or equal"),
            ({"kind": "review", "action": {"name": "x"}, "callback_url": "ftp://x"}, "pattern"),
            ({"kind": "review", "action": {"name": "x"}, "payload": {"f": object()}}, "JSON"),
            (
                {"kind": "review", "action": {"name": "x", "args": {"n": float("nan")}}},
                "finite number",
            ),
            ({"kind": "judgment", "output_schema": {}, "payload": {"n": float("inf")}}, "finite"),
        ],
    )
    def test_invalid_specs(self, data: dict[str, object], message: str) -> None:
        with pytest.raises(pydantic.ValidationError, match=message):
            TaskSpec.model_validate(data)


def test_ids_are_uuid7_and_increase() -> None:
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value  # the canonical form: lower-case hex, dashed 8-4-4-4-12
