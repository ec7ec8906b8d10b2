"""The base of every Handrail model: frozen, strict about unknown fields, JSON-safe."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    # allow_inf_nan: NaN and infinities are not JSON; no task, decision or answer holds one
    model_config = ConfigDict(
        frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False
    )
