"""Settlement and payouts: a worker's earnings move from pending to available once their
hold period is over, then out through the payout rail (and back if the rail fails).

:class:`~handrail.ledger.Ledger` composes this mixin; ``_entries`` builds a posting's
entries for both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from .._retry import retry_conflicts
from ..clock import Clock
from ..errors import IdempotencyConflict, PermissionDenied, ValidationError
from ..ids import new_id
from ..models import Principal, Role
from ..money import Currency, Money
from ._accounts import Account
from ._model import (
    Entry,
    PayoutRecord,
    PayoutStatus,
    Posting,
    PostingKind,
    Settlement,
    SettlementStatus,
)
from ._rails import PayoutRail, RailResult

if TYPE_CHECKING:  # the store imports ledger records: no cycle at run time
    from ..store import Store, Transaction


T = TypeVar("T")


def _entries(*moves: tuple[Account, int]) -> tuple[Entry, ...]:
    return tuple(Entry(account=a, amount=n) for a, n in moves if n != 0)


class _SettlementAndPayouts:
    """The ledger's settlement and payouts (its store, clock and rail are set by ``Ledger``)."""

    store: Store
    clock: Clock
    payout_rail: PayoutRail
    min_payout: dict[Currency, int]

    async def _write(self, op: Callable[[Transaction], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self.store.transaction() as tx:
                return await op(tx)

        return await retry_conflicts(attempt)

    # ---------------------------------------------------------------- settlement

    async def settle_due(self, limit: int = 500) -> list[Settlement]:
        """Move every worker's earnings whose hold period is over from pending to
        available."""
        now = self.clock.now()
        async with self.store.transaction(readonly=True) as tx:
            due = await tx.due_settlements(now, limit)
        settled = []
        for item in due:

            async def op(tx: Transaction, item: Settlement = item) -> Settlement | None:
                current = next(
                    (s for s in await tx.settlements_for_task(item.task_id) if s.id == item.id),
                    None,
                )
                if current is None or current.status is not SettlementStatus.PENDING:
                    return None  # frozen or settled meanwhile
                if current.due_at > now:
                    return None
                cur = current.amount.currency
                done = current.model_copy(
                    update={"status": SettlementStatus.SETTLED, "version": current.version + 1}
                )
                await tx.put_settlement(done, expected_version=current.version)
                await tx.post(
                    Posting(
                        id=f"settle:{current.id}",
                        kind=PostingKind.SETTLE,
                        org_id=current.org_id,
                        task_id=current.task_id,
                        currency=cur,
                        entries=_entries(
                            (
                                Account.pending(current.org_id, current.worker_id, cur),
                                -current.amount.minor,
                            ),
                            (
                                Account.available(current.org_id, current.worker_id, cur),
                                current.amount.minor,
                            ),
                        ),
                        created_at=now,
                    )
                )
                return done

            result = await self._write(op)
            if result is not None:
                settled.append(result)
        return settled

    # ---------------------------------------------------------------- payouts

    async def request_payout(
        self, principal: Principal, amount: Money, *, key: str
    ) -> PayoutRecord:
        """Pay ``amount`` of the worker's available earnings out through the payout rail,
        less the rail's fee. The same ``key`` again returns the same payout."""
        if not principal.has(Role.REVIEWER):
            raise PermissionDenied(principal.id, "request payouts", "needs the reviewer role")
        minimum = self.min_payout.get(amount.currency, 1)
        if amount.minor < minimum:
            least = Money(currency=amount.currency, minor=minimum)
            raise ValidationError.at("$.amount", f"the smallest payout is {least}")
        if not key.strip():
            raise ValidationError.at("$.key", "must not be blank")
        org, worker, cur = principal.org_id, principal.id, amount.currency

        async def start(tx: Transaction) -> PayoutRecord:
            existing = await tx.find_payout(org, worker, key)
            if existing is not None:
                if existing.amount != amount:
                    raise IdempotencyConflict(key, existing.id)
                return existing
            now = self.clock.now()
            payout = PayoutRecord(
                id=new_id(),
                org_id=org,
                worker_id=worker,
                key=key,
                amount=amount,
                fee=self.payout_rail.fee(amount),
                rail=self.payout_rail.name,
                created_at=now,
                updated_at=now,
            )
            await tx.put_payout(payout, expected_version=None)
            await tx.post(
                Posting(
                    id=f"payout:{payout.id}",
                    kind=PostingKind.PAYOUT,
                    org_id=org,
                    currency=cur,
                    entries=_entries(
                        (Account.available(org, worker, cur), -amount.minor),
                        (Account.payout(org, payout.id, cur), amount.minor),
                    ),
                    created_at=now,
                    memo={"worker": worker, "key": key},
                )
            )
            return payout

        payout = await self._write(start)
        if payout.status is not PayoutStatus.PENDING:
            return payout
        return await self._send(payout)

    async def reconcile_payouts(self, limit: int = 100) -> list[PayoutRecord]:
        """Finish payouts whose outcome was never recorded (a crash mid-payout): ask the
        rail again, by the payout's id."""
        async with self.store.transaction(readonly=True) as tx:
            pending = await tx.pending_payouts(limit)
        return [await self._send(p) for p in pending]

    async def _send(self, payout: PayoutRecord) -> PayoutRecord:
        try:
            result = await self.payout_rail.send(payout)
        except Exception as exc:  # the rail's trouble: the money goes back to the worker
            result = RailResult(ok=False, failure=f"{type(exc).__name__}: {exc}")

        async def finish(tx: Transaction) -> PayoutRecord:
            current = await tx.find_payout(payout.org_id, payout.worker_id, payout.key)
            assert current is not None
            if current.status is not PayoutStatus.PENDING:
                return current
            now = self.clock.now()
            org, cur, flight = payout.org_id, payout.amount.currency, payout.amount.minor
            in_flight = Account.payout(org, payout.id, cur)
            if result.ok:
                moves = [
                    (in_flight, -flight),
                    (Account.payouts(cur), flight - payout.fee.minor),
                    (Account.rail_fees(cur), payout.fee.minor),
                ]
                kind, status = PostingKind.PAYOUT_SENT, PayoutStatus.SENT
            else:
                moves = [
                    (in_flight, -flight),
                    (Account.available(org, payout.worker_id, cur), flight),
                ]
                kind, status = PostingKind.PAYOUT_FAILED, PayoutStatus.FAILED
            done = current.model_copy(
                update={
                    "status": status,
                    "reference": result.reference,
                    "failure": result.failure,
                    "updated_at": now,
                    "version": current.version + 1,
                }
            )
            await tx.put_payout(done, expected_version=current.version)
            await tx.post(
                Posting(
                    id=f"{kind.value}:{payout.id}",
                    kind=kind,
                    org_id=org,
                    currency=cur,
                    entries=_entries(*moves),
                    created_at=now,
                    memo={"reference": result.reference, "failure": result.failure},
                )
            )
            return done

        return await self._write(finish)
