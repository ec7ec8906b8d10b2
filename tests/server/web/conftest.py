"""What the browser tests share: Debian's chromium under Playwright (headless), where
screenshots go, and a way to run async set-up beside Playwright's sync API.

Without /usr/bin/chromium a browser test skips with the reason, unless
HANDRAIL_REQUIRE_BROWSER=1 (CI), where it fails instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"
REQUIRED = os.environ.get("HANDRAIL_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"HANDRAIL_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a loop of its own thread (Playwright's sync API keeps a loop
    running on this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as p:
        try:
            launched = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
        except Exception as exc:
            _unavailable(f"chromium did not start: {exc}")
        yield launched
        launched.close()
