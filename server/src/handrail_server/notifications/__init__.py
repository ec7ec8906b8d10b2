"""Notifications: reviewers hear of work by email and in Slack, and decide from there.

Changes that call for people (a new review, 80% of its time gone, manual review, an
escalation) become rows of a durable outbox in the change's own transaction; a worker sends
them through each organisation's channels with retries, logging every attempt. Emails carry
Approve / Reject links with single-use decision tokens; Slack messages carry buttons whose
clicks come back signed to the interactions endpoint (``routes.integrations``).

The settings behind it (channels, reviewers' contacts) and the log of what was sent are
read and written here too (``ChannelSettings``, ``Contacts``, ``notification_log``): the
routes parse, call and serialise.
"""

from ._channel_settings import ChannelSetting, ChannelSettings
from ._channels import Channel, ChannelError, EmailChannel, SlackChannel
from ._contacts import Contact, Contacts, SlackUserTaken
from ._deciders import decider, read_link
from ._log import NotificationLog, notification_log
from ._model import EVENT_TYPES, Notification
from ._queue import NotifyHook, queue_notifications
from ._render import APPROVE, REJECT, slack_escape, slack_message, slack_update
from ._slack import WINDOW, SignatureRefused
from ._slack import sign as slack_sign
from ._slack import verify as slack_verify
from ._templates import render
from ._worker import NotificationWorker, decision_url, task_url

__all__ = [
    "APPROVE",
    "EVENT_TYPES",
    "REJECT",
    "WINDOW",
    "Channel",
    "ChannelError",
    "ChannelSetting",
    "ChannelSettings",
    "Contact",
    "Contacts",
    "EmailChannel",
    "Notification",
    "NotificationLog",
    "NotificationWorker",
    "NotifyHook",
    "SignatureRefused",
    "SlackChannel",
    "SlackUserTaken",
    "decider",
    "decision_url",
    "notification_log",
    "queue_notifications",
    "read_link",
    "render",
    "slack_escape",
    "slack_message",
    "slack_sign",
    "slack_update",
    "slack_verify",
    "task_url",
]
