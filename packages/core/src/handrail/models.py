"""The domain model: tasks, actions, decisions, assignments and history events.

Models are immutable; the engine makes new versions with ``model_copy``. JSON payloads are
typed as pydantic's ``JsonValue`` so nothing that cannot travel as JSON gets in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from ._assignments import Assignment, AssignmentStatus, Estimate, StageResult, Verification
from ._model_base import _Model
from ._redact import check_paths, redact_decision, redact_paths
from .expressions import compiles
from .lifecycle import TERMINAL, Event, Status
from .money import Money

__all__ = [
    "RETRYABLE",
    "Action",
    "Assignment",
    "AssignmentStatus",
    "Decision",
    "DecisionType",
    "Estimate",
    "Kind",
    "Page",
    "Principal",
    "ReasonCode",
    "Remember",
    "ReviewPolicy",
    "RiskTier",
    "Role",
    "RuleOutcome",
    "StageResult",
    "Task",
    "TaskEvent",
    "TaskSpec",
    "Verification",
]

JsonObject = dict[str, JsonValue]
MAX_SLA_SECONDS = 30 * 24 * 3600
DEFAULT_SLA_SECONDS = 3600


class Kind(StrEnum):
    REVIEW = "review"
    """Approve, reject, modify or respond to an action an agent proposes."""
    JUDGMENT = "judgment"
    """Answer a question with JSON that fits ``output_schema``."""


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RISK_RANK: dict[RiskTier, int] = {
    RiskTier.LOW: 0,
    RiskTier.MEDIUM: 1,
    RiskTier.HIGH: 2,
    RiskTier.CRITICAL: 3,
}


class DecisionType(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    MODIFY = "modify"
    RESPOND = "respond"


DEFAULT_ALLOWED: tuple[DecisionType, ...] = (
    DecisionType.APPROVE,
    DecisionType.REJECT,
    DecisionType.MODIFY,
)


class ReasonCode(StrEnum):
    """Why a decision was made by the system rather than by a person deciding just now.

    A human's own decision carries no reason code. Agents can tell a human "no" (no code,
    or ``policy_deny``: a rule says no) from a system "no" worth asking again
    (:data:`RETRYABLE`).
    """

    POLICY_ALLOW = "policy_allow"
    """A policy rule approved the action at once."""
    POLICY_DENY = "policy_deny"
    """A policy rule rejected the action at once."""
    STANDING_APPROVAL = "standing_approval"
    """A reviewer's standing approval ("remember this") covered the action."""
    TIMEOUT = "timeout"
    """Nobody decided in time: the rule's default outcome (reject unless it says approve)."""
    NO_ELIGIBLE_REVIEWER = "no_eligible_reviewer"
    """The policy names fewer eligible reviewers than its quorum needs."""
    EXPIRED = "expired"
    """An approval was used after its shelf life (``expires_at``)."""
    CANCELLED = "cancelled"
    """The review was withdrawn before anyone decided."""
    VERIFICATION_FAILED = "verification_failed"
    """The decisions did not pass verification (reviewers disagreed, say)."""


RETRYABLE: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.TIMEOUT,
        ReasonCode.NO_ELIGIBLE_REVIEWER,
        ReasonCode.EXPIRED,
        ReasonCode.CANCELLED,
        ReasonCode.VERIFICATION_FAILED,
    }
)
"""Reason codes of a "no" that asking again may turn into a "yes"."""


class RuleOutcome(StrEnum):
    ALLOW = "allow"
    """Approve at once, recorded with the rule as decider."""
    DENY = "deny"
    """Reject at once with the rule's message."""
    ASK = "ask"
    """A person decides, under the rule's requirements."""


class Role(StrEnum):
    REQUESTER = "requester"
    """An agent (or its operator): creates, waits on, cancels and disputes tasks."""
    REVIEWER = "reviewer"
    """A human worker: claims tasks, decides reviews, submits answers."""
    ADMIN = "admin"
    """Everything, plus manual review and dispute resolution."""


