"""The task lifecycle, as data.

``TRANSITIONS`` is the whole lifecycle: every legal edge is a row of it, and nothing else
moves a task. ``docs/lifecycle.md`` is rendered from it (``scripts/render_lifecycle.py``),
and the tests walk every legal and every illegal pair of states.

An event may lead to more than one state (a ``submit`` keeps a task ``assigned`` while more
answers are wanted and makes it ``submitted`` with the last one); the engine picks the
target and :func:`check` proves the edge exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import InvalidTransition

__all__ = [
    "BACKUP_AT",
    "CANCELLABLE",
    "EXPIRABLE",
    "FINAL",
    "TERMINAL",
    "TRANSITIONS",
    "Edge",
    "Event",
    "Status",
    "check",
    "events_from",
    "is_legal",
    "render_markdown",
    "targets",
]


class Status(StrEnum):
    POSTED = "posted"
    ESTIMATE_PENDING = "estimate_pending"
    ASSIGNED = "assigned"
    SUBMITTED = "submitted"
    MANUAL_REVIEW = "manual_review"
    VERIFIED = "verified"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"


class Event(StrEnum):
    CREATE = "create"  # not an edge: the first history entry of every task
    CLAIM = "claim"
    OFFER_ESTIMATE = "offer_estimate"
    APPROVE_ESTIMATE = "approve_estimate"
    REJECT_ESTIMATE = "reject_estimate"
    WITHDRAW_ESTIMATE = "withdraw_estimate"
    RELEASE = "release"
    SUBMIT = "submit"
    VERIFY = "verify"
    ESCALATE = "escalate"
    FAIL = "fail"
    REPOST = "repost"
    CANCEL = "cancel"
    EXPIRE = "expire"
    ADD_BACKUP = "add_backup"
    REROUTE = "reroute"
    DISPUTE = "dispute"
    UPHOLD = "uphold"
    OVERTURN = "overturn"
    POLICY = "policy"
    WIDEN = "widen"


@dataclass(frozen=True, slots=True)
class Edge:
    source: Status
    event: Event
    target: Status
    meaning: str


S, E = Status, Event

TRANSITIONS: tuple[Edge, ...] = (
    Edge(S.POSTED, E.CLAIM, S.ASSIGNED, "a worker takes the task"),
    Edge(S.POSTED, E.OFFER_ESTIMATE, S.ESTIMATE_PENDING, "a worker offers an estimate"),
    Edge(S.ESTIMATE_PENDING, E.APPROVE_ESTIMATE, S.ASSIGNED, "the requester accepts it"),
    Edge(S.ESTIMATE_PENDING, E.REJECT_ESTIMATE, S.POSTED, "the requester declines it"),
    Edge(S.ESTIMATE_PENDING, E.WITHDRAW_ESTIMATE, S.POSTED, "the worker withdraws its offer"),
    Edge(S.ASSIGNED, E.CLAIM, S.ASSIGNED, "another worker takes a free slot"),
    Edge(S.ASSIGNED, E.SUBMIT, S.ASSIGNED, "an answer is in; more are wanted"),
    Edge(S.ASSIGNED, E.SUBMIT, S.SUBMITTED, "the last wanted answer is in"),
    Edge(S.ASSIGNED, E.RELEASE, S.ASSIGNED, "a worker gives its slot back; others remain"),
    Edge(S.ASSIGNED, E.RELEASE, S.POSTED, "the last worker gives the task back"),
    Edge(S.SUBMITTED, E.VERIFY, S.VERIFIED, "verification passes the output"),
    Edge(S.SUBMITTED, E.ESCALATE, S.MANUAL_REVIEW, "verification is unsure: a person checks"),
    Edge(S.SUBMITTED, E.FAIL, S.FAILED, "verification rejects it; no attempts remain"),
    Edge(S.SUBMITTED, E.REPOST, S.POSTED, "more or new answers are wanted"),
    Edge(S.MANUAL_REVIEW, E.VERIFY, S.VERIFIED, "the checker passes the output"),
    Edge(S.MANUAL_REVIEW, E.FAIL, S.FAILED, "the checker rejects the output"),
    Edge(S.VERIFIED, E.DISPUTE, S.DISPUTED, "the requester contests the result"),
    Edge(S.DISPUTED, E.UPHOLD, S.VERIFIED, "the dispute is resolved for the worker"),
    Edge(S.DISPUTED, E.OVERTURN, S.FAILED, "the dispute is resolved for the requester"),
    Edge(S.POSTED, E.CANCEL, S.CANCELLED, "the requester withdraws the task"),
    Edge(S.ESTIMATE_PENDING, E.CANCEL, S.CANCELLED, "the requester withdraws the task"),
    Edge(S.ASSIGNED, E.CANCEL, S.CANCELLED, "the requester withdraws the task"),
    Edge(S.POSTED, E.ADD_BACKUP, S.POSTED, "80% of the SLA gone: a backup worker's slot opens"),
    Edge(S.ASSIGNED, E.ADD_BACKUP, S.ASSIGNED, "80% of the SLA gone: a backup worker's slot opens"),
    Edge(S.POSTED, E.WIDEN, S.POSTED, "nobody took the review in time: the next group may"),
    Edge(S.ASSIGNED, E.WIDEN, S.ASSIGNED, "a slot stayed free too long: the next group may"),
    Edge(S.POSTED, E.REROUTE, S.POSTED, "the deadline passed: a new attempt, a new deadline"),
    Edge(S.ESTIMATE_PENDING, E.REROUTE, S.POSTED, "the deadline passed: a new attempt"),
    Edge(S.ASSIGNED, E.REROUTE, S.POSTED, "the deadline passed: workers released, new attempt"),
    Edge(S.ASSIGNED, E.REROUTE, S.ASSIGNED, "the deadline passed: answers kept, new attempt"),
    Edge(S.POSTED, E.EXPIRE, S.EXPIRED, "the deadline passed before enough answers"),
    Edge(S.ESTIMATE_PENDING, E.EXPIRE, S.EXPIRED, "the deadline passed before enough answers"),
    Edge(S.ASSIGNED, E.EXPIRE, S.EXPIRED, "the deadline passed before enough answers"),
    Edge(S.POSTED, E.POLICY, S.VERIFIED, "the policy decides a review (at once, or by default)"),
    Edge(S.ESTIMATE_PENDING, E.POLICY, S.VERIFIED, "the deadline passed: the rule's default"),
    Edge(S.ASSIGNED, E.POLICY, S.VERIFIED, "the deadline passed: the rule's default outcome"),
)

TERMINAL: frozenset[Status] = frozenset({S.VERIFIED, S.FAILED, S.EXPIRED, S.CANCELLED})
"""States a waiting agent returns on."""

FINAL: frozenset[Status] = frozenset(
    s for s in Status if not any(e.source is s for e in TRANSITIONS)
)
"""States nothing leaves."""

CANCELLABLE: frozenset[Status] = frozenset(e.source for e in TRANSITIONS if e.event is E.CANCEL)
EXPIRABLE: frozenset[Status] = frozenset(e.source for e in TRANSITIONS if e.event is E.EXPIRE)
"""States a deadline applies to: past it, a task is re-routed or expires."""

BACKUP_AT = 0.8
"""The share of a task's SLA after which a backup worker's slot opens (``add_backup``)."""

_BY_SOURCE_EVENT: dict[tuple[Status, Event], tuple[Status, ...]] = {}
for _edge in TRANSITIONS:
    _key = (_edge.source, _edge.event)
    _BY_SOURCE_EVENT[_key] = (*_BY_SOURCE_EVENT.get(_key, ()), _edge.target)
_PAIRS: frozenset[tuple[Status, Status]] = frozenset((e.source, e.target) for e in TRANSITIONS)


def targets(source: Status, event: Event) -> tuple[Status, ...]:
    """Where ``event`` may take a task in ``source`` (empty when it may not happen)."""
    return _BY_SOURCE_EVENT.get((source, event), ())


def events_from(source: Status) -> tuple[Event, ...]:
    return tuple(dict.fromkeys(e.event for e in TRANSITIONS if e.source is source))


def is_legal(source: Status, target: Status) -> bool:
    """Whether any event moves a task from ``source`` to ``target``."""
    return (source, target) in _PAIRS


def check(task_id: str, source: Status, event: Event, target: Status | None = None) -> Status:
    """The state ``event`` leads to from ``source``; raises :class:`InvalidTransition` if none.

    With several possible targets the caller must name one, and it must be in the table.
    """
    options = targets(source, event)
    if not options:
        raise InvalidTransition(task_id, source.value, event.value, target and target.value)
    if target is None:
        if len(options) > 1:
            raise ValueError(f"{event} from {source} has several targets; name one")
        return options[0]
    if target not in options:
        raise InvalidTransition(task_id, source.value, event.value, target.value)
    return target


def render_markdown() -> str:
    """The lifecycle as Markdown: a state diagram and the full transition table."""
    lines = [
        "# Task lifecycle",
        "",
        "Generated from `handrail.lifecycle.TRANSITIONS` by `scripts/render_lifecycle.py`;",
        "do not edit by hand. Every edge below is legal and every other pair of states is",
        "refused with `InvalidTransition`.",
        "",
        "```mermaid",
        "stateDiagram-v2",
        f"    [*] --> {S.POSTED.value}",
    ]
    lines += [f"    {e.source.value} --> {e.target.value}: {e.event.value}" for e in TRANSITIONS]
    lines += [f"    {s.value} --> [*]" for s in sorted(FINAL)]
    lines += [
        "```",
        "",
        "| from | event | to | meaning |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{e.source.value}` | `{e.event.value}` | `{e.target.value}` | {e.meaning} |"
        for e in TRANSITIONS
    ]
    lines += [
        "",
        f"- **Terminal for a waiting agent:** {', '.join(f'`{s}`' for s in sorted(TERMINAL))}.",
        f"- **Final (nothing leaves):** {', '.join(f'`{s}`' for s in sorted(FINAL))}.",
        "- `verified` is terminal for the agent but may still be disputed by the requester.",
        "- A task cannot be cancelled once an answer is in; one that expires with too few"
        " answers is refunded in full (no answer is paid until verification passes it).",
        "- A reviewer's decision on a `posted` review task is `claim`, `submit` and `verify`"
        " (or `escalate`) in one transaction.",
        "- An answer to a judgment task from a worker holding no slot claims a free one in the"
        " same transaction (`claim`, `submit`, and `verify` with the last answer), in-process"
        " and over HTTP alike; an answer that does not fit claims nothing, and a task with no"
        " free slot for the worker refuses it (`not_assigned`).",
        "- `policy` records a decision the system made for a review (see docs/policies.md):"
        " a rule's allow or deny, a standing approval or too few eligible reviewers as the"
        " task is created, or the rule's default outcome (`on_timeout: approve`) at its"
        " deadline. The decision carries a `reason_code` and the rule's id.",
        "- `widen` lets the next reviewer group of the review's rule (`escalate_to`) decide"
        " it when nobody took it within `escalate_after_seconds`; the SLA sweep records it.",
        "- Every transition appends an event to the task's history: who, when, from, to, why.",
        "",
    ]
    return "\n".join(lines)
