"""What proof of real-world work looks like: photos (or screenshots), a confirmation, or an
encrypted credential, with notes. The answer schema of HumanOps-style tasks, wherever
they are posted (the HumanOps dialect, the MCP server's ``post_task``)."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["ProofType", "proof_schema"]

ProofType = Literal["PHOTO", "SCREENSHOT", "CONFIRMATION", "ARTIFACT"]

_TEXT = {"type": "string", "minLength": 1, "maxLength": 10_000}
_URL = {"type": "string", "minLength": 1, "maxLength": 2048}
_CREDENTIAL = {
    "type": "object",
    "required": ["ciphertext", "iv", "ephemeralPublicKey"],
    "properties": {
        "ciphertext": {"type": "string", "minLength": 1},
        "iv": {"type": "string", "minLength": 1},
        "ephemeralPublicKey": {"type": "string", "minLength": 1},
        "algorithm": {"type": "string"},
        "createdAt": {"type": "string"},
    },
}
_REQUIRED = {
    "PHOTO": ["photos"],
    "SCREENSHOT": ["photos"],
    "CONFIRMATION": ["confirmation_text"],
    "ARTIFACT": ["encrypted_credential"],
}


def proof_schema(proof_type: ProofType) -> dict[str, Any]:
    """The JSON Schema a proof of ``proof_type`` must fit."""
    return {
        "type": "object",
        "required": _REQUIRED[proof_type],
        "properties": {
            "photos": {"type": "array", "items": _URL, "minItems": 1, "maxItems": 50},
            "notes": _TEXT,
            "confirmation_text": _TEXT,
            "reference_url": _URL,
            "encrypted_credential": _CREDENTIAL,
        },
        "additionalProperties": False,
    }
