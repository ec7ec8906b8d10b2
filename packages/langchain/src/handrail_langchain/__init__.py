"""Handrail for LangChain: tools that wait for a human's decision, and a drop-in
human-in-the-loop middleware.

>>> from handrail import Handrail
>>> from handrail_langchain import require_approval
>>> from langchain_core.tools import tool
>>> @tool
... def send_email(to: str, body: str) -> str:
...     '''Send an email.'''
...     return f"sent to {to}"
>>> with Handrail.local(sandbox=True) as hr:  # simulated reviewers approve
...     gated = require_approval(send_email, client=hr)
...     gated.invoke({"to": "a@example.com", "body": "hi"})
'sent to a@example.com'

- :func:`require_approval` gates any tool: each call becomes a Handrail review task.
- :func:`ask_human_tool` lets the model put a question to a human.
- :class:`HandrailMiddleware` is ``HumanInTheLoopMiddleware`` with Handrail deciding.
- :mod:`handrail_langchain.interrupts` pauses a LangGraph run with ``interrupt()`` until
  a task is decided: it is :mod:`handrail_langgraph.interrupts`, since a LangChain agent
  is a LangGraph graph (this adapter builds on that one, never the other way round).
"""

from handrail.interrupts import allowed_decisions
from handrail.tool_review import DO_NOT_RETRY, EDIT_NOTICE
from handrail_langgraph.tool_calls import Mode

from . import interrupts
from ._ask import AskHumanTool, HumanQuestion, ask_human_tool
from ._middleware import HandrailMiddleware
from ._tool import GatedTool, OnReject, require_approval

__all__ = [
    "DO_NOT_RETRY",
    "EDIT_NOTICE",
    "AskHumanTool",
    "GatedTool",
    "HandrailMiddleware",
    "HumanQuestion",
    "Mode",
    "OnReject",
    "allowed_decisions",
    "ask_human_tool",
    "interrupts",
    "require_approval",
]
