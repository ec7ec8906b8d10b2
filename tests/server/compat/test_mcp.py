"""``handrail mcp``: the MCP SDK's own client, over stdio and over streamable HTTP, against
a server process; and elicitation, where the client's user decides as a reviewer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.context import RequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, TextContent
from typer.testing import CliRunner

from handrail_server.mcp_server import TOOLS, app
from tests.server._live import LOOPBACK, bearer, free_port
from tests.server.compat.conftest import Live

SCHEMA = {
    "type": "object",
    "required": ["eligible"],
    "properties": {"eligible": {"type": "boolean"}},
}


def command(live: Live, key: str, *more: str) -> list[str]:
    return ["-m", "handrail._cli", "mcp", "--url", live.url, "--api-key", key, *more]


@contextlib.asynccontextmanager
async def over_stdio(
    live: Live, key: str, *more: str, **session: Any
) -> AsyncIterator[ClientSession]:
    """``handrail mcp`` started by the client, as Claude Desktop would."""
    params = StdioServerParameters(
        command=sys.executable, args=command(live, key, *more), env=dict(os.environ)
    )
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, **session) as client,
    ):
        await client.initialize()
        yield client


@contextlib.contextmanager
def http_server(live: Live, key: str, workdir: Path, *more: str) -> Iterator[str]:
    """``handrail mcp --transport http`` in a process of its own; its endpoint's URL."""
    port = free_port()
    log = (workdir / f"mcp-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, *command(live, key, "--transport", "http", "--port", str(port), *more)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(3000):
            assert process.poll() is None, (workdir / f"mcp-{port}.log").read_text()
            with socket.socket() as probe:
                if probe.connect_ex((LOOPBACK, port)) == 0:
                    break
            time.sleep(0.01)
        yield f"http://{LOOPBACK}:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@contextlib.asynccontextmanager
async def over_http(url: str) -> AsyncIterator[ClientSession]:
    async with (
        streamable_http_client(url) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def result(called: CallToolResult) -> Any:
    assert not called.isError, called.content
    return called.structuredContent


def error(called: CallToolResult) -> str:
    assert called.isError
    (text,) = called.content
    assert isinstance(text, TextContent)
    return text.text


@pytest.fixture(scope="module")
def keys(live: Live) -> dict[str, str]:
    made = {
        "sandbox": live.acme.key("requester", "mcp-sandbox", sandbox=True),
        "agent": live.acme.key("requester", "mcp-agent"),
        "reviewer": live.acme.key("reviewer", "mcp-reviewer"),
        "solo": live.acme.key("reviewer", "solo-human"),
    }
    live.acme.deposit(live.acme.admin, "200.00", "mcp-funds")
    return made


async def reviewer_decides(live: Live, key: str, action: str, decision: dict[str, Any]) -> None:
    """A person at the queue decides the review of ``action`` once it shows up."""
    async with httpx.AsyncClient(base_url=live.url, headers=bearer(key)) as client:
        for _ in range(3000):
            queue = (await client.get("/v1/queue", params={"kind": "review"})).json()["data"]
            mine = [t for t in queue if t["action"]["name"] == action]
            if mine:
                answer = await client.post(f"/v1/tasks/{mine[0]['id']}/decision", json=decision)
                assert answer.status_code == 200, answer.text
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"no review of {action} came")


# ---------------------------------------------------------------- stdio


async def test_the_tools_over_stdio(live: Live, keys: dict[str, str]) -> None:
    # elicitation is on, but this client cannot elicit: the simulated reviewers decide
    extra = ("--elicit", "--reviewer-key", keys["solo"])
    async with over_stdio(live, keys["sandbox"], *extra) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == set(TOOLS)
        review = next(t for t in listed.tools if t.name == "request_review")
        assert review.inputSchema["required"] == ["action"]

        approved = result(
            await client.call_tool(
                "request_review",
                {"action": "send_email", "args": {"to": "a@example.com"}, "reasoning": "asked to"},
            )
        )
        assert approved["approved"] is True and approved["decision"] == "approve"
        assert approved["args"] == {"to": "a@example.com"}
        assert approved["reviewer_id"] == "sandbox"

        answer = result(
            await client.call_tool(
                "ask_human", {"question": "Refund order 42?", "output_schema": SCHEMA}
            )
        )
        assert (answer["answered"], answer["answer"]) == (True, {"eligible": True})

        made = result(
            await client.call_tool(
                "create_task",
                {
                    "task_type": "refund_eligibility",
                    "payload": {"orderId": "42"},
                    "output_schema": SCHEMA,
                    "idempotency_key": "mcp-42",
                },
            )
        )
        again = result(
            await client.call_tool(
                "create_task",
                {
                    "task_type": "refund_eligibility",
                    "payload": {"orderId": "42"},
                    "output_schema": SCHEMA,
                    "idempotency_key": "mcp-42",
                },
            )
        )
        assert again["id"] == made["id"]
        waited = result(await client.call_tool("wait_for_task", {"task_id": made["id"]}))
        assert waited["done"] and waited["task"]["output"] == {"eligible": True}
        assert (
            result(await client.call_tool("get_task", {"task_id": made["id"]}))["status"]
            == "verified"
        )
        listed_tasks = result(
            await client.call_tool("list_tasks", {"task_type": "refund_eligibility", "limit": 100})
        )
        assert made["id"] in [t["id"] for t in listed_tasks["data"]]
        check = result(await client.call_tool("check_verification_status", {"task_id": made["id"]}))
        assert check["verification"]["outcome"] == "verified"
        history = result(await client.call_tool("get_task_history", {"task_id": made["id"]}))
        assert history["data"][0]["event"] == "create"

        before = result(await client.call_tool("get_balance", {}))
        funded = await client.call_tool(
            "fund_account", {"amount": "5.00", "idempotency_key": "mcp-credit"}
        )
        result(funded)
        after = result(await client.call_tool("get_balance", {}))
        assert float(after["available"]["amount"]) == float(before["available"]["amount"]) + 5

        health = result(await client.call_tool("health_check", {}))
        assert health["status"] == "healthy" and health["server"]["status"] == "ok"
        assert "not found" in error(await client.call_tool("get_task", {"task_id": "nope"}))


# ---------------------------------------------------------------- streamable HTTP


async def test_the_tools_over_streamable_http(
    live: Live, keys: dict[str, str], tmp_path: Path
) -> None:
    api = httpx.AsyncClient(base_url=live.url)
    with http_server(live, keys["agent"], tmp_path) as url:
        async with api, over_http(url) as client:
            asked = asyncio.create_task(
                client.call_tool(
                    "request_review",
                    {"action": "wire_money", "args": {"amount": "9000.00"}, "risk_tier": "low"},
                )
            )
            await reviewer_decides(
                live, keys["reviewer"], "wire_money", {"type": "reject", "message": "too much"}
            )
            rejected = result(await asked)
            assert rejected["approved"] is False and rejected["args"] is None
            assert (rejected["decision"], rejected["message"]) == ("reject", "too much")

            lapsed = result(
                await client.call_tool(
                    "request_review", {"action": "nobody_looks", "timeout_seconds": 0.3}
                )
            )
            assert (lapsed["approved"], lapsed["status"]) == (False, "cancelled")
            task = (
                await api.get(f"/v1/tasks/{lapsed['task_id']}", headers=bearer(keys["agent"]))
            ).json()
            assert task["status"] == "cancelled"  # withdrawn: it can never be approved now

            posted = result(
                await client.call_tool(
                    "post_task",
                    {
                        "title": "Photo of storefront",
                        "description": "Two photos of the facade",
                        "reward_usd": "15.00",
                        "proof_requirements": ["Full facade photo"],
                        "task_type": "PHOTO",
                    },
                )
            )
            assert posted["require_estimate"] and posted["payout"] == {
                "currency": "USD",
                "amount": "15.00",
            }
            offer = await api.post(
                f"/v1/tasks/{posted['id']}/estimate",
                json={"eta_seconds": 3600},
                headers=bearer(keys["reviewer"]),
            )
            assert offer.status_code == 200, offer.text
            declined = result(await client.call_tool("reject_estimate", {"task_id": posted["id"]}))
            assert declined["status"] == "posted"
            await api.post(
                f"/v1/tasks/{posted['id']}/estimate",
                json={"eta_seconds": 1800},
                headers=bearer(keys["reviewer"]),
            )
            accepted = result(await client.call_tool("approve_estimate", {"task_id": posted["id"]}))
            assert accepted["status"] == "assigned"
            assert [a["worker_id"] for a in accepted["assignments"]] == ["mcp-reviewer"]

            spare = result(
                await client.call_tool(
                    "create_task",
                    {"task_type": "spare", "payload": {}, "output_schema": SCHEMA},
                )
            )
            cancelled = result(await client.call_tool("cancel_task", {"task_id": spare["id"]}))
            assert cancelled["status"] == "cancelled"

            made = await api.post(
                "/v1/tasks",
                json={"kind": "review", "action": {"name": "private"}},
                headers=bearer(live.rival.admin),
            )
            theirs = made.json()
            for tool in ("get_task", "cancel_task", "approve_estimate"):
                refused = error(await client.call_tool(tool, {"task_id": theirs["id"]}))
                assert f"task {theirs['id']!r} not found" in refused


# ---------------------------------------------------------------- elicitation


def answering(*replies: tuple[str, dict[str, Any] | None]) -> Any:
    """An elicitation callback giving ``replies`` in turn (action, content), and keeping
    what it was asked."""
    asked: list[str] = []
    queue = list(replies)

    async def callback(
        context: RequestContext[ClientSession, Any], params: ElicitRequestParams
    ) -> ElicitResult:
        asked.append(params.message)
        action, content = queue.pop(0)
        return ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    callback.asked = asked  # type: ignore[attr-defined]
    return callback


async def test_the_clients_own_user_decides_through_elicitation(
    live: Live, keys: dict[str, str]
) -> None:
    user = answering(
        ("accept", {"decision": "modify", "args": '{"amount": "40.00"}', "message": "less"}),
        ("decline", None),
    )
    extra = ("--elicit", "--reviewer-key", keys["solo"])
    async with over_stdio(live, keys["agent"], *extra, elicitation_callback=user) as client:
        decided = result(
            await client.call_tool(
                "request_review",
                {"action": "refund", "args": {"amount": "50.00"}, "reasoning": "damaged"},
            )
        )
        declined = result(await client.call_tool("request_review", {"action": "drop_table"}))
    assert user.asked[0].startswith('Approve refund({"amount": "50.00"})?')
    assert decided["approved"] is True and decided["decision"] == "modify"
    assert decided["args"] == {"amount": "40.00"} and decided["message"] == "less"
    assert decided["reviewer_id"] == "solo-human"
    async with httpx.AsyncClient(base_url=live.url, headers=bearer(keys["agent"])) as api:
        history = (await api.get(f"/v1/tasks/{decided['task_id']}/history")).json()["data"]
    submitted = next(e for e in history if e["event"] == "submit")
    assert (submitted["actor"], submitted["actor_role"]) == ("solo-human", "reviewer")
    assert (declined["approved"], declined["message"]) == (False, "declined in the MCP client")
    assert declined["reviewer_id"] == "solo-human"


def test_elicitation_needs_a_reviewer_key(live: Live, keys: dict[str, str]) -> None:
    done = CliRunner().invoke(
        app, ["mcp", "--url", live.url, "--api-key", keys["agent"], "--elicit"], env={}
    )
    assert done.exit_code == 2 and "--elicit needs --reviewer-key" in done.output
