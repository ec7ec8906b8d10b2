"""The ``handrail`` command: a terminal reviewer and a demo that needs no server."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from .client import Handrail
from .models import Decision

__all__ = ["main"]


def _review(args: argparse.Namespace) -> int:
    with Handrail.local(args.db, org=args.org) as hr:
        from ._terminal import TerminalReviewer  # noqa: PLC0415 - only this command needs it

        reviewer = TerminalReviewer(
            hr.as_reviewer(args.reviewer),
            stdin=sys.stdin,
            stdout=sys.stdout,
            idle_timeout=args.idle_exit,
        )
        try:
            count = reviewer.run()
        except KeyboardInterrupt:
            count = reviewer.decided
        print(f"\n{count} task(s) decided.")
    return 0


DEMO_ACTIONS = [
    ("send_email", {"to": "customer@example.com", "subject": "Your refund"}, 0.92),
    ("refund_payment", {"order_id": "A-1042", "amount": "120.00", "currency": "USD"}, 0.71),
    ("delete_records", {"table": "users", "where": "last_login < '2020-01-01'"}, 0.55),
]


def _demo(args: argparse.Namespace) -> int:
    from ._terminal import TerminalReviewer  # noqa: PLC0415

    with Handrail.local(args.db) as hr:
        done = threading.Event()
        results: list[tuple[str, Decision]] = []

        def agent() -> None:
            threads = []
            for name, call_args, confidence in DEMO_ACTIONS:

                def ask(
                    name: str = name, call_args: dict[str, str] = call_args, c: float = confidence
                ) -> None:
                    decision = hr.review(
                        name, call_args, reasoning=f"The plan needs {name}.", confidence=c
                    )
                    results.append((name, decision))
                    print(
                        f"\n  [agent] {name}: {decision.type.value}"
                        + (f" ({decision.message})" if decision.message else "")
                    )

                threads.append(threading.Thread(target=ask, daemon=True))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            done.set()

        print("Handrail demo: an agent asks to run three actions; you are the reviewer.")
        threading.Thread(target=agent, daemon=True).start()
        reviewer = TerminalReviewer(
            hr.as_reviewer("you"), stdin=sys.stdin, stdout=sys.stdout, stop=done
        )
        with contextlib.suppress(KeyboardInterrupt):
            reviewer.run()
        done.wait(timeout=1)
        approved = sum(1 for _, d in results if d.approved)
        print(f"\nDemo over: {approved} of {len(results)} action(s) approved.")
    return 0


def _plugin(argv: Sequence[str]) -> Callable[..., object] | None:
    """A command another package adds (the server adds ``serve``, ``keys``, ``migrate``,
    ``policy`` and ``audit``)."""
    if not argv:
        return None
    for entry in entry_points(group="handrail.commands"):
        if entry.name == argv[0]:
            command: Callable[..., object] = entry.load()
            return command
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    plugin = _plugin(args)
    if plugin is not None:
        plugin(args=args, prog_name="handrail")
        return 0
    parser = argparse.ArgumentParser(
        prog="handrail",
        description=__doc__,
        epilog=(
            "with handrail-server installed: serve, keys, migrate, policy, audit, mcp; "
            "with handrail-langgraph: resumer"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    review = commands.add_parser("review", help="review open tasks at the terminal")
    review.add_argument("--db", default="handrail.db", help="SQLite file (default handrail.db)")
    review.add_argument("--org", default="local")
    review.add_argument("--as", dest="reviewer", default="reviewer", help="your reviewer id")
    review.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long with no open task (default: keep waiting)",
    )
    review.set_defaults(run=_review)

    demo = commands.add_parser("demo", help="an agent asks; you review (no server needed)")
    demo.add_argument("--db", default=None, help="SQLite file (default: in memory)")
    demo.set_defaults(run=_demo)

    parsed = parser.parse_args(args)
    code: int = parsed.run(parsed)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
