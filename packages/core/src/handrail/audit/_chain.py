"""The audit chain: records, their hashes, sealing and verification.

Each organisation has one append-only chain. An entry's hash is
``sha256(prev_hash + "\\n" + body)``, where ``body`` is the entry's canonical JSON (keys
sorted, no spaces, UTF-8) of ``org_id``, ``seq``, ``at``, ``kind``, ``actor``, ``task_id``
and ``data``; the first entry's ``prev_hash`` is :data:`GENESIS`. Changing, removing or
reordering any entry breaks every link after it, and the organisation's head (the last
``seq`` and hash, kept beside the chain) catches a cut tail. :func:`verify` walks a chain
and names the first broken link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from .._model_base import assembled
from .._redact import redact_event_data
from ..models import TaskEvent

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditHead",
    "AuditRecord",
    "ChainReport",
    "ChainVerifier",
    "averify",
    "body_of",
    "chain",
    "event_record",
    "link",
    "posting_record",
    "seal",
    "verify",
]

GENESIS = "0" * 64


class AuditRecord(BaseModel):
    """Something to append to an organisation's audit chain (the store seals it)."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    at: datetime
    kind: str = Field(max_length=64)
    actor: str = Field(max_length=200)
    task_id: str | None = None
    data: dict[str, JsonValue] = Field(default_factory=dict)


class AuditEntry(AuditRecord):
    """A sealed entry: its place in the chain and the hashes linking it."""

    seq: int = Field(ge=1)
    prev_hash: str
    hash: str

    def body(self) -> str:
        return body_of(self, self.seq)

    def line(self) -> str:
        """The entry as one line of JSON Lines (what an export writes)."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


@dataclass(frozen=True, slots=True)
class AuditHead:
    """An organisation's newest entry: where the next one links on."""

    org_id: str
    seq: int
    hash: str


class ChainReport(BaseModel):
    """What verifying a chain found: ``ok``, or the first broken link (its ``seq`` and
    why). ``checked`` counts the entries read; ``head_seq`` is the last one recorded."""

    model_config = ConfigDict(frozen=True)

    org_id: str
    ok: bool
    checked: int
    head_seq: int
    broken_at: int | None = None
    reason: str | None = None


def _stamp(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    elif at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""What json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False) uses."""


def body_of(record: AuditRecord, seq: int) -> str:
    """The canonical JSON a record is hashed as, at position ``seq``."""
    return _CANONICAL.encode(
        {
            "org_id": record.org_id,
            "seq": seq,
            "at": _stamp(record.at),
            "kind": record.kind,
            "actor": record.actor,
            "task_id": record.task_id,
            "data": record.data,
        }
    )


def link(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def chain(records: Sequence[AuditRecord], head: AuditHead | None) -> list[tuple[AuditEntry, str]]:
    """``records`` (all of one organisation) chained on after ``head``, each with the
    body its hash covers (what a store keeps)."""
    seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
    sealed = []
    for record in records:
        seq += 1
        body = body_of(record, seq)
        digest = link(prev, body)
        entry = assembled(  # the record was validated when made
            AuditEntry,
            {
                "org_id": record.org_id,
                "at": record.at,
                "kind": record.kind,
                "actor": record.actor,
                "task_id": record.task_id,
                "data": record.data,
                "seq": seq,
                "prev_hash": prev,
                "hash": digest,
            },
        )
        sealed.append((entry, body))
        prev = digest
    return sealed


def seal(records: Sequence[AuditRecord], head: AuditHead | None) -> list[AuditEntry]:
    """``records`` (all of one organisation) chained on after ``head``."""
    return [entry for entry, _ in chain(records, head)]


class ChainVerifier:
    """Checks a chain entry by entry (feed it in ``seq`` order), then against the head."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.seq = 0
        self.hash = GENESIS
        self.checked = 0
        self.broken_at: int | None = None
        self.reason: str | None = None

    def feed(self, entry: AuditEntry) -> bool:
        """False once a link is broken (then stop feeding)."""
        self.checked += 1
        expected = self.seq + 1
        why = None
        if entry.org_id != self.org_id:
            why = f"the entry belongs to organisation {entry.org_id!r}"
        elif entry.seq != expected:
            why = f"expected entry {expected}, found {entry.seq}: entries are missing or moved"
        elif entry.prev_hash != self.hash:
            why = "its prev_hash does not match the previous entry's hash"
        elif link(entry.prev_hash, entry.body()) != entry.hash:
            why = "its contents do not match its hash: the entry was changed"
        if why is not None:
            self.broken_at, self.reason = expected, why
            return False
        self.seq, self.hash = entry.seq, entry.hash
        return True

    def report(self, head: AuditHead | None) -> ChainReport:
        if self.broken_at is None:
            recorded = head.seq if head is not None else 0
            if recorded > self.seq:
                self.broken_at = self.seq + 1
                self.reason = f"the head records {recorded} entries; the chain ends at {self.seq}"
            elif recorded < self.seq:
                self.broken_at = recorded + 1
                self.reason = f"the chain runs past the recorded head ({recorded} entries)"
            elif head is not None and head.hash != self.hash:
                self.broken_at = self.seq
                self.reason = "the chain's last hash does not match the recorded head"
        return ChainReport(
            org_id=self.org_id,
            ok=self.broken_at is None,
            checked=self.checked,
            head_seq=head.seq if head is not None else 0,
            broken_at=self.broken_at,
            reason=self.reason,
        )


def verify(org_id: str, entries: Iterable[AuditEntry], head: AuditHead | None) -> ChainReport:
    """Walk a whole chain (in ``seq`` order) and report the first broken link."""
    checker = ChainVerifier(org_id)
    for entry in entries:
        if not checker.feed(entry):
            break
    return checker.report(head)


async def averify(
    org_id: str, entries: AsyncIterable[AuditEntry], head: AuditHead | None
) -> ChainReport:
    checker = ChainVerifier(org_id)
    async for entry in entries:
        if not checker.feed(entry):
            break
    return checker.report(head)


# ---------------------------------------------------------------- what gets recorded


def event_record(event: TaskEvent, redact: Sequence[str] = ()) -> AuditRecord:
    """A task's history entry as an audit record (decisions masked as ``redact`` says)."""
    data: dict[str, Any] = {
        "event_id": event.id,
        "event": event.event.value,
        "from": event.from_status.value if event.from_status else None,
        "to": event.to_status.value,
        "role": event.actor_role,
        "reason": event.reason,
        "data": redact_event_data(event.data, redact),
    }
    return assembled(  # from a validated event: JSON all through
        AuditRecord,
        {
            "org_id": event.org_id,
            "at": event.at,
            "kind": f"task.{event.event.value}",
            "actor": event.actor,
            "task_id": event.task_id,
            "data": data,
        },
    )


def posting_record(posting: Any) -> AuditRecord:
    """A ledger posting (``handrail.ledger.Posting``) as an audit record."""
    return AuditRecord(
        org_id=posting.org_id or "*",
        at=posting.created_at,
        kind="ledger.posting",
        actor="ledger",
        task_id=posting.task_id,
        data={
            "posting_id": posting.id,
            "posting_kind": posting.kind.value,
            "currency": posting.currency.value,
            "volume": posting.volume,
            "entries": [[e.account.id, e.amount] for e in posting.entries],
        },
    )
