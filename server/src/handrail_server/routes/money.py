"""Money: balance, ledger entries, deposits, earnings, payouts, the fee schedule."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from handrail import Currency, Role
from handrail.ledger import Account, Balance, Earnings, PayoutRecord

from ..auth import require
from ..deps import HubDep, PrincipalDep, SessionDep
from ..idempotency import header_key, idempotent
from ..modes import organisation
from ..problems import ApiProblem
from ..schemas import DepositIn, EntryList, PayoutIn, PayoutList

router = APIRouter(prefix="/v1", tags=["money"])


@router.get("/balance", response_model=Balance)
async def balance(session: SessionDep, currency: Currency = Currency.USD) -> Balance:
    """What the organisation may spend, and what is held for its open paid tasks (in the
    key's mode: a sandbox key's balance is the sandbox's)."""
    held = await session.balance(currency)
    return held.model_copy(update={"org_id": organisation(held.org_id)})


@router.get("/ledger/entries", response_model=EntryList)
async def entries(
    session: SessionDep,
    principal: PrincipalDep,
    account: Literal["org", "pending", "available"] = "org",
    currency: Currency = Currency.USD,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Entries of the organisation's account, or of the calling worker's earnings."""
    if account == "org":
        target = Account.org(principal.org_id, currency)
    elif account == "pending":
        target = Account.pending(principal.org_id, principal.id, currency)
    else:
        target = Account.available(principal.org_id, principal.id, currency)
    page = await session.entries(target, after=after, limit=limit)
    return {
        "data": [e.model_dump(mode="json") for e in page.items],
        "has_more": page.next_cursor is not None,
        "next_cursor": page.next_cursor,
    }


def _need_key(request: Request, what: str) -> None:
    if header_key(request) is None:
        raise ApiProblem(400, "idempotency_key_required", f"{what} needs an Idempotency-Key header")


@router.post("/deposits", status_code=201)
async def deposit(
    request: Request, body: DepositIn, hub: HubDep, principal: PrincipalDep, session: SessionDep
) -> JSONResponse:
    """Credit the organisation: sandbox credit with a test key, an admin's credit, or a
    transfer the funding rail confirms. Needs an ``Idempotency-Key``."""
    _need_key(request, "a deposit")

    async def run(key: str | None) -> tuple[int, Any]:
        assert key is not None
        posting = await session.deposit(body.amount, key=key, reference=body.reference)
        return 201, posting.model_dump(mode="json")

    return await idempotent(
        request, hub.store, principal, body.model_dump(mode="json"), run, hub.clock.now()
    )


@router.get("/earnings", response_model=Earnings)
async def earnings(
    session: SessionDep,
    currency: Currency = Currency.USD,
    worker_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Earnings:
    return await session.earnings(currency, worker_id)


@router.post("/payouts", status_code=201, response_model=PayoutRecord)
async def payout(
    request: Request, body: PayoutIn, hub: HubDep, principal: PrincipalDep, session: SessionDep
) -> JSONResponse:
    """Pay out available earnings (less the rail's fee). Needs an ``Idempotency-Key``."""
    require(principal, Role.REVIEWER)
    _need_key(request, "a payout")

    async def run(key: str | None) -> tuple[int, Any]:
        assert key is not None
        record = await session.request_payout(body.amount, key=key)
        return 201, record.model_dump(mode="json")

    return await idempotent(
        request, hub.store, principal, body.model_dump(mode="json"), run, hub.clock.now()
    )


@router.get("/payouts", response_model=PayoutList)
async def payouts(
    session: SessionDep,
    worker_id: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    return {"data": [p.model_dump(mode="json") for p in await session.payouts(worker_id)]}


@router.get("/fees")
async def fees(hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """The fee schedule: percentage tiers by trailing spend, and the minimum per task."""
    schedule = hub.ledger.fees
    return {
        "window_days": schedule.window.days,
        "rounding": "half up, to a whole minor unit",
        "currencies": {
            currency.value: {
                "tiers": [
                    {"below": tier.below, "percent": tier.bps / 100}
                    for tier in schedule.tiers[currency]
                ],
                "minimum": schedule.minimum.get(currency, 0),
            }
            for currency in schedule.tiers
        },
    }
