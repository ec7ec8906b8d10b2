"""Money (requesters and admins): the organisation's balance in each currency (available
and held), and its account's ledger entries, oldest first, a page at a time. Amounts are
integer minor units, shown as money."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from handrail import Currency, Role
from handrail.ledger import Account

from ..._nav import add_nav
from ..._render import render
from ..._route import WebRoute
from ..._viewer import ViewerDep, hub_of
from ._common import link, money_text, need

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)
add_nav("Money", "/org/money", Role.REQUESTER, order=50)

PAGE = 50


@router.get("/org/money")
async def money_page(
    request: Request,
    viewer: ViewerDep,
    currency: Currency = Currency.USD,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
) -> Response:
    need(viewer, Role.REQUESTER)
    ledger = hub_of(request).ledger
    principal = viewer.principal
    balances = [await ledger.balance(principal, c) for c in Currency]
    account = Account.org(principal.org_id, currency)
    page = await ledger.entries(principal, account, after=after, limit=limit)
    limit_param = limit if limit != PAGE else None
    return render(
        request,
        "org/money.html",
        {
            "balances": [
                (
                    b.available.currency.value,
                    money_text(b.available.minor, b.available.currency),
                    money_text(b.held.minor, b.held.currency),
                )
                for b in balances
            ],
            "currency": currency.value,
            "currencies": [c.value for c in Currency],
            "entries": [(e, money_text(e.amount, currency)) for e in page.items],
            "next_url": link(
                "/org/money", currency=currency.value, after=page.next_cursor, limit=limit_param
            )
            if page.next_cursor is not None
            else None,
            "first_url": link("/org/money", currency=currency.value, limit=limit_param)
            if after is not None
            else None,
        },
    )
