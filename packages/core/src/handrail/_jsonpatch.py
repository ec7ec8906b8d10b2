"""JSON Patch (RFC 6902): how a reviewer's edit changed the proposed arguments.

:func:`diff` writes the edit as ``add``/``remove``/``replace`` operations (objects are
compared key by key, anything else is replaced whole); :func:`apply` replays a patch, so
``apply(a, diff(a, b)) == b``.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["apply", "diff", "pointer", "same"]


def pointer(parts: list[str]) -> str:
    """A JSON Pointer (RFC 6901) to ``parts``."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and true differ, 1 and 1.0 do not."""
    # JSON equality: 1 and true differ, 1 and 1.0 do not
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool((type(a) is type(b) or (_number(a) and _number(b))) and a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def diff(old: Any, new: Any, at: list[str] | None = None) -> list[dict[str, Any]]:
    """The operations that turn ``old`` into ``new``."""
    path = at or []
    if same(old, new):
        return []
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [{"op": "replace", "path": pointer(path), "value": copy.deepcopy(new)}]
    ops: list[dict[str, Any]] = []
    for key in old:
        if key not in new:
            ops.append({"op": "remove", "path": pointer([*path, key])})
    for key, value in new.items():
        if key not in old:
            ops.append({"op": "add", "path": pointer([*path, key]), "value": copy.deepcopy(value)})
        else:
            ops += diff(old[key], value, [*path, key])
    return ops


def _parts(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"not a JSON Pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """``doc`` with the ``add``, ``remove`` and ``replace`` operations applied."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = _parts(op["path"])
        if not parts:
            doc = copy.deepcopy(op["value"])
            continue
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        key: Any = int(last) if isinstance(parent, list) else last
        if op["op"] == "remove":
            del parent[key]
        elif op["op"] in ("add", "replace"):
            parent[key] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"unsupported operation {op['op']!r}")
    return doc
