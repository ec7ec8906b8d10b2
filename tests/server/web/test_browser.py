"""The reviewer UI in a real browser: Playwright driving Debian's chromium (headless)
against a server started on a free port.

Without /usr/bin/chromium these tests skip with the reason, unless
HANDRAIL_REQUIRE_BROWSER=1 (CI), where they fail instead. Screenshots are kept in
test-artifacts/ui/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from handrail import Decision, Handrail
from tests.server._live import LiveServer, bearer, cli_key
from tests.server.web.conftest import ARTIFACTS, run_async


@dataclass
class Site:
    server: LiveServer
    reviewer: str
    requester: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{work / 'ui.db'}"
    reviewer = run_async(cli_key(url, "acme", "reviewer", "alice"))
    requester = run_async(cli_key(url, "acme", "requester", "agent"))
    server = LiveServer(url, work, env={"HANDRAIL_SLA_INTERVAL": "0.2"})
    server.start()
    try:
        run_async(server.ready())
        yield Site(server, reviewer, requester)
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, site: Site, key: str) -> None:
    page.goto(f"{site.url}/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/queue")


def api_task(site: Site, task_id: str) -> dict[str, Any]:
    got = httpx.get(f"{site.url}/v1/tasks/{task_id}", headers=bearer(site.requester))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


REFUND = {
    "name": "refund",
    "args": {"order": "A-1", "amount": 30},
    "args_schema": {
        "type": "object",
        "required": ["order", "amount"],
        "properties": {
            "order": {"type": "string"},
            "amount": {"type": "integer", "minimum": 1, "maximum": 100},
        },
    },
}


def test_a_reviewer_modifies_a_review_the_agent_is_waiting_on(page: Any, site: Site) -> None:
    sign_in(page, site, site.reviewer)
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("[data-live='connected']")
    decided: list[Decision] = []
    failed: list[BaseException] = []

    def agent() -> None:
        try:
            with Handrail(site.url, site.requester) as hr:
                decided.append(
                    hr.review(
                        REFUND,
                        reasoning="The parcel was lost.",
                        confidence=0.7,
                        title="Refund order A-1",
                        task_type="payments",
                        risk_tier="high",
                        timeout=60,
                    )
                )
        except BaseException as exc:
            failed.append(exc)

    waiting = threading.Thread(target=agent, daemon=True)
    waiting.start()
    link = page.get_by_role("link", name="Refund order A-1")
    link.wait_for()  # arrives over server-sent events: no reload
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "queue-live")
    link.click()
    page.wait_for_url("**/tasks/*")
    amount = page.get_by_label("amount (required)")
    assert amount.input_value() == "30"
    amount.fill("25")
    diff = page.locator("[data-diff]")
    assert "changed amount: 30 → 25" in diff.inner_text()
    shot(page, "task-modify")
    page.get_by_role("button", name="Approve with changes").click()
    page.get_by_text("Your decision was recorded").wait_for()
    waiting.join(30)
    assert not failed, failed
    assert len(decided) == 1
    decision = decided[0]
    assert decision.type.value == "modify"
    assert decision.args == {"order": "A-1", "amount": 25}
    assert decision.reviewer_id == "alice"
    assert decision.approved
    shot(page, "task-decided")


def test_an_invalid_judgment_shows_the_error_and_submits_nothing(page: Any, site: Site) -> None:
    spec = {
        "kind": "judgment",
        "task_type": "triage",
        "title": "Is INV-7 a duplicate?",
        "payload": {"invoice": "INV-7"},
        "output_schema": {
            "type": "object",
            "required": ["duplicate", "confidence"],
            "properties": {
                "duplicate": {"type": "boolean"},
                "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
                "category": {"enum": ["fraud", "mistake", "other"]},
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
    made = httpx.post(f"{site.url}/v1/tasks", json=spec, headers=bearer(site.requester))
    assert made.status_code == 201, made.text
    task_id = made.json()["id"]
    sign_in(page, site, site.reviewer)
    page.goto(f"{site.url}/tasks/{task_id}")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_label("duplicate").check()
    page.get_by_label("category").select_option("mistake")
    page.get_by_role("button", name="Add item to notes").click()
    page.get_by_label("notes 1").fill("same amount")
    page.get_by_label("confidence (required)").fill("300")
    page.get_by_role("button", name="Submit answer").click()
    summary = page.locator("[data-errors]")
    summary.get_by_text("must be at most 100").wait_for()
    assert page.get_by_label("confidence (required)").get_attribute("aria-invalid") == "true"
    shot(page, "judgment-invalid")
    time.sleep(0.5)
    assert posts == []
    task = api_task(site, task_id)
    assert task["status"] == "posted" and task["assignments"] == []
    # fixed, it goes through
    page.get_by_label("confidence (required)").fill("80")
    page.get_by_role("button", name="Submit answer").click()
    page.get_by_text("Your answer was recorded").wait_for()
    task = api_task(site, task_id)
    assert task["status"] == "verified"
    assert task["output"] == {
        "duplicate": True,
        "confidence": 80,
        "category": "mistake",
        "notes": ["same amount"],
    }


def test_sign_in_works_with_the_keyboard_alone(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/signin")
    for _ in range(10):
        if page.evaluate("document.activeElement && document.activeElement.id") == "api_key":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api_key"
    page.keyboard.type(site.reviewer)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/queue")
    # the first Tab reaches the skip link, which is visible and outlined when focused
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "[document.activeElement.textContent, getComputedStyle(document.activeElement)"
        ".outlineStyle]"
    )
    assert focused == ["Skip to content", "solid"]
    shot(page, "keyboard-signed-in")
