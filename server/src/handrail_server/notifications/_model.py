"""What a notification says, before a channel gives it its form."""

from __future__ import annotations

import json
from dataclasses import dataclass

from handrail import Kind, Task

__all__ = ["EVENT_TYPES", "HEADLINES", "Notification"]

HEADLINES: dict[str, str] = {
    "task.new": "Review needed",
    "task.sla_warning": "Running out of time",
    "task.manual_review": "Manual review needed",
    "task.escalated": "Escalated to you",
}
EVENT_TYPES: tuple[str, ...] = tuple(HEADLINES)
ARGS_SHOWN = 2_000  # characters of the proposed arguments a message carries


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one task, to one reviewer (email) or one channel (Slack).

    ``task`` is the task as reviewers see it (masked fields masked). The decision links
    are set for a review a recipient may decide, each carrying that recipient's own
    single-use token; ``mentions`` are the Slack users it is for."""

    event: str
    task: Task
    task_url: str
    why: str | None = None
    recipient: str | None = None
    address: str | None = None
    mentions: tuple[str, ...] = ()
    approve_url: str | None = None
    reject_url: str | None = None

    @property
    def headline(self) -> str:
        return HEADLINES.get(self.event, "Handrail")

    @property
    def subject(self) -> str:
        title = " ".join(self.task.title.split())  # no CR/LF: a header is one line
        return f"[Handrail] {self.headline}: {title}"[:250]

    @property
    def decidable(self) -> bool:
        """Whether it carries Approve / Reject (a review, before manual review)."""
        return self.task.kind is Kind.REVIEW and self.event != "task.manual_review"

    @property
    def tool(self) -> str | None:
        return self.task.action.name if self.task.action is not None else None

    @property
    def args_text(self) -> str | None:
        """The proposed arguments as indented JSON, cut short when long."""
        if self.task.action is None:
            return None
        text = json.dumps(self.task.action.args, indent=2, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= ARGS_SHOWN else text[:ARGS_SHOWN] + "\n…"
