"""CrewAI test setup: offline, telemetry off, a throwaway HOME, and crewai imported once.

The environment is set when this file is imported, before any test module imports crewai
(crewai writes under ``~/.local/share`` on import and kickoff, and reads the telemetry
switches at import). ``import crewai`` takes about ten seconds, so it happens here, once,
with the ``ImportWarning`` it raises on import silenced (the suite turns warnings into
errors). CrewAI's own code trips its own deprecation warnings (``function_calling_llm``
and other deprecated fields it reads) on every kickoff; those are ignored for these tests
only. CrewAI's tool hooks are process-global: every test leaves none behind.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="handrail-crewai-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.update(
    {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_DISABLE_TRACKING": "true",
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "CREWAI_DISABLE_VERSION_CHECK": "true",  # no PyPI look-up from a flow's console
        "HOME": _HOME,
        "CREWAI_STORAGE_DIR": "handrail-tests",
    }
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", ImportWarning)
    for module in (
        "crewai",
        "crewai.flow.flow",
        "crewai.flow.persistence",
        "handrail_crewai._ask",
        "handrail_crewai._flows",
        "handrail_crewai._guardrail",
        "handrail_crewai._hooks",
        "handrail_crewai._human_input",
        "handrail_crewai._tools",
    ):
        importlib.import_module(module)

from crewai.hooks import clear_all_global_hooks  # noqa: E402

from handrail import Handrail  # noqa: E402

HERE = Path(__file__).resolve().parent
CREWAI_DEPRECATIONS = pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(CREWAI_DEPRECATIONS)


@pytest.fixture(autouse=True)
def no_hooks_left() -> Iterator[None]:
    clear_all_global_hooks()
    yield
    clear_all_global_hooks()


@pytest.fixture
def hr() -> Iterator[Handrail]:
    """An in-process Handrail; the agent acts as ``local``, reviewers as others."""
    with Handrail.local() as client:
        yield client
