"""The requester's and admin's views (/org/...), over ASGI with a signed-in session: what
each shows, who may open it, CSRF on every action, and actions that change state through
the engine."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from handrail import Role
from handrail.money import Currency
from handrail_server.web.pages.org._common import money_text
from handrail_server.web.pages.org.webhooks import masked_url
from tests.server.conftest import Server, review
from tests.server.web._ui import signed_in

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["cat", "dog"]}},
    "required": ["label"],
    "additionalProperties": False,
}
ADMIN_VIEWS = ("/org/review", "/org/workers", "/org/webhooks")
REQUESTER_VIEWS = ("/org/tasks", "/org/disputes", "/org/money")


@asynccontextmanager
async def browser(server: Server, headers: dict[str, str]) -> AsyncIterator[tuple[Any, str]]:
    """A client signed in with the key in ``headers``, and its session's CSRF token."""
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as client:
        yield client, await signed_in(client, headers)


async def post_task(server: Server, spec: dict[str, Any], org: str = "a") -> dict[str, Any]:
    keys = server.a if org == "a" else server.b
    made = await server.client.post("/v1/tasks", json=spec, headers=keys.requester)
    assert made.status_code == 201, made.text
    task: dict[str, Any] = made.json()
    return task


async def api_task(server: Server, task_id: str) -> dict[str, Any]:
    got = await server.client.get(f"/v1/tasks/{task_id}", headers=server.a.requester)
    assert got.status_code == 200, got.text
    task: dict[str, Any] = got.json()
    return task


def judgment(**more: Any) -> dict[str, Any]:
    return {"kind": "judgment", "title": "What is it?", "output_schema": ANSWER_SCHEMA, **more}


async def disagreeing(server: Server, title: str = "What is it?") -> str:
    """A judgment two reviewers answered differently: in manual review."""
    task = await post_task(server, judgment(title=title, redundancy=2, max_answers=2))
    bob = await server.key("acme", Role.REVIEWER, principal="bob")
    for headers, label in ((server.a.reviewer, "cat"), (bob, "dog")):
        done = await server.client.post(
            f"/v1/tasks/{task['id']}/submissions",
            json={"output": {"label": label}},
            headers=headers,
        )
        assert done.status_code == 200, done.text
    assert (await api_task(server, task["id"]))["status"] == "manual_review"
    return str(task["id"])


def text_of(page: httpx.Response) -> str:
    return html.unescape(page.text)


# ---------------------------------------------------------------- roles and navigation


async def test_each_role_sees_its_own_views(server: Server) -> None:
    async with browser(server, server.a.reviewer) as (client, _):
        for path in (*ADMIN_VIEWS, *REQUESTER_VIEWS, "/org/workers/bob"):
            page = await client.get(path)
            assert page.status_code == 403, path
            assert "role" in page.text
        queue = await client.get("/queue")
        assert 'href="/org/' not in queue.text  # no nav entries for them
    async with browser(server, server.a.requester) as (client, _):
        landing = await client.get("/", follow_redirects=True)
        assert landing.url.path == "/org/tasks"
        for path in ADMIN_VIEWS:
            assert (await client.get(path)).status_code == 403, path
        for path in REQUESTER_VIEWS:
            page = await client.get(path)
            assert page.status_code == 200, path
        nav = (await client.get("/org/tasks")).text
        assert 'href="/org/money"' in nav and 'href="/org/review"' not in nav
    async with browser(server, server.a.admin) as (client, _):
        page = await client.get("/org/tasks")
        for path in (*ADMIN_VIEWS, *REQUESTER_VIEWS):
            assert f'href="{path}"' in page.text, path
            assert (await client.get(path)).status_code == 200, path


async def test_the_views_need_a_session(server: Server) -> None:
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://handrail.test") as client:
        page = await client.get("/org/money?currency=SATS")
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=%2Forg%2Fmoney%3Fcurrency%3DSATS"


# ---------------------------------------------------------------- tasks


