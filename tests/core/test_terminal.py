"""The terminal reviewer, driven through text streams."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from handrail import DecisionType, Handrail, Status
from handrail._terminal import TerminalReviewer

ARGS_SCHEMA = {
    "type": "object",
    "required": ["to"],
    "properties": {"to": {"type": "string", "format": "email"}, "cc": {"type": "string"}},
    "additionalProperties": False,
}
ANSWER_SCHEMA = {
    "type": "object",
    "required": ["spam"],
    "properties": {"spam": {"type": "boolean"}},
}


@pytest.fixture
def hr() -> Iterator[Handrail]:
    with Handrail.local() as client:
        yield client


def drive(hr: Handrail, lines: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    reviewer = TerminalReviewer(
        hr.as_reviewer("alice"),
        stdin=io.StringIO("\n".join(lines) + "\n"),
        stdout=out,
        idle_timeout=0.25,
    )
    return reviewer.run(), out.getvalue()


def review(hr: Handrail, name: str, **kw: object) -> str:
    return hr.tasks.create(kind="review", action={"name": name, **kw}).id


def test_approve_reject_and_modify(hr: Handrail) -> None:
    first = review(hr, "send_email", args={"to": "a@b.c"})
    second = review(hr, "refund", args={"amount": "9.00"})
    third = review(hr, "mail", args={"to": "x"}, args_schema=ARGS_SCHEMA)
    count, shown = drive(
        hr,
        [
            "a",
            "r",
            "",  # a reject needs a reason: asked again
            "r",
            "too much",
            "m",
            "{not json",
            '["a list"]',
            '{"to": "ops@example.com", "bcc": "x"}',
            "",
            "m",
            '{"to": "ops@example.com"}',
            "fixed the address",
        ],
    )
    assert count == 3
    got = {t: hr.tasks.get(t).decision for t in (first, second, third)}
    assert got[first] is not None and got[first].type is DecisionType.APPROVE
    assert got[second] is not None and got[second].message == "too much"
    assert got[third] is not None and got[third].args == {"to": "ops@example.com"}
    assert got[third].message == "fixed the address"
    assert "args: {" in shown and '"amount": "9.00"' in shown
    assert "A reason is required." in shown
    assert "Not JSON" in shown
    assert "Please enter a JSON object." in shown
    assert "Not accepted" in shown and "'bcc' was unexpected" in shown


def test_only_allowed_decisions_are_offered(hr: Handrail) -> None:
    hr.tasks.create(kind="review", action={"name": "x"}, allowed_decisions=["approve", "respond"])
    count, shown = drive(hr, ["m", "p", "use the other tool"])
    assert count == 1
    assert "[a]pprove [p] respond [s]kip [q]uit > " in shown
    assert "Please choose one of the options." in shown
    decision = hr.tasks.list().items[0].decision
    assert decision is not None and decision.type is DecisionType.RESPOND


def test_skip_and_quit_leave_tasks_open(hr: Handrail) -> None:
    skipped = review(hr, "first")
    kept = review(hr, "second")
    count, _ = drive(hr, ["s", "q"])
    assert count == 0
    assert {hr.tasks.get(t).status for t in (skipped, kept)} == {Status.POSTED}


def test_judgments_take_a_json_answer(hr: Handrail) -> None:
    task = hr.tasks.create(
        kind="judgment", output_schema=ANSWER_SCHEMA, payload={"text": "win $$$"}
    )
    count, shown = drive(hr, ['{"spam": "yes"}', "nope", '{"spam": true}'])
    assert count == 1
    assert hr.tasks.get(task.id).output == {"spam": True}
    assert '"text": "win $$$"' in shown
    assert "Not accepted" in shown and "Not JSON" in shown


def test_quitting_mid_answer_gives_the_task_back(hr: Handrail) -> None:
    task = hr.tasks.create(kind="judgment", output_schema=ANSWER_SCHEMA)
    count, _ = drive(hr, ['{"spam": 1}'])  # then end of input
    assert count == 0
    assert hr.tasks.get(task.id).status is Status.POSTED


def test_a_task_taken_meanwhile_is_reported(hr: Handrail) -> None:
    task_id = review(hr, "pay")

    class Racing(io.StringIO):
        def readline(self, size: int = -1) -> str:
            line = super().readline(size)
            if line == "a\n":  # somebody else decides while alice reads
                hr.tasks.cancel(task_id)
            return line

    out = io.StringIO()
    reviewer = TerminalReviewer(
        hr.as_reviewer("alice"), stdin=Racing("a\n"), stdout=out, idle_timeout=0.25
    )
    assert reviewer.run() == 0
    assert "Could not record it" in out.getvalue()
