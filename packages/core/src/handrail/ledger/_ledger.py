"""The ledger: money for paid human work, double-entry, over the store.

Every money movement is one balanced :class:`Posting` whose id is its operation id, so a
replay changes nothing. A paid task's life in postings:

====================  ===============================================================
task created          ``hold``: org available → the task's escrow (reward × slots + fee)
estimate approved     ``adjust``: escrow grows or shrinks to the agreed price
verified              ``resolve``: each accepted answer's reward → its worker's pending,
                      fee → platform, the rest → back to the org (at most once)
cancelled, expired,   ``resolve`` with nothing accepted and no fee: everything back to the
failed                org
disputed              ``freeze``: the task's rewards and fee → a dispute account
upheld / overturned   ``unfreeze`` back to workers and fee / ``overturn`` to the org
hold period over      ``settle``: worker pending → worker available (default 7 days)
payout                ``payout``: worker available → payout in flight, then
                      ``payout_sent`` (to the rail, less its fee) or ``payout_failed``
                      (back to the worker)
====================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import JsonValue

from ..clock import Clock, SystemClock
from ..errors import (
    IdempotencyConflict,
    InvalidTransition,
    PermissionDenied,
    ValidationError,
)
from ..models import Principal, Role, Task
from ..money import Currency, Money
from ._accounts import Account, AccountKind
from ._fees import FeeSchedule, percent_of
from ._model import (
    Hold,
    HoldStatus,
    Posting,
    PostingKind,
    Settlement,
    SettlementStatus,
)
from ._rails import FundingRail, PayoutRail, SandboxPayoutRail

if TYPE_CHECKING:  # the store imports ledger records: no cycle at run time
    from ..store import Store, Transaction

from ._payouts import _entries, _SettlementAndPayouts
from ._reads import EntryPage, _Reads

__all__ = ["EntryPage", "Ledger"]


def _into_escrow(
    posting_id: str,
    kind: PostingKind,
    task: Task,
    amount: Money,
    now: datetime,
    memo: JsonValue,
    *,
    back: bool = False,
) -> Posting:
    """Money from the organisation into a task's escrow (or ``back`` out of it)."""
    sign = -1 if back else 1
    return Posting(
        id=posting_id,
        kind=kind,
        org_id=task.org_id,
        task_id=task.id,
        currency=amount.currency,
        entries=_entries(
            (Account.org(task.org_id, amount.currency), -sign * amount.minor),
            (Account.escrow(task.org_id, task.id, amount.currency), sign * amount.minor),
        ),
        created_at=now,
        memo=memo,
    )


