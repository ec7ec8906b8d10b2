"""``handrail resumer``: a :class:`HandrailResumer` for a graph named by import path.

Plugged into core's ``handrail`` command (the ``handrail.commands`` entry point), so it
exists only where ``handrail-langgraph`` (and so LangGraph) is installed::

    handrail resumer myapp.graphs:refunds --db handrail.db
    handrail resumer myapp.graphs:make_graph --url https://handrail.example --health 127.0.0.1:8081

``module:attr`` is a compiled graph with a durable checkpointer, or a function that takes
the Handrail client and returns one (the graph's review nodes need the client). It prints
one line when it follows the event stream and one per resume; with ``--health``, ``GET
/healthz`` answers 200 while it follows the stream and 503 otherwise, with the counts.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langgraph.pregel import Pregel

from handrail import Handrail

from ._delivery import Resumption
from ._resumer import HandrailResumer

__all__ = ["load_graph", "main"]


def load_graph(target: str, client: Handrail) -> Pregel[Any, Any, Any, Any]:
    """The graph ``module:attr`` names (called with ``client`` if it is a factory)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"{target!r}: give the graph as module:attr (myapp.graphs:refunds)")
    found: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        found = getattr(found, part)
    if not isinstance(found, Pregel) and callable(found):
        found = found(client)
    if not isinstance(found, Pregel):
        raise SystemExit(f"{target} is not a compiled LangGraph graph (nor a function making one)")
    return found


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{prog} resumer",
        description="Resume the threads of a LangGraph graph as their Handrail tasks are decided.",
    )
    parser.add_argument(
        "graph",
        help="module:attr of the compiled graph, or of a function "
        "taking the Handrail client and returning it",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", help="Handrail.local's database: a SQLite file or a URL")
    where.add_argument("--url", help="a Handrail server (its key in --api-key or HANDRAIL_API_KEY)")
    parser.add_argument("--api-key", default=os.environ.get("HANDRAIL_API_KEY"))
    parser.add_argument("--org", default="local", help="with --db: the organisation")
    parser.add_argument("--name", default="default", help="the resumer's cursor name")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--stall-after", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--reconcile-every", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--health", metavar="HOST:PORT", help="serve GET /healthz there")
    return parser


def _client(args: argparse.Namespace) -> Handrail:
    if args.url:
        if not args.api_key:
            raise SystemExit("--url needs an API key: --api-key or HANDRAIL_API_KEY")
        return Handrail(url=args.url, api_key=args.api_key)
    return Handrail.local(args.db or "handrail.db", org=args.org)


class _Health:
    """What ``/healthz`` reports."""

    def __init__(self, resumer: HandrailResumer) -> None:
        self.resumer = resumer
        self.counts: Counter[str] = Counter()

    def body(self) -> tuple[int, bytes]:
        connected = self.resumer.connected.is_set()
        report = {"connected": connected, **self.counts}
        return (200 if connected else 503), json.dumps(report).encode()

    def serve(self, where: str) -> ThreadingHTTPServer:
        host, _, port = where.rpartition(":")
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = health.body() if self.path == "/healthz" else (404, b"{}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # no line per probe

        server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
        return server


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(args: Sequence[str], prog_name: str = "handrail") -> None:
    """``handrail resumer ...`` (``args`` from ``resumer`` on, as core's command passes)."""
    parsed = _parser(prog_name).parse_args(list(args)[1:])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _client(parsed) as client:
        graph = load_graph(parsed.graph, client)
        health: _Health | None = None

        def report(outcome: Resumption) -> None:
            if health is not None:
                health.counts[outcome.status] += 1
            if outcome.status in ("resumed", "continued"):
                _say(f"{outcome.status} thread {outcome.thread_id} (task {outcome.task_id})")

        resumer = HandrailResumer(
            graph,
            client,
            name=parsed.name,
            concurrency=parsed.concurrency,
            stall_after=parsed.stall_after,
            reconcile_every=parsed.reconcile_every,
            on_resumption=report,
        )
        health = _Health(resumer)
        server = health.serve(parsed.health) if parsed.health else None
        signal.signal(signal.SIGTERM, lambda *_: resumer.stop())

        def ready() -> None:
            if resumer.connected.wait():
                _say(f"following events for {parsed.graph} (resumer {parsed.name!r})")

        threading.Thread(target=ready, daemon=True).start()
        try:
            resumer.run()
        except KeyboardInterrupt:
            pass
        finally:
            if server is not None:
                server.shutdown()