async def test_the_task_list_filters_and_pages_the_orgs_tasks(server: Server) -> None:
    first = await post_task(server, review("send_email", title="Email the customer"))
    second = await post_task(server, judgment(title="Label the photo", task_type="photo"))
    third = await post_task(server, review("refund", title="Refund order 7"))
    theirs = await post_task(server, review("wire", title="Rival wire transfer"), org="b")
    await server.client.post(f"/v1/tasks/{first['id']}/cancel", headers=server.a.requester)
    async with browser(server, server.a.requester) as (client, _):
        page = text_of(await client.get("/org/tasks"))
        for title in ("Email the customer", "Label the photo", "Refund order 7"):
            assert title in page
        assert "Rival wire transfer" not in page and theirs["id"] not in page
        # newest first
        assert page.index("Refund order 7") < page.index("Email the customer")

        judgments = text_of(await client.get("/org/tasks?kind=judgment"))
        assert "Label the photo" in judgments and "Refund order 7" not in judgments
        cancelled = text_of(await client.get("/org/tasks?status=cancelled"))
        assert "Email the customer" in cancelled and "Label the photo" not in cancelled
        typed = text_of(await client.get("/org/tasks?task_type=refund"))
        assert "Refund order 7" in typed and "Email the customer" not in typed
        bad = await client.get("/org/tasks?status=nonsense")
        assert bad.status_code == 422 and "status" in bad.text

        one = await client.get("/org/tasks?limit=2")
        ids = re.findall(r'data-task="([^"]+)"', one.text)
        assert ids == [third["id"], second["id"]]
        found = re.search(r'href="([^"]+)" rel="next"', one.text)
        assert found is not None
        rest = await client.get(html.unescape(found.group(1)))
        assert re.findall(r'data-task="([^"]+)"', rest.text) == [first["id"]]
        assert 'rel="next"' not in rest.text and "First page" in rest.text


async def test_the_task_view_shows_status_decision_history_and_verification(
    server: Server,
) -> None:
    task = await post_task(server, review("send_email", title="Email the customer"))
    decided = await server.client.post(
        f"/v1/tasks/{task['id']}/decision",
        json={"type": "reject", "message": "not to this address"},
        headers=server.a.reviewer,
    )
    assert decided.status_code == 200, decided.text
    async with browser(server, server.a.requester) as (client, _):
        page = await client.get(f"/org/tasks/{task['id']}")
        assert page.status_code == 200
        shown = text_of(page)
        assert "verified" in shown and "reject" in shown and "not to this address" in shown
        assert "acme-reviewer" in shown  # who decided
        assert "Verification" in shown and "Outcome" in shown
        assert "History" in shown and "create" in shown
        assert "Open a dispute" in shown and "Cancel task" not in shown  # verified


