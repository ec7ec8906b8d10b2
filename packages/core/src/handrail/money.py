"""Money: integer minor units inside, decimal strings at the edges, never a float.

``Money(currency="USD", minor=50)`` is fifty cents; its JSON form is
``{"currency": "USD", "amount": "0.50"}``, and ``Money.parse("0.50", "USD")`` reads it back.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = ["MAX_MINOR", "Currency", "Money"]

MAX_MINOR = 10**15
"""Largest amount in minor units (ten trillion dollars): far inside a 64-bit integer."""


class Currency(StrEnum):
    USD = "USD"
    SATS = "SATS"

    @property
    def exponent(self) -> int:
        """Digits after the decimal point in the currency's major unit."""
        return _EXPONENTS[self]


_EXPONENTS = {Currency.USD: 2, Currency.SATS: 0}


def _to_minor(amount: object, currency: Currency) -> int:
    if isinstance(amount, bool | float):
        raise ValueError("amounts are decimal strings such as '0.50', never floats")
    if not isinstance(amount, str | int | Decimal):
        raise ValueError("amount must be a decimal string such as '0.50'")
    try:
        value = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a finite amount")
    scaled = value.scaleb(currency.exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency} allows at most {currency.exponent} decimal places")
    return int(scaled)


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    currency: Currency
    minor: int = Field(ge=0, le=MAX_MINOR, description="amount in minor units (cents, sats)")

    @model_validator(mode="before")
    @classmethod
    def _from_edge(cls, data: Any) -> Any:
        # The edge form carries "amount" as a decimal string; the internal form carries "minor".
        if isinstance(data, dict) and "amount" in data:
            rest: dict[str, Any] = {k: v for k, v in data.items() if k != "amount"}
            if "minor" in rest:
                raise ValueError("give either 'amount' (decimal string) or 'minor', not both")
            currency = Currency(rest.get("currency", ""))
            rest["minor"] = _to_minor(data["amount"], currency)
            return rest
        return data

    @model_serializer(mode="plain")
    def _to_edge(self) -> dict[str, str]:
        return {"currency": self.currency.value, "amount": self.amount}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # the edge form, in and out: a currency and a decimal string
        return {
            "type": "object",
            "title": "Money",
            "required": ["currency", "amount"],
            "properties": {
                "currency": {"type": "string", "enum": [c.value for c in Currency]},
                "amount": {
                    "type": "string",
                    "pattern": r"^\d+(\.\d+)?$",
                    "examples": ["0.50", "1500"],
                    "description": "a decimal string: never a float",
                },
            },
            "additionalProperties": False,
        }

    @classmethod
    def parse(cls, amount: str | int | Decimal, currency: Currency | str) -> Self:
        return cls.model_validate({"currency": currency, "amount": amount})

    @classmethod
    def zero(cls, currency: Currency | str) -> Self:
        return cls(currency=Currency(currency), minor=0)

    @property
    def amount(self) -> str:
        """The decimal string at the edges: '0.50' USD, '1500' SATS."""
        exp = self.currency.exponent
        if exp == 0:
            return str(self.minor)
        whole, frac = divmod(self.minor, 10**exp)
        return f"{whole}.{frac:0{exp}d}"

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(currency=self.currency, minor=self.minor + other.minor)

    def __mul__(self, factor: int) -> Money:
        if not isinstance(factor, int) or isinstance(factor, bool):
            return NotImplemented
        return Money(currency=self.currency, minor=self.minor * factor)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency.value}"
