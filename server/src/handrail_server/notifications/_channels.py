"""Channels: where a notification goes. Email over SMTP (the server's relay, from
Settings) and Slack incoming webhooks (one URL per configured channel)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

import httpx

from ..settings import Settings
from ..webhooks import UnsafeTarget, check_target
from ._model import Notification
from ._render import email_message, slack_message

__all__ = ["Channel", "ChannelError", "EmailChannel", "SlackChannel"]


class ChannelError(Exception):
    """A send that did not go through (it is retried on the schedule)."""


class Channel(Protocol):
    kind: str

    async def send(self, note: Notification) -> None:
        """Deliver ``note``; raise ``ChannelError`` when it could not be."""
        ...


class EmailChannel:
    """Email through the SMTP server the settings name (STARTTLS, TLS or plain; a login
    when a user name is set). The blocking client runs in a thread."""

    kind = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return self.settings.smtp_host is not None

    async def send(self, note: Notification) -> None:
        if self.settings.smtp_host is None:
            raise ChannelError("no SMTP server is configured (HANDRAIL_SMTP_HOST)")
        if note.address is None:
            raise ChannelError("no email address to send to")
        message = email_message(note, self.settings.smtp_from)
        await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.smtp_host is not None
        try:
            smtp: smtplib.SMTP
            if s.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.smtp_timeout,
                    context=ssl.create_default_context(),
                )  # fmt: skip
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            with smtp:
                if s.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_username is not None:
                    password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                    smtp.login(s.smtp_username, password)
                refused = smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None
        if refused:
            raise ChannelError(f"the server refused {sorted(refused)}")


class SlackChannel:
    """A Slack incoming webhook: the message as Block Kit JSON, posted to its URL (checked
    against the webhook SSRF guard before each post)."""

    kind = "slack"

    def __init__(self, url: str, client: httpx.AsyncClient, *, allow_private: bool) -> None:
        self.url = url
        self.client = client
        self.allow_private = allow_private

    async def send(self, note: Notification) -> None:
        try:
            await check_target(self.url, allow_private=self.allow_private)
            answer = await self.client.post(self.url, json=slack_message(note))
        except (UnsafeTarget, httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= answer.status_code < 300:
            raise ChannelError(f"HTTP {answer.status_code}: {answer.text[:200]}")
