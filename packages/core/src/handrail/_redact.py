"""Masking named fields: what reviewers, webhooks and logs see of secret arguments.

A path names a field from its root, ``args`` (the action's arguments, and a decision's) or
``payload``: ``args.card_number``, ``args.cards.*.number`` (``*``: every key or item),
``payload.customer.ssn``. A masked value reads :data:`MASK`; the stored task keeps the
real one for the tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "MASK",
    "check_paths",
    "redact_decision",
    "redact_event_data",
    "redact_paths",
    "restore_masked",
    "unmask_args",
]

MASK = "[redacted]"
ROOTS = ("args", "payload")
_SEGMENT = re.compile(r"^(\*|[A-Za-z0-9_\-$@]+)$")


def check_paths(paths: Iterable[str]) -> None:
    """Raise ``ValueError`` naming the first path that is not ``root.field[.field...]``."""
    for path in paths:
        parts = path.split(".")
        if len(parts) < 2 or parts[0] not in ROOTS:
            raise ValueError(f"redact path {path!r} must start with 'args.' or 'payload.'")
        if not all(_SEGMENT.match(p) for p in parts[1:]):
            raise ValueError(f"redact path {path!r}: fields are names, indexes or '*'")


def _split(paths: Iterable[str], root: str) -> list[list[str]]:
    return [p.split(".")[1:] for p in paths if p.split(".", 1)[0] == root]


def _mask(value: Any, parts: Sequence[str]) -> Any:
    if not parts:
        return MASK
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
        if not keys:
            return value
        out = dict(value)
        for key in keys:
            out[key] = _mask(value[key], rest)
        return out
    if isinstance(value, list):
        if head == "*":
            return [_mask(item, rest) for item in value]
        if head.isdigit() and int(head) < len(value):
            out_list = list(value)
            out_list[int(head)] = _mask(value[int(head)], rest)
            return out_list
    return value


def redact_paths(value: Any, paths: Sequence[str], root: str) -> Any:
    """``value`` (the document at ``root``) with the fields ``paths`` name masked."""
    for parts in _split(paths, root):
        value = _mask(value, parts)
    return value


def _pointer(parts: Sequence[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _covered(pointer: str, masks: Sequence[Sequence[str]]) -> bool:
    """Whether a JSON Pointer into the arguments falls under a masked path."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    # under the masked field, or a whole object holding it (zip stops at the shorter)
    return any(all(m in ("*", p) for m, p in zip(mask, parts, strict=False)) for mask in masks)


def redact_decision(decision: Any, paths: Sequence[str]) -> Any:
    """A decision's JSON with its arguments and patch masked (anything else as it is)."""
    if not isinstance(decision, dict) or not paths:
        return decision
    out = dict(decision)
    if isinstance(out.get("args"), dict):
        out["args"] = redact_paths(out["args"], paths, "args")
    patch = out.get("patch")
    if isinstance(patch, list):
        masks = _split(paths, "args")
        out["patch"] = [
            {**op, "value": MASK}
            if isinstance(op, dict) and "value" in op and _covered(str(op.get("path", "")), masks)
            else op
            for op in patch
        ]
    return out


def redact_event_data(data: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """History data with every decision in it (``output``, ``decision``) masked."""
    if not paths:
        return data
    out = dict(data)
    for key in ("output", "decision"):
        if key in out:
            out[key] = redact_decision(out[key], paths)
    return out


def restore_masked(edited: Any, original: Any, parts: Sequence[str]) -> Any:
    """``edited`` with :data:`MASK` at a masked path put back to ``original``'s value there:
    a reviewer who never saw a secret can send it back masked and leave it unchanged."""
    if not parts:
        return original if edited == MASK else edited
    head, rest = parts[0], parts[1:]
    if isinstance(edited, dict) and isinstance(original, dict):
        keys = list(edited) if head == "*" else [head] if head in edited else []
        out = dict(edited)
        for key in keys:
            if key in original:
                out[key] = restore_masked(edited[key], original[key], rest)
        return out
    if isinstance(edited, list) and isinstance(original, list):
        indexes = range(len(edited)) if head == "*" else [int(head)] if head.isdigit() else []
        out_list = list(edited)
        for i in indexes:
            if i < len(edited) and i < len(original):
                out_list[i] = restore_masked(edited[i], original[i], rest)
        return out_list
    return edited


def unmask_args(edited: dict[str, Any], original: dict[str, Any], paths: Sequence[str]) -> Any:
    """Edited arguments with every masked value a reviewer sent back restored."""
    for parts in _split(paths, "args"):
        edited = restore_masked(edited, original, parts)
    return edited