async def test_cancel_needs_csrf_and_goes_through_the_engine(server: Server) -> None:
    task = await post_task(server, review("send_email", title="Email the customer"))
    theirs = await post_task(server, review("wire"), org="b")
    async with browser(server, server.a.requester) as (client, csrf):
        page = await client.get(f"/org/tasks/{task['id']}")
        assert "Cancel task" in page.text
        for data in ({}, {"csrf_token": "wrong"}):
            refused = await client.post(f"/org/tasks/{task['id']}/cancel", data=data)
            assert refused.status_code == 403
        assert (await api_task(server, task["id"]))["status"] == "posted"

        done = await client.post(
            f"/org/tasks/{task['id']}/cancel", data={"csrf_token": csrf, "reason": "not needed"}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/org/tasks/{task['id']}?done=cancelled"
        now = await api_task(server, task["id"])
        assert now["status"] == "cancelled"
        shown = text_of(await client.get(done.headers["location"]))
        assert "The task was cancelled." in shown and "not needed" in shown

        # another organisation's task: 404, and nothing changes
        assert (await client.get(f"/org/tasks/{theirs['id']}")).status_code == 404
        other = await client.post(f"/org/tasks/{theirs['id']}/cancel", data={"csrf_token": csrf})
        assert other.status_code == 404
        got = await server.client.get(f"/v1/tasks/{theirs['id']}", headers=server.b.requester)
        assert got.json()["status"] == "posted"


async def test_a_refused_cancel_is_shown_with_its_status(server: Server) -> None:
    task = await post_task(server, review("send_email"))
    await server.client.post(
        f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=server.a.reviewer
    )
    async with browser(server, server.a.requester) as (client, csrf):
        refused = await client.post(f"/org/tasks/{task['id']}/cancel", data={"csrf_token": csrf})
        assert refused.status_code == 409
        assert "an answer is already in" in text_of(refused)
        assert (await api_task(server, task["id"]))["status"] == "verified"


# ---------------------------------------------------------------- manual review


async def test_manual_review_shows_the_answers_and_verifies_through_the_engine(
    server: Server,
) -> None:
    task_id = await disagreeing(server, "Cat or dog")
    async with browser(server, server.a.admin) as (client, csrf):
        page = await client.get("/org/review")
        shown = text_of(page)
        assert "Cat or dog" in shown and "Verification result" in shown
        assert "manual review" in shown  # the verification's outcome
        assert "acme-reviewer" in shown and "bob" in shown
        cat = json.dumps({"label": "cat"})
        choices = [
            html.unescape(v) for v in re.findall(r'name="output" value="([^"]*)"', page.text)
        ]
        assert choices == [cat, json.dumps({"label": "dog"}), "custom"]

        refused = await client.post(f"/org/review/{task_id}/verify", data={"output": cat})
        assert refused.status_code == 403
        assert (await api_task(server, task_id))["status"] == "manual_review"

        undecided = await client.post(f"/org/review/{task_id}/verify", data={"csrf_token": csrf})
        assert undecided.status_code == 422
        assert "answers differ" in text_of(undecided)
        misfit = await client.post(
            f"/org/review/{task_id}/verify",
            data={"csrf_token": csrf, "output": "custom", "output_json": '{"label": "owl"}'},
        )
        assert misfit.status_code == 422
        only_json = await client.post(
            f"/org/review/{task_id}/verify",
            data={"csrf_token": csrf, "output_json": '{"label": "owl"}'},
        )
        assert only_json.status_code == 422 and "owl" in text_of(only_json)
        broken = await client.post(
            f"/org/review/{task_id}/verify",
            data={"csrf_token": csrf, "output": "custom", "output_json": "{nope"},
        )
        assert broken.status_code == 422 and "not valid JSON" in text_of(broken)
        assert (await api_task(server, task_id))["status"] == "manual_review"

        done = await client.post(
            f"/org/review/{task_id}/verify",
            data={"csrf_token": csrf, "output": cat, "reason": "clearly a cat"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/org/review?done=verified"
        now = await api_task(server, task_id)
        assert (now["status"], now["output"]) == ("verified", {"label": "cat"})
        after = text_of(await client.get(done.headers["location"]))
        assert "The task was verified." in after and "Cat or dog" not in after


async def test_manual_review_fail_needs_a_reason(server: Server) -> None:
    task_id = await disagreeing(server)
    async with browser(server, server.a.admin) as (client, csrf):
        blank = await client.post(
            f"/org/review/{task_id}/fail", data={"csrf_token": csrf, "reason": "  "}
        )
        assert blank.status_code == 422
        assert (await api_task(server, task_id))["status"] == "manual_review"
        done = await client.post(
            f"/org/review/{task_id}/fail", data={"csrf_token": csrf, "reason": "unreadable"}
        )
        assert done.status_code == 303
        now = await api_task(server, task_id)
        assert (now["status"], now["failure_reason"]) == ("failed", "unreadable")
        again = await client.post(
            f"/org/review/{task_id}/fail", data={"csrf_token": csrf, "reason": "twice"}
        )
        assert again.status_code == 409


async def test_only_admins_of_the_org_verify(server: Server) -> None:
    task_id = await disagreeing(server)
    cat = json.dumps({"label": "cat"})
    async with browser(server, server.a.requester) as (client, csrf):
        refused = await client.post(
            f"/org/review/{task_id}/verify", data={"csrf_token": csrf, "output": cat}
        )
        assert refused.status_code == 403
    async with browser(server, server.b.admin) as (client, csrf):
        assert task_id not in (await client.get("/org/review")).text
        other = await client.post(
            f"/org/review/{task_id}/verify", data={"csrf_token": csrf, "output": cat}
        )
        assert other.status_code == 404
    assert (await api_task(server, task_id))["status"] == "manual_review"


# ---------------------------------------------------------------- disputes


async def test_a_requester_disputes_and_an_admin_resolves(server: Server) -> None:
    task = await post_task(server, review("send_email", title="Email the customer"))
    await server.client.post(
        f"/v1/tasks/{task['id']}/decision", json={"type": "approve"}, headers=server.a.reviewer
    )
    async with browser(server, server.a.requester) as (client, csrf):
        blank = await client.post(
            f"/org/tasks/{task['id']}/dispute", data={"csrf_token": csrf, "reason": ""}
        )
        assert blank.status_code == 422
        done = await client.post(
            f"/org/tasks/{task['id']}/dispute",
            data={"csrf_token": csrf, "reason": "the address was wrong"},
        )
        assert done.status_code == 303
        assert (await api_task(server, task["id"]))["status"] == "disputed"
        listed = text_of(await client.get("/org/disputes"))
        assert "Email the customer" in listed and "the address was wrong" in listed
        assert "Uphold the result" not in listed  # requesters do not resolve
        refused = await client.post(
            f"/org/disputes/{task['id']}/resolve",
            data={"csrf_token": csrf, "verdict": "overturn", "reason": "mine"},
        )
        assert refused.status_code == 403  # the engine refuses
        assert (await api_task(server, task["id"]))["status"] == "disputed"
    async with browser(server, server.b.admin) as (client, csrf):
        assert "Email the customer" not in text_of(await client.get("/org/disputes"))
        other = await client.post(
            f"/org/disputes/{task['id']}/resolve",
            data={"csrf_token": csrf, "verdict": "overturn", "reason": "not yours"},
        )
        assert other.status_code == 404
    async with browser(server, server.a.admin) as (client, csrf):
        listed = text_of(await client.get("/org/disputes"))
        assert "Uphold the result" in listed and "Overturn" in listed
        no_csrf = await client.post(
            f"/org/disputes/{task['id']}/resolve", data={"verdict": "overturn", "reason": "x"}
        )
        assert no_csrf.status_code == 403
        unknown = await client.post(
            f"/org/disputes/{task['id']}/resolve",
            data={"csrf_token": csrf, "verdict": "maybe", "reason": "x"},
        )
        assert unknown.status_code == 422
        done = await client.post(
            f"/org/disputes/{task['id']}/resolve",
            data={"csrf_token": csrf, "verdict": "overturn", "reason": "wrong address indeed"},
        )
        assert done.status_code == 303
        now = await api_task(server, task["id"])
        assert (now["status"], now["failure_reason"]) == ("failed", "wrong address indeed")
        assert "The dispute was resolved" in text_of(await client.get(done.headers["location"]))


# ---------------------------------------------------------------- money


async def test_money_shows_balances_and_paged_entries(server: Server) -> None:
    for n, amount in enumerate(("100.00", "0.05")):
        made = await server.client.post(
            "/v1/deposits",
            json={"amount": {"currency": "USD", "amount": amount}},
            headers={**server.a.admin, "Idempotency-Key": f"fund-{n}"},
        )
        assert made.status_code == 201, made.text
    async with browser(server, server.a.requester) as (client, _):
        page = text_of(await client.get("/org/money"))
        assert "100.05 USD" in page  # available
        assert "+100.00 USD" in page and "+0.05 USD" in page
        assert "0 SATS" in page
        first = await client.get("/org/money?limit=1")
        assert "+100.00 USD" in text_of(first) and "+0.05 USD" not in text_of(first)
        found = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert found is not None
        second = text_of(await client.get(html.unescape(found.group(1))))
        assert "+0.05 USD" in second and "+100.00 USD" not in second
        sats = text_of(await client.get("/org/money?currency=SATS"))
        assert "No entries in SATS yet." in sats
        assert (await client.get("/org/money?currency=EUR")).status_code == 422
    async with browser(server, server.b.requester) as (client, _):
        theirs = text_of(await client.get("/org/money"))
        assert "100.00 USD" not in theirs and "0.00 USD" in theirs


def test_money_text_renders_minor_units() -> None:
    assert money_text(-1250, Currency.USD) == "-12.50 USD"
    assert money_text(123456789, Currency.USD) == "1,234,567.89 USD"
    assert money_text(5, Currency.USD) == "0.05 USD"
    assert money_text(1500, Currency.SATS) == "1,500 SATS"


# ---------------------------------------------------------------- workers


async def test_workers_and_their_reliability(server: Server) -> None:
    put = await server.client.put(
        "/v1/workers/acme-reviewer",
        json={"skills": ["judgment"], "trust_tier": "high", "capacity": 4},
        headers=server.a.admin,
    )
    assert put.status_code == 200, put.text
    task_id = await disagreeing(server)
    verified = await server.client.post(
        f"/v1/tasks/{task_id}/verify", json={"output": {"label": "cat"}}, headers=server.a.admin
    )
    assert verified.status_code == 200
    stats = await server.client.get("/v1/workers/acme-reviewer/stats", headers=server.a.admin)
    assert stats.status_code == 200 and stats.json(), stats.text
    async with browser(server, server.a.admin) as (client, _):
        listed = text_of(await client.get("/org/workers"))
        assert "acme-reviewer" in listed and "high" in listed and "judgment" in listed
        one = await client.get("/org/workers/acme-reviewer")
        assert one.status_code == 200
        shown = text_of(one)
        assert "By task type" in shown
        for row in stats.json():
            assert row["task_type"] in shown
        assert "%" in shown  # a reliability
        # bob has no profile, but the engine knows him
        found = await client.get("/org/workers/find?worker_id=bob")
        assert found.status_code == 303 and found.headers["location"] == "/org/workers/bob"
        bob = text_of(await client.get("/org/workers/bob"))
        assert "No profile" in bob
        assert (await client.get("/org/workers/nobody")).status_code == 404
    async with browser(server, server.b.admin) as (client, _):
        assert "acme-reviewer" not in (await client.get("/org/workers")).text
        assert (await client.get("/org/workers/acme-reviewer")).status_code == 404


# ---------------------------------------------------------------- webhooks


def test_webhook_urls_are_masked() -> None:
    assert masked_url("https://user:pw@hooks.example.com/in?token=s3cret") == (
        "https://hooks.example.com/in?…"
    )
    slack = masked_url("https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx")
    assert slack == "https://hooks.slack.com/services/T0001/B0002/…uvwx"
    assert masked_url("http://127.0.0.1:8080/hooks") == "http://127.0.0.1:8080/hooks"


async def test_webhook_endpoints_and_their_delivery_log(server: Server) -> None:
    made = await server.client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hooks?token=supersecret", "description": "billing"},
        headers=server.a.admin,
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    queued = await server.client.post("/v1/webhooks/test", json={}, headers=server.a.admin)
    assert queued.status_code == 202
    attempts: list[Any] = []
    for _ in range(200):  # the delivery worker tries at once; nothing listens on port 9
        log = await server.client.get(
            f"/v1/webhooks/{endpoint['id']}/deliveries", headers=server.a.admin
        )
        attempts = log.json()["attempts"]
        if attempts:
            break
        await asyncio.sleep(0.05)
    assert attempts, "no delivery attempt was made"
    async with browser(server, server.a.admin) as (client, _):
        listed = await client.get("/org/webhooks")
        shown = text_of(listed)
        assert "http://127.0.0.1:9/hooks?…" in shown and "billing" in shown
        assert "supersecret" not in shown and endpoint["secret"] not in shown
        detail = await client.get(f"/org/webhooks/{endpoint['id']}")
        assert detail.status_code == 200
        shown = text_of(detail)
        assert "webhook.test" in shown and "Delivery attempts" in shown
        assert "no answer" in shown  # nothing answered on port 9
        assert attempts[0]["error"] and attempts[0]["error"] in shown
        assert "supersecret" not in shown and endpoint["secret"] not in shown
        assert "Next retry" in shown
    async with browser(server, server.b.admin) as (client, _):
        assert "billing" not in (await client.get("/org/webhooks")).text
        assert (await client.get(f"/org/webhooks/{endpoint['id']}")).status_code == 404


@pytest.mark.parametrize("path", ["/org/tasks", "/org/review", "/org/money", "/org/webhooks"])
async def test_views_use_no_inline_script(server: Server, path: str) -> None:
    async with browser(server, server.a.admin) as (client, _):
        page = await client.get(path)
        assert page.status_code == 200
        assert "<script>" not in page.text and "style=" not in page.text
        assert "/static/org.css?v=" in page.text