def _strip_nonempty(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


Name = Annotated[str, AfterValidator(_strip_nonempty), Field(max_length=200)]


class Principal(_Model):
    """Who is acting: an id inside one organisation, with roles."""

    org_id: Name
    id: Name
    roles: frozenset[Role]
    sandbox: bool = False
    key_id: str | None = Field(
        default=None, max_length=64, description="the API key acting, recorded with decisions"
    )

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


class Action(_Model):
    """The call an agent wants to make: a tool name and its arguments."""

    name: Name
    args: JsonObject = Field(default_factory=dict)
    args_schema: JsonObject | None = Field(
        default=None, description="JSON Schema of args; modified args must satisfy it"
    )


class Remember(_Model):
    """A standing approval asked for with an approve ("remember this"): later reviews of the
    same tool whose arguments satisfy ``when`` (an expression over ``args``; without one,
    exactly these arguments) are approved by it for ``ttl_seconds``, until revoked."""

    when: Annotated[str, Field(min_length=1, max_length=4_000)] | None = None
    ttl_seconds: int = Field(ge=1, le=365 * 24 * 3600)

    _check_when = field_validator("when")(compiles)


class Decision(_Model):
    """A reviewer's verdict on a review task.

    ``approve`` runs the action as proposed, ``modify`` runs it with ``args`` (and, when
    ``tool`` is set, as that tool), ``reject`` stops it (``message`` says why), ``respond``
    stops it and answers the agent in words.

    The engine fills in the rest: who decided and when, the ``reason_code`` of a decision
    the system made (a policy rule, a standing approval, a timeout...), the ``rule_id`` of
    the policy rule behind it, every approver of a quorum (``reviewers``), the shelf life
    (``expires_at``) and, for a modify, the edit as a JSON Patch (``patch``, RFC 6902)
    against the proposed arguments. ``remember`` on an approve asks for a standing approval.
    """

    type: DecisionType
    message: str | None = Field(default=None, max_length=10_000)
    args: JsonObject | None = None
    reviewer_id: str | None = None
    decided_at: datetime | None = None
    tool: Annotated[str, AfterValidator(_strip_nonempty), Field(max_length=200)] | None = Field(
        default=None, description="modify only: run this tool instead (re-checked by policy)"
    )
    reason_code: ReasonCode | None = None
    rule_id: str | None = None
    standing_approval_id: str | None = None
    reviewers: tuple[str, ...] = ()
    expires_at: datetime | None = None
    patch: tuple[JsonObject, ...] | None = None
    remember: Remember | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        kind = self.type
        if kind is DecisionType.MODIFY and self.args is None:
            raise ValueError("a modify decision needs the edited 'args'")
        if kind is not DecisionType.MODIFY and self.args is not None:
            raise ValueError(f"a {kind.value} decision takes no 'args'")
        if kind is not DecisionType.MODIFY and self.tool is not None:
            raise ValueError(f"a {kind.value} decision takes no 'tool'")
        if kind is not DecisionType.APPROVE and self.remember is not None:
            raise ValueError("only an approve can be remembered")
        if kind in (DecisionType.REJECT, DecisionType.RESPOND) and not (self.message or "").strip():
            raise ValueError(f"a {kind.value} decision needs a 'message'")
        return self

    @classmethod
    def approve(cls, message: str | None = None, *, remember: Remember | None = None) -> Decision:
        return cls(type=DecisionType.APPROVE, message=message, remember=remember)

    @classmethod
    def reject(cls, message: str) -> Decision:
        return cls(type=DecisionType.REJECT, message=message)

    @classmethod
    def modify(
        cls, args: JsonObject, message: str | None = None, *, tool: str | None = None
    ) -> Decision:
        return cls(type=DecisionType.MODIFY, args=args, message=message, tool=tool)

    @classmethod
    def respond(cls, message: str) -> Decision:
        return cls(type=DecisionType.RESPOND, message=message)

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the decision's shelf life (``expires_at``) is over at ``now`` (default:
        the system clock)."""
        if self.expires_at is None:
            return False
        return (now or datetime.now(self.expires_at.tzinfo)) >= self.expires_at

    @property
    def is_approval(self) -> bool:
        """True for approve and modify, however old."""
        return self.type in (DecisionType.APPROVE, DecisionType.MODIFY)

    @property
    def approved(self) -> bool:
        """True when the action may run now (as proposed or modified): an approval whose
        shelf life is over (by the system clock) is not one. See :meth:`expired`."""
        return self.is_approval and not self.expired()

    @property
    def automatic(self) -> bool:
        """True when the system decided (a rule, a standing approval, a timeout...)."""
        return self.reason_code is not None

    @property
    def retryable(self) -> bool:
        """True for a system "no" that asking again may change (see :data:`RETRYABLE`)."""
        return self.reason_code in RETRYABLE and not self.is_approval

    def content(self) -> dict[str, Any]:
        """What was decided, without who, when or why: two decisions agree when these are
        equal."""
        fields = {"type", "message", "args"} | ({"tool"} if self.tool is not None else set())
        return self.model_dump(mode="json", include=fields)

    def action_key(self) -> str:
        """What two approvals must share to count together in a quorum: approve, or modify
        with the same tool and arguments (messages aside)."""
        return json.dumps(
            [self.type.value, self.tool, self.args], sort_keys=True, separators=(",", ":")
        )


class ReviewPolicy(_Model):
    """What the organisation's policy made of a review when it was posted: the rule that
    matched (``rule_id`` None: none did) and what it requires of the decision."""

    outcome: RuleOutcome = RuleOutcome.ASK
    rule_id: str | None = None
    policy_version: int = Field(default=0, ge=0)
    groups: tuple[str, ...] = Field(
        default=(), description="reviewer groups that may decide; empty: any reviewer"
    )
    quorum: int = Field(default=1, ge=1, le=13, description="approvals needed")
    veto: bool = Field(default=True, description="any reject ends the review as rejected")
    on_timeout: Literal["reject", "approve"] = "reject"
    answer_ttl_seconds: int | None = Field(default=None, ge=1)
    standing: bool = Field(default=True, description="standing approvals may decide it")
    escalate_to: tuple[str, ...] = Field(
        default=(),
        description="reviewer groups still to be let in, one per escalate_after_seconds, "
        "while nobody takes the review",
    )
    escalate_after_seconds: int | None = Field(default=None, ge=1)
    error: str | None = Field(default=None, description="why the matching rule failed")

    @property
    def slots(self) -> int:
        """How many reviewers may vote: 2N-1, so N approvals stay reachable."""
        return min(25, 2 * self.quorum - 1)


BATCH_ID = r"^[A-Za-z0-9._:@~-]+$"
"""What a ``batch_id`` may hold."""


class TaskSpec(_Model):
    """What a requester asks for. ``Task`` adds what the engine tracks."""

    kind: Kind
    task_type: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    title: Annotated[str, Field(max_length=500)] | None = None
    instructions: str | None = Field(default=None, max_length=50_000)
    payload: JsonObject = Field(default_factory=dict, description="context shown to the human")
    risk_tier: RiskTier = RiskTier.MEDIUM
    sla_seconds: int = Field(default=DEFAULT_SLA_SECONDS, ge=1, le=MAX_SLA_SECONDS)
    payout: Money | None = None
    redundancy: int = Field(default=1, ge=1, le=25)
    max_answers: int | None = Field(
        default=None, ge=1, le=25, description="answers it may grow to when they disagree"
    )
    max_attempts: int = Field(
        default=1, ge=1, le=10, description="deadlines it may be re-routed through"
    )
    require_estimate: bool = False
    idempotency_key: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    callback_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://\S+$")] | None = None
    metadata: JsonObject = Field(default_factory=dict)
    batch_id: Annotated[str, Field(min_length=1, max_length=200, pattern=BATCH_ID)] | None = Field(
        default=None,
        description="groups reviews asked together: the parallel tool calls of one agent "
        "turn share it, and reviewers see them side by side (letters, digits and . _ : @ ~ -, "
        "so it travels in a URL as it is)",
    )
    # review tasks
    action: Action | None = None
    agent_reasoning: str | None = Field(default=None, max_length=50_000)
    confidence: float | None = Field(default=None, ge=0, le=1)
    allowed_decisions: tuple[DecisionType, ...] = DEFAULT_ALLOWED
    # judgment tasks
    output_schema: JsonObject | None = None
    # known-answer (gold) tasks, for measuring workers: hidden from them
    gold_answer: JsonValue = None
    # approvals and privacy
    answer_ttl_seconds: int | None = Field(
        default=None, ge=1, le=365 * 24 * 3600, description="how long an approval stays usable"
    )
    redact: tuple[Annotated[str, Field(max_length=300)], ...] = Field(
        default=(),
        max_length=100,
        description="paths (args.card_number, payload.customer.ssn) masked for reviewers, "
        "webhooks and logs, kept intact for the requester",
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> Self:
        check_paths(self.redact)
        if self.max_answers is not None and self.max_answers < self.redundancy:
            raise ValueError("'max_answers' must be at least 'redundancy'")
        if self.kind is Kind.REVIEW:
            if self.action is None:
                raise ValueError("a review task needs an 'action'")
            if self.output_schema is not None:
                raise ValueError("a review task's output is a decision; drop 'output_schema'")
            if not self.allowed_decisions:
                raise ValueError("'allowed_decisions' must not be empty")
            if len(set(self.allowed_decisions)) != len(self.allowed_decisions):
                raise ValueError("'allowed_decisions' lists a decision twice")
        else:
            if self.output_schema is None:
                raise ValueError("a judgment task needs an 'output_schema'")
            if self.action is not None:
                raise ValueError("'action' belongs to review tasks")
        return self

    @property
    def effective_task_type(self) -> str:
        """``task_type``, or by default the tool's name for a review, ``judgment`` otherwise."""
        if self.task_type:
            return self.task_type
        return self.action.name[:100] if self.action is not None else self.kind.value

    @property
    def effective_title(self) -> str:
        if self.title:
            return self.title
        if self.action is not None:
            return f"Approve {self.action.name}"
        return self.effective_task_type


