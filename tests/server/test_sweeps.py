"""The server's background sweeps are the core's one sweep loop (``handrail.runtime``),
started and stopped by the hub: a failing round is logged and the next one still expires
what is due."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from handrail.runtime import Runtime
from tests.core.test_runtime import SWEEPS_LOGGER, FailsInSweeps
from tests.server.conftest import make_settings, review, running


async def test_a_failing_sweep_round_is_logged_and_the_next_expires(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FailsInSweeps()
    async with running(make_settings(tmp_path, sla_interval=0.01), clock) as server:
        assert isinstance(server.hub.runtime, Runtime) and server.hub.runtime.sweeping
        assert server.hub.engine is server.hub.runtime.engine
        c, a = server.client, server.a
        created = await c.post("/v1/tasks", json=review(sla_seconds=60), headers=a.requester)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        clock.failures = 1
        clock.advance(61)
        for _ in range(1000):
            got = await c.get(f"/v1/tasks/{task_id}", headers=a.requester)
            if got.json()["status"] == "expired":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the sweeps stopped")
        assert clock.failures == 0
        (failure,) = [
            r
            for r in caplog.records
            if r.name == SWEEPS_LOGGER and r.levelno == logging.ERROR and r.exc_info
        ]
        assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError
        runtime = server.hub.runtime
    assert not runtime.sweeping  # the hub's close stopped them


async def test_without_background_jobs_nothing_sweeps(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, run_background=False)) as server:
        assert not server.hub.runtime.sweeping
