"""A flood of requests from one key: 429s for it, normal service for everyone else.

One server process (SQLite) with a rate limit of 20 requests a second per key, bursts of
40. A flooder sends ``POST /v1/tasks`` from 24 connections back to back for a few
seconds; meanwhile a colleague (another key of the same organisation) and a neighbour
(a key of another organisation) each create and read a task four times a second, as
they did before the flood. Every task carries who asked for it, so what each got can be
counted afterwards.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.server._live import REVIEW, LiveServer, all_items, api_key, bearer, cli_key

from ._drill import STARTUP, Check, Say, check, nothing_lost

TITLE = "a flood from one key"
RATE, BURST = 20.0, 40
FLOOD = 4.0  # seconds
CONNECTIONS = 24
PACE = 0.25  # seconds between the others' rounds (create + read)
BEFORE = 8  # rounds the others make before the flood


@dataclass
class FloodOutcome:
    flood: dict[str, int] = field(default_factory=dict)  # status → count
    flood_seconds: float = 0.0  # from the flood's start to its last answer
    limited: list[tuple[str | None, str | None]] = field(default_factory=list)  # 429s
    others: dict[str, dict[str, int]] = field(default_factory=dict)  # who → status → count
    latency: dict[str, list[float]] = field(default_factory=dict)  # "before"/"during" → s
    made: dict[str, int] = field(default_factory=dict)  # who → tasks found afterwards
    alive: bool = False


async def _flooder(c: httpx.AsyncClient, key: str, out: FloodOutcome, until: float) -> None:
    statuses: Counter[str] = Counter()
    while time.perf_counter() < until:
        try:
            r = await c.post(
                "/v1/tasks", json={**REVIEW, "metadata": {"by": "flooder"}}, headers=bearer(key)
            )
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
            continue
        statuses[str(r.status_code)] += 1
        if r.status_code == 429:
            code = (
                r.json().get("code")
                if r.headers.get("content-type", "").startswith("application/problem+json")
                else None
            )
            out.limited.append((r.headers.get("retry-after"), code))
    for k, v in statuses.items():
        out.flood[k] = out.flood.get(k, 0) + v
    out.flood_seconds = max(out.flood_seconds, time.perf_counter() - (until - FLOOD))


async def _neighbour(
    c: httpx.AsyncClient, who: str, key: str, out: FloodOutcome, rounds: int, phase: str
) -> None:
    statuses = out.others.setdefault(who, {})
    for _ in range(rounds):
        for method, path, body in (
            ("POST", "/v1/tasks", {**REVIEW, "metadata": {"by": who}}),
            ("GET", "/v1/tasks?limit=1", None),
        ):
            started = time.perf_counter()
            try:
                r = await c.request(method, path, json=body, headers=bearer(key))
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            out.latency.setdefault(phase, []).append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        await asyncio.sleep(PACE)


async def run(workdir: Path, say: Say) -> FloodOutcome:
    out = FloodOutcome()
    url = f"sqlite:///{workdir / 'handrail.db'}"
    flood_admin, acme_admin = await asyncio.gather(
        cli_key(url, "flood", "admin", principal="flood-admin"),
        cli_key(url, "acme", "admin", principal="acme-admin"),
    )
    env = {"HANDRAIL_RATE_LIMIT_PER_SECOND": f"{RATE:g}", "HANDRAIL_RATE_LIMIT_BURST": str(BURST)}
    server = LiveServer(url, workdir, env=env)
    try:
        server.start()
        await server.ready(STARTUP)
        limits = httpx.Limits(max_connections=CONNECTIONS + 10)
        async with httpx.AsyncClient(
            base_url=server.url, trust_env=False, timeout=10, limits=limits
        ) as c:
            keys = {
                "flooder": await api_key(c, flood_admin, "requester", "flooder"),
                "colleague": await api_key(c, flood_admin, "requester", "colleague"),
                "neighbour": await api_key(c, acme_admin, "requester", "neighbour"),
            }
            say(f"rate limit {RATE:g}/s per key, bursts of {BURST}; keys for a flooder, a "
                "colleague in its organisation and a neighbour in another")  # fmt: skip
            others = ("colleague", "neighbour")
            await asyncio.gather(
                *(_neighbour(c, w, keys[w], out, BEFORE, "before") for w in others)
            )
            started = time.perf_counter()
            until = started + FLOOD
            rounds = int(FLOOD / PACE)
            await asyncio.gather(
                *(_flooder(c, keys["flooder"], out, until) for _ in range(CONNECTIONS)),
                *(_neighbour(c, w, keys[w], out, rounds, "during") for w in others),
            )
            say(
                f"flood: {sum(out.flood.values())} POST /v1/tasks in {out.flood_seconds:.1f} s "
                f"from {CONNECTIONS} connections ("
                + ", ".join(f"{k} × {v}" for k, v in sorted(out.flood.items()))
                + f"); meanwhile the others made {rounds} rounds each"
            )
            tasks: list[dict[str, Any]] = []
            for admin in (flood_admin, acme_admin):
                tasks += await all_items(c, admin, "/v1/tasks")
            out.made = dict(Counter((t.get("metadata") or {}).get("by", "?") for t in tasks))
        out.alive = server.process is not None and server.process.poll() is None
    finally:
        server.stop()
    before, during = out.latency.get("before", [0.0]), out.latency.get("during", [0.0])
    say(
        f"the others' requests took {statistics.median(before) * 1000:.0f} ms (median) before "
        f"the flood and {statistics.median(during) * 1000:.0f} ms during it (max "
        f"{max(during) * 1000:.0f} ms)"
    )
    return out


def checks(o: FloodOutcome) -> list[Check]:
    ok = o.flood.get("201", 0)
    limited = o.flood.get("429", 0)
    allowance = BURST + RATE * (o.flood_seconds + 0.5)
    bad_429 = [
        (after, code)
        for after, code in o.limited
        if code != "rate_limited" or after is None or not after.isdigit() or int(after) < 1
    ]
    others_ok = {
        who: statuses.get("201", 0) + statuses.get("200", 0) == sum(statuses.values())
        for who, statuses in o.others.items()
    }
    answers = [*o.flood, *(k for s in o.others.values() for k in s)]
    errors = [k for k in answers if not k[:1].isdigit()]
    server_errors = [k for k in answers if k[:1] == "5"]
    return nothing_lost(
        [
            check(
                "the flooding key was turned away with 429 and Retry-After",
                limited > 0 and len(o.limited) == limited and not bad_429,
                f"{limited} × 429 (code rate_limited, Retry-After ≥ 1 s"
                + (f"; {len(bad_429)} without: {bad_429[:3]}" if bad_429 else "")
                + ")",
            ),
            check(
                "it got no more than its allowance",
                0 < ok <= allowance,
                f"{ok} accepted in {o.flood_seconds:.1f} s; allowance {BURST} + {RATE:g}/s × "
                f"(time + 0.5 s) = {allowance:.0f}",
            ),
            check(
                "what was turned away changed nothing",
                o.made.get("flooder", 0) == ok,
                f"{o.made.get('flooder', 0)} flooder tasks found, {ok} accepted",
            ),
            check(
                "the others were served as usual, before and during the flood",
                bool(others_ok)
                and all(others_ok.values())
                and all(o.made.get(who, 0) == s.get("201", 0) for who, s in o.others.items()),
                "; ".join(
                    f"{who}: "
                    + ", ".join(f"{k} × {v}" for k, v in sorted(s.items()))
                    + f", {o.made.get(who, 0)} tasks found"
                    for who, s in o.others.items()
                ),
            ),
            check(
                "no 5xx and no broken connection, and the server still runs",
                not server_errors and not errors and o.alive,
                f"5xx: {server_errors or 'none'}; errors: {errors or 'none'}; "
                f"server {'running' if o.alive else 'GONE'}",
            ),
        ]
    )