class Task(TaskSpec):
    """A task as the engine keeps it."""

    id: str
    org_id: str
    task_type: str
    title: str
    max_answers: int = Field(default=1, ge=1, le=25)
    attempt: int = Field(default=1, ge=1)
    extra_slots: int = Field(default=0, ge=0, le=1, description="a backup worker's slot")
    backup_at: datetime | None = None
    escalate_at: datetime | None = Field(
        default=None, description="when the next reviewer group is let in, if nobody took it"
    )
    status: Status = Status.POSTED
    sandbox: bool = False
    created_by: str
    output: JsonValue = None
    verification: Verification | None = None
    failure_reason: str | None = None
    assignments: tuple[Assignment, ...] = ()
    estimate: Estimate | None = None
    request_fingerprint: str | None = Field(default=None, repr=False)
    policy: ReviewPolicy | None = Field(
        default=None, description="what the policy asked of this review when it was posted"
    )
    reached_at: dict[Status, datetime] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    version: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.expires_at <= self.created_at:
            raise ValueError("'expires_at' must be after 'created_at'")
        if self.open_slots < 0:
            raise ValueError("more workers hold the task than 'redundancy' allows")
        if self.max_answers < self.redundancy:
            raise ValueError("'max_answers' must be at least 'redundancy'")
        if self.attempt > self.max_attempts:
            raise ValueError("'attempt' is past 'max_attempts'")
        return self

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def decision(self) -> Decision | None:
        """The decision of a decided review task."""
        if self.kind is not Kind.REVIEW or self.output is None:
            return None
        return Decision.model_validate(self.output)

    @property
    def open_slots(self) -> int:
        """How many more workers may claim the task."""
        taken = sum(1 for a in self.assignments if a.holds_slot)
        return self.redundancy + self.extra_slots - taken

    def for_worker(self) -> Task:
        """The task as a worker sees it: nothing about who posted it or how, so a gold task
        (posted by an admin, with a known answer) looks like any other; and redacted."""
        return self.redacted().model_copy(
            update={
                "gold_answer": None,
                "created_by": "requester",
                "idempotency_key": None,
                "request_fingerprint": None,
                "callback_url": None,
            }
        )

    def redacted(self) -> Task:
        """The task with every ``redact`` path masked: in the action's arguments, the
        payload, and every decision (its arguments and patch). The task itself, as stored
        and as the requester sees it, keeps them intact for the tool."""
        paths = self.redact
        if not paths:
            return self
        data = self.model_dump(mode="json")
        if data["action"] is not None:
            data["action"]["args"] = redact_paths(data["action"]["args"], paths, "args")
        data["payload"] = redact_paths(data["payload"], paths, "payload")
        if self.kind is Kind.REVIEW:
            data["output"] = redact_decision(data["output"], paths)
            for held in data["assignments"]:
                held["output"] = redact_decision(held["output"], paths)
            if data["verification"] is not None:
                verification = data["verification"]
                verification["output"] = redact_decision(verification["output"], paths)
        return Task.model_validate(data)

    def assignment_of(self, worker_id: str) -> Assignment | None:
        """The worker's latest assignment on this task, if any."""
        for a in reversed(self.assignments):
            if a.worker_id == worker_id:
                return a
        return None

    def active_assignment(self, worker_id: str) -> Assignment | None:
        a = self.assignment_of(worker_id)
        return a if a is not None and a.status is AssignmentStatus.ACTIVE else None

    def answers(self) -> Sequence[Assignment]:
        return [a for a in self.assignments if a.status is AssignmentStatus.SUBMITTED]

    def answer_key(self, output: JsonValue) -> str:
        """What two answers must share to agree: a decision's content (not who made it or
        when), or a judgment's JSON."""
        if self.kind is Kind.REVIEW and output is not None:
            output = Decision.model_validate(output).content()
        return json.dumps(output, sort_keys=True, separators=(",", ":"))

    def agreed_output(self) -> JsonValue:
        """The answer every submitted answer agrees on, or None when they differ or there
        are none."""
        answers = self.answers()
        if len({self.answer_key(a.output) for a in answers}) != 1:
            return None
        return answers[0].output

    def workers_agreeing_with(self, output: JsonValue) -> list[str]:
        """The workers whose submitted answer agrees with ``output``: the accepted ones."""
        key = self.answer_key(output)
        return [a.worker_id for a in self.answers() if self.answer_key(a.output) == key]


class TaskEvent(_Model):
    """One entry of a task's history: who did what, when, from which state to which, and why.

    History is append-only; ``seq`` is assigned by the store and orders all events.
    """

    id: str
    seq: int | None = None
    task_id: str
    org_id: str
    at: datetime
    actor: str
    actor_role: str
    event: Event
    from_status: Status | None
    to_status: Status
    reason: str | None = None
    data: JsonObject = Field(default_factory=dict)


class Page(BaseModel):
    """One page of a list, with the cursor for the next."""

    model_config = ConfigDict(frozen=True)

    items: tuple[Task, ...]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None
