"""Notifications in each channel's form: an email (plain text and HTML), a Slack message
(Block Kit, with Approve / Reject buttons on reviews)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from ._model import Notification
from ._templates import render

__all__ = ["email_message", "slack_escape", "slack_message", "slack_update"]

APPROVE, REJECT = "handrail_approve", "handrail_reject"


def email_message(note: Notification, sender: str) -> EmailMessage:
    assert note.address is not None
    message = EmailMessage()
    message["Subject"] = note.subject
    message["From"] = sender
    message["To"] = note.address
    message["Message-ID"] = make_msgid(domain="handrail")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render("email.txt", note=note))
    message.add_alternative(render("email.html", note=note), subtype="html")
    return message


def slack_escape(text: str) -> str:
    """Text safe inside Slack mrkdwn (no stray links, mentions or formatting tokens)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(note: Notification) -> dict[str, Any]:
    task = note.task
    lines = [f"*{note.headline}*: {slack_escape(task.title)}"]
    if note.tool is not None:
        lines.append(f"Tool `{slack_escape(note.tool)}`")
    if note.why:
        lines.append(slack_escape(note.why))
    if note.mentions:
        lines.append("For " + " ".join(f"<@{m}>" for m in note.mentions))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]
    if note.args_text is not None:
        code = slack_escape(note.args_text).replace("```", "'''")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{code}```"}})
    due = int(task.expires_at.timestamp())
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"risk {task.risk_tier.value} · due "
                    f"<!date^{due}^{{date_short_pretty}} {{time}}|{task.expires_at.isoformat()}>"
                    f" · <{note.task_url}|task {task.id}>",
                }
            ],
        }
    )
    if note.decidable:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"handrail:{task.id}",
                "elements": [
                    _button(APPROVE, "Approve", "primary", task.id),
                    {
                        **_button(REJECT, "Reject", "danger", task.id),
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Reject?"},
                            "text": {"type": "mrkdwn", "text": "The agent will not go ahead."},
                            "confirm": {"type": "plain_text", "text": "Reject"},
                            "deny": {"type": "plain_text", "text": "Cancel"},
                        },
                    },
                ],
            }
        )
    return {"text": f"{note.headline}: {task.title}", "blocks": blocks}


def _button(action_id: str, label: str, style: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": value,
    }


def slack_update(text: str, *, replace: bool) -> dict[str, Any]:
    """An answer to an interaction: replacing the message (a decision was made) or, for a
    refusal, a note only the clicker sees (the buttons stay for those who may)."""
    if replace:
        return {"replace_original": True, "text": text}
    return {"replace_original": False, "response_type": "ephemeral", "text": text}
