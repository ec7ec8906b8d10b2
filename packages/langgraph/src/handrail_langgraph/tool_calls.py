"""Reviewing LangChain tool calls on a LangGraph run: the pieces this adapter's
``ReviewedToolNode`` and the LangChain adapter (gated tools, ``HandrailMiddleware``)
share. They need LangGraph and LangChain Core only, never the ``langchain`` package.

- :class:`ToolCallReviewer`: ``wrap_tool_call``/``awrap_tool_call`` hooks that gate the
  calls named in a ``HumanInTheLoopMiddleware``-style ``interrupt_on``.
- :class:`Gate`: gets the decision on one :class:`~handrail.tool_review.ToolReview`, by
  blocking or by pausing the graph (:mod:`handrail_langgraph.interrupts`).
- The execution key an approved call runs with (:func:`execution_key_of`), to make its
  side effect idempotent.
- The arguments a reviewer sees and edits (:func:`args_json_schema`,
  :func:`visible_args`, :func:`merge_edit`, :func:`edit_problem`), and the
  ``ToolMessage`` that answers a call (:func:`tool_message`, :func:`annotate_edit`).

What needs no framework (the review, its key, the texts the model reads) is core's
:mod:`handrail.tool_review`.
"""

from ._args import args_json_schema, edit_problem, merge_edit, visible_args, visible_fields
from ._gate import Gate, Mode, Ruling, call_key, must_propagate
from ._keys import EXECUTION_KEY, execution_key_of, keyed_config, keyed_request
from ._reviewer import ALL_DECISIONS, ReviewConfig, ToolCallReviewer, turn_of
from ._tool_messages import annotate_edit, tool_message

__all__ = [
    "ALL_DECISIONS",
    "EXECUTION_KEY",
    "Gate",
    "Mode",
    "ReviewConfig",
    "Ruling",
    "ToolCallReviewer",
    "annotate_edit",
    "args_json_schema",
    "call_key",
    "edit_problem",
    "execution_key_of",
    "keyed_config",
    "keyed_request",
    "merge_edit",
    "must_propagate",
    "tool_message",
    "turn_of",
    "visible_args",
    "visible_fields",
]
