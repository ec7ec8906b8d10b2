"""Decision tokens: what an "Approve" link in an email or a chat message carries.

A token is signed (HMAC-SHA256 with a server secret), bound to one task and one reviewer
(optionally to one decision type), expires, and is spent by the decision it makes: the
engine records its id in the same transaction, so a second use changes nothing. Tokens
hold no secret of their own; they are credentials, so send them only to the reviewer.

Format: ``hrdt_<payload>.<signature>``, both base64url without padding; the payload is
JSON ``{"v": 1, "id", "org", "task", "reviewer", "exp", "decision"}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import TokenRejected
from .ids import new_id
from .models import DecisionType

__all__ = ["DecisionTokens", "TokenClaims", "peek_task"]

PREFIX = "hrdt_"
MAX_TOKEN = 2_000


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says: who may decide which task, until when, and how."""

    id: str
    org_id: str
    task_id: str
    reviewer_id: str
    expires_at: datetime
    decision: DecisionType | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DecisionTokens:
    """Mints and reads decision tokens signed with ``secret`` (at least 16 bytes)."""

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("a decision-token secret needs at least 16 bytes")
        self._key = key

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._key, (PREFIX + payload).encode(), hashlib.sha256)
        return _b64(mac.digest())

    def mint(
        self,
        *,
        org_id: str,
        task_id: str,
        reviewer_id: str,
        expires_at: datetime,
        decision: DecisionType | None = None,
    ) -> tuple[str, TokenClaims]:
        """A new token and its claims (its ``id`` is new each time)."""
        claims = TokenClaims(
            id=new_id(),
            org_id=org_id,
            task_id=task_id,
            reviewer_id=reviewer_id,
            expires_at=expires_at.astimezone(UTC).replace(microsecond=0),
            decision=decision,
        )
        body = {
            "v": 1,
            "id": claims.id,
            "org": org_id,
            "task": task_id,
            "reviewer": reviewer_id,
            "exp": int(claims.expires_at.timestamp()),
            "decision": decision.value if decision else None,
        }
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{PREFIX}{payload}.{self._sign(payload)}", claims

    def read(self, token: str, now: datetime) -> TokenClaims:
        """The claims of a genuine, unexpired token; ``TokenRejected`` otherwise (``invalid``
        or ``expired``). Whether it was used already is the store's to say."""
        if not token.startswith(PREFIX) or len(token) > MAX_TOKEN or token.count(".") != 1:
            raise TokenRejected("invalid", "not a decision token")
        payload, signature = token[len(PREFIX) :].split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise TokenRejected("invalid", "the token's signature does not match")
        try:
            body = json.loads(_unb64(payload))
            expires_at = datetime.fromtimestamp(int(body["exp"]), UTC)
            claims = TokenClaims(
                id=str(body["id"]),
                org_id=str(body["org"]),
                task_id=str(body["task"]),
                reviewer_id=str(body["reviewer"]),
                expires_at=expires_at,
                decision=DecisionType(body["decision"]) if body.get("decision") else None,
            )
        except (ValueError, KeyError, TypeError, binascii.Error, OverflowError):
            raise TokenRejected("invalid", "the token's contents are malformed") from None
        if body.get("v") != 1:
            raise TokenRejected("invalid", "unknown token version")
        if now >= claims.expires_at:
            raise TokenRejected("expired", f"the token expired at {claims.expires_at.isoformat()}")
        return claims


def peek_task(token: str) -> str | None:
    """The task a token names, read without checking its signature (to route it; only the
    server's check makes it count). None when it does not look like a token."""
    if not token.startswith(PREFIX) or token.count(".") != 1 or len(token) > MAX_TOKEN:
        return None
    try:
        task = json.loads(_unb64(token[len(PREFIX) :].split(".")[0])).get("task")
    except (ValueError, AttributeError, binascii.Error):
        return None
    return task if isinstance(task, str) else None
