"""A flow's persistence that keeps the pending review until the flow has got past it.

CrewAI clears a paused flow's pending feedback when it resumes, *before* it runs the
methods that listen to the outcome. A process killed inside one of those methods (the one
that sends the approved email, say) leaves nothing to resume: the approved action would
never happen. ``resume_flow`` therefore hands the flow this wrapper: the clear is held
back, and done only when the resume has finished (or has paused again at the next review,
whose pending record then replaces this one). Until then the flow can be resumed again,
from the same review, with the same decision and the same execution key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crewai.flow.persistence.base import FlowPersistence
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

__all__ = ["KeepPending"]


class KeepPending(FlowPersistence):
    """``inner``, with ``clear_pending_feedback`` held back until :meth:`settle`."""

    persistence_type: str = "handrail-keep-pending"
    inner: Any = None
    held: list[str] = Field(default_factory=list)
    paused_again: bool = False

    def init_db(self) -> None:  # the inner persistence is set up already
        return None

    def save_state(
        self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel
    ) -> None:
        self.inner.save_state(flow_uuid, method_name, state_data)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        loaded: dict[str, Any] | None = self.inner.load_state(flow_uuid)
        return loaded

    def save_pending_feedback(
        self,
        flow_uuid: str,
        context: PendingFeedbackContext,
        state_data: dict[str, Any] | BaseModel,
    ) -> None:
        self.inner.save_pending_feedback(flow_uuid, context, state_data)
        self.paused_again = True  # the next review's record replaced this one

    def load_pending_feedback(
        self, flow_uuid: str
    ) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        loaded: tuple[dict[str, Any], PendingFeedbackContext] | None = (
            self.inner.load_pending_feedback(flow_uuid)
        )
        return loaded

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        self.held.append(flow_uuid)

    def settle(self) -> None:
        """The resume finished: clear what CrewAI asked to clear (unless the flow paused
        again, at the next review, whose record must stay)."""
        if not self.paused_again:
            for flow_uuid in self.held:
                self.inner.clear_pending_feedback(flow_uuid)
        self.held.clear()
