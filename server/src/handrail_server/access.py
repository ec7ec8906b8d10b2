"""Who may call what: every route of the server, ``/v1`` and every dialect's, with the
roles allowed, in one table (:data:`ROUTES`), enforced from it.

:func:`guard` (a dependency of every route) refuses a key whose role the route's entry
does not list, with 403 ``permission_denied``, before the route reads its body; a route that is
not in the table refuses everyone (a new route without an entry fails closed, and
``tests/server/test_access.py`` fails). The engine and the ledger check again what is
theirs to check (who may decide a review, who may earn from a task, whose account is
whose), so the table is the outer wall, not the only one. ``docs/server.md`` shows the
table as :func:`markdown` renders it.

How a route is reached (``via``):

- ``key``: an API key whose role is in ``roles`` (admins hold only ``admin`` here: the
  table lists them where they are allowed);
- ``operator``: the same, the key also taken from HumanOps' ``X-Operator-Id`` (checked by
  that dialect's dependency, through :func:`permit`);
- ``token``: a signed decision token or link is the credential (no key);
- ``signed``: a signed callback (Slack's request signature);
- ``session``: a web UI page, signed in with a key (the viewer's dependency checks
  ``roles`` through :func:`permit`);
- ``form``: the sign-in form (an API key and the form's own token);
- ``public``: no credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from handrail import Principal, Role
from handrail.errors import PermissionDenied

__all__ = ["ROUTES", "Access", "access_of", "guard", "markdown", "permit"]

Via = Literal["key", "operator", "token", "signed", "session", "form", "public"]

A, Q, R = Role.ADMIN, Role.REQUESTER, Role.REVIEWER


@dataclass(frozen=True)
class Access:
    roles: frozenset[Role]
    via: Via = "key"
    note: str = ""
    refusal: str = ""
    """The deciding action a refused call is recorded in the audit log as (as the engine
    records its own refusals), when the route acts on a task."""


def _key(*roles: Role, note: str = "", refusal: str = "") -> Access:
    return Access(frozenset(roles), "key", note, refusal)


ANY = _key(A, Q, R)
ADMIN = _key(A)
ASKS = _key(A, Q)  # who asks for work and pays for it
WORKS = _key(A, R)  # who does the work and earns
OPERATOR = Access(frozenset({A, R}), "operator")
PUBLIC = Access(frozenset(), "public")
TOKEN = Access(frozenset(), "token")


def _session(*roles: Role) -> Access:
    return Access(frozenset(roles), "session")


_V1 = "/v1"
_HR = "/compat/humanrail"
_HC = "/compat/humancheck"
_HO = "/compat/humanops/api/v1"

ROUTES: dict[tuple[str, str], Access] = {
    # ---------------------------------------------------------------- tasks
    ("POST", f"{_V1}/tasks"): ASKS,
    ("GET", f"{_V1}/tasks"): ANY,
    ("GET", f"{_V1}/tasks/{{task_id}}"): _key(A, Q, R, note="reviewers see the worker's view"),
    ("GET", f"{_V1}/tasks/{{task_id}}/history"): ANY,
    ("POST", f"{_V1}/tasks/{{task_id}}/cancel"): ASKS,
    ("POST", f"{_V1}/tasks/{{task_id}}/dispute"): ASKS,
    ("POST", f"{_V1}/tasks/{{task_id}}/resolve-dispute"): ADMIN,
    ("POST", f"{_V1}/tasks/{{task_id}}/verify"): ADMIN,
    ("POST", f"{_V1}/tasks/{{task_id}}/fail"): ADMIN,
    ("POST", f"{_V1}/tasks/{{task_id}}/estimate/approve"): _key(
        A, Q, note="never the estimate's own worker", refusal="approve estimates"
    ),
    ("POST", f"{_V1}/tasks/{{task_id}}/estimate/reject"): ASKS,
    # ---------------------------------------------------------------- waiting
    ("GET", f"{_V1}/tasks/{{task_id}}/wait"): ANY,
    ("GET", f"{_V1}/tasks/{{task_id}}/events"): ANY,
    ("GET", f"{_V1}/events"): ANY,
    # ---------------------------------------------------------------- work
    ("GET", f"{_V1}/queue"): WORKS,
    ("POST", f"{_V1}/tasks/{{task_id}}/claim"): _key(
        A,
        R,
        note="never on a task it created, funds or approved the estimate of",
        refusal="claim tasks",
    ),
    ("POST", f"{_V1}/tasks/{{task_id}}/assignments"): ADMIN,
    ("POST", f"{_V1}/tasks/{{task_id}}/estimate/withdraw"): WORKS,
    ("POST", f"{_V1}/tasks/{{task_id}}/release"): WORKS,
    ("POST", f"{_V1}/tasks/{{task_id}}/decision"): _key(
        A, R, note="the policy's reviewers", refusal="decide reviews"
    ),
    ("POST", f"{_V1}/tasks/{{task_id}}/submissions"): _key(
        A,
        R,
        note="never on a task it created, funds or approved the estimate of",
        refusal="submit answers",
    ),
    ("POST", f"{_V1}/tasks/{{task_id}}/estimate"): _key(
        A, R, note="never on its own task", refusal="offer estimates"
    ),
    ("POST", f"{_V1}/tasks/{{task_id}}/decision-tokens"): ADMIN,
    ("POST", f"{_V1}/tasks/{{task_id}}/decision/by-token"): TOKEN,
    # ---------------------------------------------------------------- money
    ("GET", f"{_V1}/balance"): ASKS,
    ("GET", f"{_V1}/ledger/entries"): _key(
        A, Q, R, note="`account=org`: requesters, admins; `pending`, `available`: one's own"
    ),
    ("POST", f"{_V1}/deposits"): _key(
        A,
        Q,
        note="admins record credit; a test key gets sandbox credit; a live requester's "
        "needs the funding rail's confirmation",
    ),
    ("GET", f"{_V1}/earnings"): _key(A, R, note="one's own (admins: anyone's)"),
    ("POST", f"{_V1}/payouts"): WORKS,
    ("GET", f"{_V1}/payouts"): _key(A, R, note="one's own (admins: anyone's)"),
    ("GET", f"{_V1}/fees"): ANY,
    # ---------------------------------------------------------------- policy, audit
    ("GET", f"{_V1}/policy"): ADMIN,
    ("PUT", f"{_V1}/policy"): ADMIN,
    ("POST", f"{_V1}/policy/explain"): ADMIN,
    ("GET", f"{_V1}/reviewer-groups"): ADMIN,
    ("PUT", f"{_V1}/reviewer-groups/{{name}}"): ADMIN,
    ("DELETE", f"{_V1}/reviewer-groups/{{name}}"): ADMIN,
    ("GET", f"{_V1}/standing-approvals"): _key(A, R, note="reviewers: their own"),
    ("POST", f"{_V1}/standing-approvals/{{approval_id}}/revoke"): _key(
        A, R, note="reviewers: their own"
    ),
    ("GET", f"{_V1}/audit"): ADMIN,
    ("GET", f"{_V1}/audit/verify"): ADMIN,
    ("GET", f"{_V1}/audit/export"): ADMIN,
    # ---------------------------------------------------------------- workers, keys, webhooks
    ("PUT", f"{_V1}/workers/{{worker_id}}"): ADMIN,
    ("GET", f"{_V1}/workers"): ADMIN,
    ("GET", f"{_V1}/workers/{{worker_id}}"): _key(A, R, note="reviewers: their own"),
    ("GET", f"{_V1}/workers/{{worker_id}}/stats"): _key(A, R, note="reviewers: their own"),
    ("POST", f"{_V1}/keys"): _key(A, note="never for an identity holding another role"),
    ("GET", f"{_V1}/keys"): ADMIN,
    ("DELETE", f"{_V1}/keys/{{key_id}}"): _key(A, note="effective at once"),
    ("POST", f"{_V1}/webhooks"): ADMIN,
    ("GET", f"{_V1}/webhooks"): ADMIN,
    ("GET", f"{_V1}/webhooks/{{endpoint_id}}"): ADMIN,
    ("PATCH", f"{_V1}/webhooks/{{endpoint_id}}"): ADMIN,
    ("DELETE", f"{_V1}/webhooks/{{endpoint_id}}"): ADMIN,
    ("GET", f"{_V1}/webhooks/{{endpoint_id}}/deliveries"): ADMIN,
    ("POST", f"{_V1}/webhooks/test"): ADMIN,
    # ---------------------------------------------------------------- notifications
    ("POST", f"{_V1}/notifications/channels"): ADMIN,
    ("GET", f"{_V1}/notifications/channels"): ADMIN,
    ("GET", f"{_V1}/notifications/channels/{{channel_id}}"): ADMIN,
    ("PATCH", f"{_V1}/notifications/channels/{{channel_id}}"): ADMIN,
    ("DELETE", f"{_V1}/notifications/channels/{{channel_id}}"): ADMIN,
    ("PUT", f"{_V1}/notifications/contacts/{{reviewer_id}}"): ADMIN,
    ("GET", f"{_V1}/notifications/contacts"): ADMIN,
    ("DELETE", f"{_V1}/notifications/contacts/{{reviewer_id}}"): ADMIN,
    ("GET", f"{_V1}/notifications/deliveries"): ADMIN,
    ("GET", "/decide/{task_id}"): TOKEN,
    ("POST", "/decide/{task_id}"): TOKEN,
    ("POST", "/integrations/slack/{channel_id}/interactions"): Access(frozenset(), "signed"),
    # ---------------------------------------------------------------- system, files
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", f"{_V1}/me"): ANY,
    ("POST", f"{_V1}/uploads"): ANY,
    ("GET", f"{_V1}/uploads/{{upload_id}}"): ANY,
    ("GET", f"{_V1}/uploads/{{upload_id}}/content"): ANY,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    # ---------------------------------------------------------------- HumanRail
    ("POST", f"{_HR}/v1/tasks"): ASKS,
    ("GET", f"{_HR}/v1/tasks"): ASKS,
    ("GET", f"{_HR}/v1/tasks/{{task_id}}"): ASKS,
    ("POST", f"{_HR}/v1/tasks/{{task_id}}/cancel"): ASKS,
    ("POST", f"{_HR}/v1/webhooks/test"): ASKS,
    ("GET", f"{_HR}/v1/webhooks/secret"): ADMIN,
    ("POST", f"{_HR}/v1/webhooks/secret/rotate"): ADMIN,
    ("GET", f"{_HR}/v1/usage"): ASKS,
    ("GET", f"{_HR}/v1/healthz"): PUBLIC,
    ("GET", f"{_HR}/healthz"): PUBLIC,
    ("*", f"{_HR}/v1/{{rest:path}}"): Access(frozenset(), "public", "unknown paths: 404"),
    # ---------------------------------------------------------------- Humancheck
    ("POST", f"{_HC}/reviews"): ASKS,
    ("GET", f"{_HC}/reviews"): ANY,
    ("GET", f"{_HC}/reviews/{{review_id}}"): ANY,
    ("GET", f"{_HC}/reviews/{{review_id}}/decision"): ANY,
    ("POST", f"{_HC}/reviews/{{review_id}}/decide"): _key(
        A, R, note="the policy's reviewers", refusal="decide reviews"
    ),
    ("POST", f"{_HC}/reviews/{{review_id}}/feedback"): ASKS,
    ("GET", f"{_HC}/health"): PUBLIC,
    ("*", f"{_HC}/{{rest:path}}"): Access(frozenset(), "public", "unknown paths: 404"),
    # ---------------------------------------------------------------- HumanOps
    ("POST", f"{_HO}/agents/register"): Access(
        frozenset(), "public", "a sandbox requester key; only with open registration"
    ),
    ("GET", f"{_HO}/agents/balance"): ASKS,
    ("POST", f"{_HO}/agents/deposit/usdc"): _key(
        A, Q, note="as `POST /v1/deposits`: live money only through the funding rail"
    ),
    ("POST", f"{_HO}/agents/deposit"): _key(
        A, Q, note="as `POST /v1/deposits`: live money only through the funding rail"
    ),
    ("POST", f"{_HO}/operator/register"): _key(A, note="a reviewer key for a new identity"),
    ("GET", f"{_HO}/operator/tasks"): OPERATOR,
    ("POST", f"{_HO}/operator/tasks/{{task_id}}/accept"): OPERATOR,
    ("POST", f"{_HO}/operator/tasks/{{task_id}}/withdraw-claim"): OPERATOR,
    ("POST", f"{_HO}/operator/tasks/{{task_id}}/submit"): OPERATOR,
    ("GET", f"{_HO}/operator/earnings"): OPERATOR,
    ("POST", f"{_HO}/operator/payout"): OPERATOR,
    ("GET", f"{_HO}/operator/payout/status/{{payout_id}}"): OPERATOR,
    ("POST", f"{_HO}/tasks"): ASKS,
    ("GET", f"{_HO}/tasks"): ASKS,
    ("GET", f"{_HO}/tasks/{{task_id}}"): ASKS,
    ("POST", f"{_HO}/tasks/{{task_id}}/cancel"): ASKS,
    ("POST", f"{_HO}/tasks/{{task_id}}/estimate/approve"): ASKS,
    ("POST", f"{_HO}/tasks/{{task_id}}/estimate/reject"): ASKS,
    ("POST", f"{_HO}/tasks/{{task_id}}/verify"): ADMIN,
    ("POST", f"{_HO}/tasks/{{task_id}}/retrieve-credential"): ASKS,
    ("GET", f"{_HO}/tasks/{{task_id}}/retrieve-credential"): ASKS,
    ("*", f"{_HO}/{{rest:path}}"): Access(frozenset(), "public", "unknown paths: 404"),
    # ---------------------------------------------------------------- the web UI
    ("GET", "/signin"): PUBLIC,
    ("POST", "/signin"): Access(frozenset(), "form"),
    ("POST", "/signout"): _session(A, Q, R),
    ("GET", "/"): _session(A, Q, R),
    ("GET", "/queue"): _session(A, R),
    ("GET", "/queue/rows"): _session(A, R),
    ("GET", "/queue/events"): _session(A, R),
    ("GET", "/tasks/{task_id}"): _session(A, R),
    ("POST", "/tasks/{task_id}/decision"): _session(A, R),
    ("POST", "/tasks/{task_id}/answer"): _session(A, R),
    ("GET", "/tasks/{task_id}/files/{upload_id}"): _session(A, R),
    ("GET", "/batches/{batch_id}"): _session(A, R),
    ("POST", "/batches/{batch_id}/approve-all"): _session(A, R),
    ("GET", "/org/tasks"): _session(A, Q),
    ("GET", "/org/tasks/{task_id}"): _session(A, Q),
    ("POST", "/org/tasks/{task_id}/cancel"): _session(A, Q),
    ("POST", "/org/tasks/{task_id}/dispute"): _session(A, Q),
    ("GET", "/org/review"): _session(A),
    ("POST", "/org/review/{task_id}/verify"): _session(A),
    ("POST", "/org/review/{task_id}/fail"): _session(A),
    ("GET", "/org/disputes"): _session(A, Q),
    ("POST", "/org/disputes/{task_id}/resolve"): _session(A),
    ("GET", "/org/money"): _session(A, Q),
    ("GET", "/org/workers"): _session(A),
    ("GET", "/org/workers/find"): _session(A),
    ("GET", "/org/workers/{worker_id}"): _session(A),
    ("GET", "/org/webhooks"): _session(A),
    ("GET", "/org/webhooks/{endpoint_id}"): _session(A),
}
"""``(method, path template)`` → who may call it. ``*`` is a dialect's catch-all (any
method)."""

_REFUSED = Access(frozenset(), "key", "not in the table: refused")


def access_of(method: str, path: str) -> Access:
    """The entry for a route (``HEAD`` is ``GET``); a route the table lacks refuses all."""
    method = "GET" if method == "HEAD" else method
    return ROUTES.get((method, path)) or ROUTES.get(("*", path)) or _REFUSED


def _route_of(request: Request) -> tuple[str, str]:
    route = request.scope.get("route")
    return request.method, str(getattr(route, "path", request.url.path))


def permit(request: Request, principal: Principal) -> None:
    """Refuse (``PermissionDenied``: 403 ``permission_denied``) a principal whose role the
    request's route does not list."""
    method, path = _route_of(request)
    entry = access_of(method, path)
    if not entry.roles & principal.roles:
        allowed = ", ".join(sorted(r.value for r in entry.roles)) or "no key"
        held = ", ".join(sorted(r.value for r in principal.roles))
        raise PermissionDenied(
            principal.id, f"call {method} {path}", f"it is for {allowed}, not {held}"
        )


