"""HumanOps' agent accounts: registration, balance, deposits."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Header, Request
from pydantic import BaseModel, ConfigDict, Field

from handrail import Principal, Role
from handrail.ids import new_id

from ...auth import RateLimiter
from ...deps import HubDep, PrincipalDep
from ...idempotency import parse_key
from ...keys import create_key
from ...modes import world
from ...problems import ApiProblem
from .._shared import amount, money
from ._common import (
    USD,
    router,
)

# ---------------------------------------------------------------- agents


def _registrations(request: Request) -> RateLimiter:
    """Registrations per client address: 20 an hour (HumanOps' limit), per server."""
    state = request.app.state
    if not hasattr(state, "humanops_registrations"):
        state.humanops_registrations = RateLimiter(rate=20 / 3600, burst=20)
    limiter: RateLimiter = state.humanops_registrations
    return limiter


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    company: str | None = Field(default=None, max_length=200)


@router.post("/agents/register", status_code=201)
async def register_agent(request: Request, body: RegisterIn, hub: HubDep) -> dict[str, Any]:
    """A new agent: its own organisation and a sandbox key (shown once), whose tasks a
    simulated operator completes. An admin issues live keys (``handrail keys create``)."""
    if not hub.settings.compat_open_registration:
        raise ApiProblem(403, "forbidden", "registration is closed here: ask for a key")
    address = request.client.host if request.client else "unknown"
    wait = _registrations(request).take(address)
    if wait:
        raise ApiProblem(
            429, "rate_limited", "too many registrations", {"Retry-After": str(math.ceil(wait))}
        )
    org = f"agent-{new_id()}"
    now = hub.clock.now()
    made = await hub.store.run(
        lambda c: create_key(
            c,
            org_id=org,
            role=Role.REQUESTER,
            now=now,
            sandbox=True,
            principal=body.name.strip(),
            name=body.name.strip(),
        )
    )
    if hub.settings.run_background:
        hub.ensure_sandbox(world(org, True))
    return {
        "agent_id": org,
        "api_key": made.key,
        "tier": "SANDBOX",
        "verification_required": False,
        "sandbox_info": {
            "what": "Your tasks complete with a simulated operator and synthetic proof. "
            "No real humans are involved; deposits are sandbox credit.",
            "why": "Sandbox mode lets you test your whole integration first.",
            "how_to_upgrade": "Ask the server's administrator for a live key.",
            "limits": None,
        },
        "message": "Save this API key — it won't be shown again.",
    }


def _tier(principal: Principal) -> str:
    return "SANDBOX" if principal.sandbox else "STANDARD"


@router.get("/agents/balance")
async def balance(hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    held = await hub.ledger.balance(principal, USD)
    return {
        "deposit_balance": amount(held.available),
        "escrow_balance": amount(held.held),
        "currency": "USD",
        "tier": _tier(principal),
    }


class UsdcDeposit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tx_hash: str = Field(min_length=1, max_length=200)
    amount_usdc: Decimal = Field(ge=5, le=10_000, allow_inf_nan=False)
    chain: Literal["base"] = "base"


@router.post("/agents/deposit/usdc")
async def deposit_usdc(body: UsdcDeposit, hub: HubDep, principal: PrincipalDep) -> dict[str, Any]:
    """Credit a deposit, once per ``tx_hash`` (sandbox credit with a sandbox key; a live
    key's deposit is confirmed by the funding rail)."""
    credit = money(body.amount_usdc, USD, "$.amount_usdc")
    posting = await hub.ledger.deposit(
        principal, credit, key=f"usdc:{body.tx_hash}", reference=body.tx_hash
    )
    credited = amount(credit)
    return {
        "transaction_id": posting.id,
        "chain": body.chain,
        "tx_hash": body.tx_hash,
        "amount_usdc": credited,
        "amount_credited": credited,
        "status": "confirmed",
        "confirmations": 12,
        "confirmations_required": 12,
        "message": "USDC deposit confirmed and credited to your account",
    }


class FiatDeposit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: Decimal = Field(ge=5, le=10_000, allow_inf_nan=False)
    payment_method: Literal["card", "bank_transfer"] = "card"
    return_url: str | None = Field(default=None, max_length=2048)


@router.post("/agents/deposit")
async def deposit(
    body: FiatDeposit,
    hub: HubDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=256)] = None,
) -> dict[str, Any]:
    """Sandbox credit, at once (a live key's deposit needs the funding rail to confirm it);
    send ``Idempotency-Key`` to make a retry safe."""
    credit = money(body.amount_usd, USD, "$.amount_usd")
    key = parse_key(idempotency_key) or new_id()
    posting = await hub.ledger.deposit(
        principal, credit, key=f"fiat:{key}", reference=f"{body.payment_method}:{key}"
    )
    return {
        "transaction_id": posting.id,
        "amount_usd": amount(credit),
        "status": "completed",
        "message": "Funds added (sandbox credit)" if principal.sandbox else "Funds added",
    }
