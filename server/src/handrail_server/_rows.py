"""Database rows as API and page data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from handrail.clock import utc

__all__ = ["aware"]


def aware(row: Any) -> dict[str, Any]:
    """A row as a dict, its times in UTC (SQLite gives naive datetimes back)."""
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in row._mapping.items()}