async def guard(request: Request) -> None:
    """A dependency of every route: a key route refuses the roles its entry lacks, before
    its body is read (missing or bad keys: 401 as ever)."""
    entry = access_of(*_route_of(request))
    if entry.via != "key":
        return  # no key (public, token, signed), or checked where the key is read
    hub = request.app.state.hub
    principal = await hub.auth.principal(request)
    try:
        permit(request, principal)
    except PermissionDenied as refused:
        params = request.path_params
        task_id = params.get("task_id") or params.get("review_id")
        if entry.refusal and isinstance(task_id, str):  # on the record, as the engine does
            await hub.engine._record_refusal(principal, task_id, entry.refusal, refused)
        raise


_WORDS = {
    "public": "anyone",
    "token": "a decision token",
    "signed": "Slack's signature",
    "form": "an API key in the form",
}


def _roles(entry: Access) -> str:
    names = [r.value for r in (A, Q, R) if r in entry.roles]
    if entry.via in _WORDS:
        return _WORDS[entry.via]
    text = ", ".join(names)
    return f"{text} (signed in)" if entry.via == "session" else text


def markdown() -> str:
    """The table as ``docs/server.md`` shows it, one row per route."""
    lines = ["| method | route | who | note |", "|---|---|---|---|"]
    for (method, path), entry in ROUTES.items():
        note = entry.note
        if entry.via == "operator":
            note = note or "an operator's (reviewer) key, also as `X-Operator-Id`"
        lines.append(f"| {method} | `{path}` | {_roles(entry)} | {note} |")
    return "\n".join(lines) + "\n"