class Ledger(_SettlementAndPayouts, _Reads):
    """Money operations over a :class:`~handrail.store.Store`.

    ``hold_period`` is how long a worker's earnings stay pending (open to disputes) before
    they settle; ``min_payout`` is the smallest payout per currency (default $1.00, 1,000
    sats).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        fees: FeeSchedule | None = None,
        hold_period: timedelta = timedelta(days=7),
        payout_rail: PayoutRail | None = None,
        funding_rail: FundingRail | None = None,
        min_payout: Mapping[Currency, int] | None = None,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.fees = fees or FeeSchedule()
        self.hold_period = hold_period
        self.payout_rail: PayoutRail = payout_rail or SandboxPayoutRail()
        self.funding_rail: FundingRail | None = funding_rail
        self.min_payout = dict(min_payout or {Currency.USD: 100, Currency.SATS: 1_000})

    async def _post_once(self, tx: Transaction, posting: Posting) -> Posting:
        """Post, or return the posting already made under this id (it must match)."""
        done = await tx.find_posting(posting.id)
        if done is None:
            await tx.post(posting)
            return posting
        same = done.model_dump(exclude={"created_at", "memo"}) == posting.model_dump(
            exclude={"created_at", "memo"}
        )
        if not same:
            raise IdempotencyConflict(posting.id, done.task_id or done.id)
        return done

    # ---------------------------------------------------------------- money in

    async def deposit(
        self, principal: Principal, amount: Money, *, key: str, reference: str | None = None
    ) -> Posting:
        """Credit the principal's organisation. Admins record credit; sandbox requesters
        get sandbox credit; a live requester's deposit needs the funding rail to confirm
        ``reference`` (with no rail, ``PermissionDenied``: live money enters only through a
        rail's confirmation or an admin's credit). Reviewers never deposit. The same ``key``
        again returns the first deposit (a different amount conflicts)."""
        if amount.minor <= 0:
            raise ValidationError.at("$.amount", "a deposit must be more than zero")
        if not key.strip():
            raise ValidationError.at("$.key", "must not be blank")
        if not principal.has(Role.ADMIN):
            if not principal.has(Role.REQUESTER):
                raise PermissionDenied(principal.id, "deposit", "needs the requester role")
            if not principal.sandbox:
                await self._confirmed(principal, amount, reference)
        org = principal.org_id
        # sandbox credit is minted in the sandbox: no live account is touched
        source = Account.mint(org, amount.currency) if principal.sandbox else None
        posting = Posting(
            id=f"deposit:{Account.org(org, amount.currency).id}:{key}",
            kind=PostingKind.DEPOSIT,
            org_id=org,
            currency=amount.currency,
            entries=_entries(
                (source or Account.funding(amount.currency), -amount.minor),
                (Account.org(org, amount.currency), amount.minor),
            ),
            created_at=self.clock.now(),
            memo={"reference": reference, "by": principal.id, "sandbox": principal.sandbox},
        )

        async def op(tx: Transaction) -> Posting:
            return await self._post_once(tx, posting)

        return await self._write(op)

    async def _confirmed(self, principal: Principal, amount: Money, reference: str | None) -> None:
        """Refuse a live requester's deposit the funding rail does not confirm."""
        if self.funding_rail is None:
            raise PermissionDenied(
                principal.id,
                "deposit live money",
                "no funding rail confirms transfers here: an admin records the credit",
            )
        if not reference:
            raise ValidationError.at("$.reference", "a live deposit names its transfer")
        if not await self.funding_rail.confirm(principal.org_id, amount, reference):
            raise ValidationError.at("$.reference", "the funding rail did not confirm it")

    # ---------------------------------------------------------------- views

    # ---------------------------------------------------------------- a task's life

    async def hold(self, tx: Transaction, task: Task, now: datetime) -> Hold | None:
        """Reserve reward × answer cap + fee for a paid task (the cap is its redundancy
        unless consensus may ask for more answers); ``InsufficientFunds`` if the
        organisation cannot cover it (the caller's transaction then undoes the task)."""
        if task.payout is None or task.payout.minor == 0:
            return None
        cur = task.payout.currency
        spend = await tx.spend_since(task.org_id, cur, now - self.fees.window)
        fee = self.fees.fee(task.payout * task.max_answers, spend)
        hold = Hold(
            task_id=task.id,
            org_id=task.org_id,
            reward=task.payout,
            slots=task.max_answers,
            fee=fee,
            fee_bps=self.fees.bps(cur, spend),
            fee_minimum=self.fees.minimum.get(cur, 0),
        )
        await tx.put_hold(hold, expected_version=None)
        await self._top_up(tx, task, hold.amount, f"top_up:{task.id}", now)
        memo: dict[str, JsonValue] = {
            "reward": hold.reward.amount,
            "slots": hold.slots,
            "fee": fee.amount,
        }
        await tx.post(
            _into_escrow(f"hold:{task.id}", PostingKind.HOLD, task, hold.amount, now, memo)
        )
        return hold

    async def _top_up(
        self, tx: Transaction, task: Task, amount: Money, posting_id: str, now: datetime
    ) -> None:
        """A sandbox task is funded without a deposit: when the sandbox's balance cannot
        cover ``amount``, it is first topped up by ``amount`` from the sandbox's mint (one
        balanced posting; by the whole amount, so concurrent holds each bring their own).
        Live tasks are never topped up."""
        if not task.sandbox:
            return
        org = Account.org(task.org_id, amount.currency)
        if (await tx.balances([org.id]))[org.id] >= amount.minor:
            return
        await tx.post(
            Posting(
                id=posting_id,
                kind=PostingKind.TOP_UP,
                org_id=task.org_id,
                task_id=task.id,
                currency=amount.currency,
                entries=_entries(
                    (Account.mint(task.org_id, amount.currency), -amount.minor),
                    (org, amount.minor),
                ),
                created_at=now,
                memo={"sandbox": True},
            )
        )

    async def adjust(self, tx: Transaction, task: Task, now: datetime) -> None:
        """Re-price a held task whose reward changed (an approved estimate)."""
        hold = await tx.get_hold(task.id)
        if hold is None or task.payout is None or hold.status is not HoldStatus.HELD:
            return
        if task.payout == hold.reward:
            return
        if task.payout.currency is not hold.reward.currency:
            raise ValidationError.at("$.payout.currency", "a hold keeps its currency")
        cur = hold.reward.currency
        base = (task.payout * hold.slots).minor
        fee = max(percent_of(base, hold.fee_bps), hold.fee_minimum)  # the rate held at first
        repriced = hold.model_copy(
            update={
                "reward": task.payout,
                "fee": Money(currency=cur, minor=fee),
                "version": hold.version + 1,
            }
        )
        delta = repriced.amount.minor - hold.amount.minor
        await tx.put_hold(repriced, expected_version=hold.version)
        if delta > 0:
            change = Money(currency=cur, minor=delta)
            await self._top_up(tx, task, change, f"top_up:{task.id}:{hold.version}", now)
        if delta:
            memo: dict[str, JsonValue] = {
                "reward": repriced.reward.amount,
                "fee": repriced.fee.amount,
            }
            change = Money(currency=cur, minor=abs(delta))
            posting_id = f"adjust:{task.id}:{hold.version}"
            await tx.post(
                _into_escrow(
                    posting_id, PostingKind.ADJUST, task, change, now, memo, back=delta < 0
                )
            )

    async def resolve(
        self, tx: Transaction, task: Task, accepted: Sequence[str], now: datetime
    ) -> None:
        """Settle a held task once: pay each accepted worker the reward (into pending, for
        the hold period) and the platform its fee, and return the rest to the organisation.
        With nobody accepted, everything goes back, fee included."""
        hold = await tx.get_hold(task.id)
        if hold is None:
            return
        if hold.status is HoldStatus.RESOLVED:
            raise InvalidTransition(task.id, task.status.value, "resolve", detail="already paid")
        cur = hold.reward.currency
        paid = list(dict.fromkeys(accepted))[: hold.slots]
        reward = hold.reward.minor
        fee = hold.fee_for(len(paid))
        rest = hold.amount.minor - reward * len(paid) - fee
        moves: list[tuple[Account, int]] = [
            (Account.escrow(task.org_id, task.id, cur), -hold.amount.minor)
        ]
        moves += [(Account.pending(task.org_id, w, cur), reward) for w in paid]
        moves += [(Account.fees(cur), fee), (Account.org(task.org_id, cur), rest)]
        await tx.put_hold(
            hold.model_copy(update={"status": HoldStatus.RESOLVED, "version": hold.version + 1}),
            expected_version=hold.version,
        )
        await tx.post(
            Posting(
                id=f"resolve:{task.id}",
                kind=PostingKind.RESOLVE,
                org_id=task.org_id,
                task_id=task.id,
                currency=cur,
                entries=_entries(*moves),
                volume=reward * len(paid) + fee,
                created_at=now,
                memo={"accepted": ", ".join(paid), "status": task.status.value},
            )
        )
        for worker in paid if reward else ():
            await tx.put_settlement(
                Settlement(
                    id=f"{task.id}:{worker}",
                    org_id=task.org_id,
                    worker_id=worker,
                    task_id=task.id,
                    amount=hold.reward,
                    due_at=now + self.hold_period,
                ),
                expected_version=None,
            )

    async def _fee_paid(self, tx: Transaction, task_id: str) -> int:
        resolved = await tx.find_posting(f"resolve:{task_id}")
        if resolved is None:
            return 0
        return sum(
            e.amount for e in resolved.entries if e.account.kind is AccountKind.PLATFORM_FEES
        )

    async def freeze(self, tx: Transaction, task: Task, now: datetime, op: str) -> None:
        """Freeze what a disputed task paid out: rewards still pending, and the fee. A
        dispute after the earnings settled is refused (the hold period is the window)."""
        hold = await tx.get_hold(task.id)
        if hold is None:
            return  # an unpaid task: nothing to freeze
        cur = hold.reward.currency
        held = await tx.settlements_for_task(task.id)
        if any(s.status is not SettlementStatus.PENDING for s in held):
            raise InvalidTransition(
                task.id, task.status.value, "dispute", detail="its earnings have settled"
            )
        fee = await self._fee_paid(tx, task.id)
        total = sum(s.amount.minor for s in held) + fee
        if not total:
            return
        moves = [(Account.pending(task.org_id, s.worker_id, cur), -s.amount.minor) for s in held]
        moves += [(Account.fees(cur), -fee), (Account.dispute(task.org_id, task.id, cur), total)]
        await self._post_settlements(
            tx, task, held, SettlementStatus.FROZEN, now, op, moves, PostingKind.FREEZE
        )

    async def unfreeze(self, tx: Transaction, task: Task, now: datetime, op: str) -> None:
        """The dispute is resolved for the workers: their earnings and the fee go back."""
        await self._release_dispute(tx, task, now, op, to_org=False)

    async def overturn(self, tx: Transaction, task: Task, now: datetime, op: str) -> None:
        """The dispute is resolved for the organisation: it gets everything back."""
        await self._release_dispute(tx, task, now, op, to_org=True)

    async def _release_dispute(
        self, tx: Transaction, task: Task, now: datetime, op: str, *, to_org: bool
    ) -> None:
        hold = await tx.get_hold(task.id)
        if hold is None:
            return
        cur = hold.reward.currency
        dispute = Account.dispute(task.org_id, task.id, cur)
        frozen = (await tx.balances([dispute.id]))[dispute.id]
        if not frozen:
            return
        held = [
            s for s in await tx.settlements_for_task(task.id) if s.status is SettlementStatus.FROZEN
        ]
        moves: list[tuple[Account, int]] = [(dispute, -frozen)]
        if to_org:
            moves.append((Account.org(task.org_id, cur), frozen))
            status, kind = SettlementStatus.REVERSED, PostingKind.OVERTURN
        else:
            moves.append((Account.fees(cur), frozen - sum(s.amount.minor for s in held)))
            moves += [
                (Account.pending(task.org_id, s.worker_id, cur), s.amount.minor) for s in held
            ]
            status, kind = SettlementStatus.PENDING, PostingKind.UNFREEZE
        await self._post_settlements(tx, task, held, status, now, op, moves, kind)

    async def _post_settlements(
        self,
        tx: Transaction,
        task: Task,
        settlements: Sequence[Settlement],
        status: SettlementStatus,
        now: datetime,
        op: str,
        moves: Sequence[tuple[Account, int]],
        kind: PostingKind,
    ) -> None:
        for s in settlements:
            await tx.put_settlement(
                s.model_copy(update={"status": status, "version": s.version + 1}),
                expected_version=s.version,
            )
        await tx.post(
            Posting(
                id=f"{kind.value}:{task.id}:{op}",
                kind=kind,
                org_id=task.org_id,
                task_id=task.id,
                currency=moves[0][0].currency,
                entries=_entries(*moves),
                created_at=now,
            )
        )
