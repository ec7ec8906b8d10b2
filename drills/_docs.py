"""``docs/reliability.md``: what each drill did and what it found, from one run."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._drill import Result


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def page(results: Sequence[Result], about: Mapping[str, str], at: str, seconds: float) -> str:
    passed = sum(r.ok for r in results)
    out = [
        "# Reliability drills",
        "",
        "Written by `make drills` (`python -m drills`); do not edit by hand. "
        f"Run on {at}: {passed} of {len(results)} drills passed, {seconds:.0f} s in all.",
        "",
        "Each drill breaks a running server on purpose (real `uvicorn` processes, real "
        "SQLite files and PostgreSQL databases, real HTTP), prints what it did and what it "
        "checked, and ends with a **nothing lost** check that holds only if every other "
        "check did. Run one with `uv run --frozen --no-sync python -m drills NAME`.",
        "",
        "| drill | result | time |",
        "|---|---|--:|",
    ]
    out += [
        f"| [{r.title}](#{r.name}) | {'passed' if r.ok else '**FAILED**'} | {r.seconds:.0f} s |"
        for r in results
    ]
    for r in results:
        head, _, body = about.get(r.name, "").strip().partition("\n\n")
        out += ["", f'<a id="{r.name}"></a>', "", f"## {r.title}", ""]
        if head:
            out += [" ".join(head.split()), ""]
        if body.strip():
            out += [textwrap.dedent(body).strip(), ""]
        if r.did:
            out += ["What it did:", ""] + [f"- {line}" for line in r.did] + [""]
        if r.error:
            out += [f"**The drill could not finish:** `{_cell(r.error)}`", ""]
        if r.checks:
            out += ["| check | held | figures |", "|---|---|---|"]
            out += [
                f"| {_cell(c.what)} | {'yes' if c.ok else '**NO**'} | {_cell(c.detail)} |"
                for c in r.checks
            ]
    return "\n".join(out).rstrip() + "\n"


def write(
    results: Sequence[Result], about: Mapping[str, str], at: str, seconds: float, path: Path
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(results, about, at, seconds))
