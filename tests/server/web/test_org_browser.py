"""The admin views in a real browser: Playwright driving Debian's chromium (headless)
against a server started on a free port; an admin verifies a manual-review task with the
keyboard alone.

Without /usr/bin/chromium this test skips with the reason, unless
HANDRAIL_REQUIRE_BROWSER=1 (CI), where it fails instead. Screenshots are kept in
test-artifacts/ui/.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.server._live import LiveServer, api_key, bearer, cli_key
from tests.server.web.conftest import ARTIFACTS, run_async

SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["cat", "dog"]}},
    "required": ["label"],
    "additionalProperties": False,
}


@dataclass
class Site:
    server: LiveServer
    admin: str
    requester: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("org-ui")
    url = f"sqlite:///{work / 'ui.db'}"
    admin = run_async(cli_key(url, "acme", "admin", "root"))
    server = LiveServer(url, work)
    server.start()
    try:
        run_async(server.ready())

        async def requester() -> str:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
                return await api_key(client, admin, "requester", "agent")

        yield Site(server, admin, run_async(requester()))
    finally:
        server.stop()


async def _in_manual_review(site: Site) -> str:
    """A judgment that alice and bob answered differently: it waits for an admin."""
    async with httpx.AsyncClient(base_url=site.url, trust_env=False, timeout=30) as client:
        made = await client.post(
            "/v1/tasks",
            json={
                "kind": "judgment",
                "title": "Cat or dog?",
                "output_schema": SCHEMA,
                "redundancy": 2,
                "max_answers": 2,
            },
            headers=bearer(site.requester),
        )
        assert made.status_code == 201, made.text
        task_id: str = made.json()["id"]
        for name, label in (("alice", "cat"), ("bob", "dog")):
            key = await api_key(client, site.admin, "reviewer", name)
            done = await client.post(
                f"/v1/tasks/{task_id}/submissions",
                json={"output": {"label": label}},
                headers=bearer(key),
            )
            assert done.status_code == 200, done.text
        assert done.json()["status"] == "manual_review"
        return task_id


def _task(site: Site, task_id: str) -> dict[str, Any]:
    got = httpx.get(f"{site.url}/v1/tasks/{task_id}", headers=bearer(site.requester))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def tab_to(page: Any, element_id: str, limit: int = 80) -> None:
    """Press Tab until the element with ``element_id`` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} never got the focus with Tab")


def tab_to_name(page: Any, tag: str, text: str, limit: int = 80) -> None:
    """Press Tab until a ``tag`` element whose text is ``text`` has the focus."""
    check = (
        "([tag, text]) => { const e = document.activeElement;"
        " return !!e && e.tagName === tag && e.textContent.trim() === text; }"
    )
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(check, [tag, text]):
            return
    raise AssertionError(f"no {tag} {text!r} got the focus with Tab")


def test_an_admin_verifies_a_manual_review_task_by_keyboard(browser: Any, site: Site) -> None:
    task_id = run_async(_in_manual_review(site))
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{site.url}/signin?next=%2Forg%2Freview")
        tab_to(page, page.get_by_label("API key").get_attribute("id"))
        page.keyboard.type(site.admin)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{site.url}/org/review")

        card = page.locator(f'article[data-task="{task_id}"]')
        assert "Cat or dog?" in card.inner_text()
        cat = card.get_by_label('alice: {"label": "cat"}')
        tab_to(page, cat.get_attribute("id"))
        page.keyboard.press("Space")
        assert cat.is_checked()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "manual-review.png"), full_page=True)
        tab_to_name(page, "BUTTON", "Verify")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{site.url}/org/review?done=verified")
        assert page.get_by_role("status").inner_text() == "The task was verified."
        assert page.locator(f'article[data-task="{task_id}"]').count() == 0
        page.screenshot(path=str(ARTIFACTS / "manual-review-verified.png"), full_page=True)
    finally:
        context.close()
    task = _task(site, task_id)
    assert (task["status"], task["output"]) == ("verified", {"label": "cat"})
