"""Slack's request signatures: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:{X-Slack-Request-Timestamp}:{raw body}">`` with the app's signing secret; requests more
than five minutes from now are refused (a replay)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

__all__ = ["WINDOW", "SignatureRefused", "sign", "verify"]

WINDOW = 300  # seconds


class SignatureRefused(Exception):
    pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: datetime
) -> None:
    """Raise ``SignatureRefused`` unless ``signature`` signs ``body`` at ``timestamp`` with
    ``secret`` and ``timestamp`` lies within five minutes of ``now``."""
    if not timestamp or not signature:
        raise SignatureRefused("the Slack signature headers are missing")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureRefused("the Slack timestamp is not a number")
    at = int(timestamp)
    if abs(now.timestamp() - at) > WINDOW:
        raise SignatureRefused("the Slack timestamp is more than five minutes off")
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode()):
        raise SignatureRefused("the Slack signature does not match")
