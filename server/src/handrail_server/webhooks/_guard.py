"""The SSRF guard: webhooks may not reach loopback, private, link-local or otherwise
special addresses, unless the server is told to allow them (tests, private networks)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from handrail.errors import ValidationError, ValidationIssue

__all__ = ["UnsafeTarget", "UnsafeWebhookUrl", "check_target", "check_url_input"]


class UnsafeTarget(ValueError):
    pass


class UnsafeWebhookUrl(ValidationError):
    """A URL given as input (a webhook endpoint's, a Slack channel's) that the SSRF guard
    refuses: bad input (422), with its own code so a caller can tell it apart."""

    code = "unsafe_webhook_url"


async def check_url_input(url: str, path: str, *, allow_private: bool) -> None:
    """``check_target`` on a URL given as input at ``path``: raises ``UnsafeWebhookUrl``."""
    try:
        await check_target(url, allow_private=allow_private)
    except UnsafeTarget as exc:
        raise UnsafeWebhookUrl([ValidationIssue(path, str(exc))], "unsafe webhook URL") from None


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeTarget`` unless ``url`` is http(s) to a public address. The host is
    resolved here, and again right before each delivery."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket, say
        raise UnsafeTarget(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeTarget("a webhook URL may not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget(f"bad port: {exc}") from None
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:  # a name IDNA cannot encode is a UnicodeError
        raise UnsafeTarget(f"cannot resolve {parts.hostname!r}: {exc}") from None
    if allow_private:
        return
    for info in found:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise UnsafeTarget(
                f"{parts.hostname} resolves to {address}, a private or reserved address"
            )
