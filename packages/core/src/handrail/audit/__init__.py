"""The tamper-evident audit log: one hash chain per organisation.

Stores append to it in the same transaction as the change it records: every task event
(decisions, policy outcomes, and the API key or token behind a decision included), every
ledger posting, and what the engine records on its own (refused decisions, policy and
group changes, standing approvals, decision tokens). The chain is sealed when the
transaction commits; :func:`verify` recomputes it.
"""

from ._chain import (
    GENESIS,
    AuditEntry,
    AuditHead,
    AuditRecord,
    ChainReport,
    ChainVerifier,
    averify,
    body_of,
    chain,
    event_record,
    link,
    posting_record,
    seal,
    verify,
)

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
