"""The transition table: every legal pair moves, every other pair is refused."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from handrail import lifecycle
from handrail.errors import InvalidTransition
from handrail.lifecycle import CANCELLABLE, EXPIRABLE, FINAL, TERMINAL, TRANSITIONS, Event, Status

LEGAL = {(e.source, e.target) for e in TRANSITIONS}
ALL_PAIRS = list(itertools.product(Status, Status))


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS, ids=lambda s: s.value)
def test_every_pair_of_states(source: Status, target: Status) -> None:
    events = [e.event for e in TRANSITIONS if e.source is source and e.target is target]
    assert lifecycle.is_legal(source, target) == bool(events)
    if events:
        for event in events:
            assert lifecycle.check("t1", source, event, target) is target
    else:
        for event in Event:
            with pytest.raises(InvalidTransition) as caught:
                lifecycle.check("t1", source, event, target)
            assert (caught.value.from_status, caught.value.to_status) == (
                source.value,
                target.value,
            )
            assert caught.value.event == event.value


def test_the_table_has_the_expected_shape() -> None:
    assert len(LEGAL) == 26
    assert {Status.FAILED, Status.EXPIRED, Status.CANCELLED} == FINAL
    assert {Status.VERIFIED, Status.FAILED, Status.EXPIRED, Status.CANCELLED} == TERMINAL
    assert CANCELLABLE == EXPIRABLE == {Status.POSTED, Status.ESTIMATE_PENDING, Status.ASSIGNED}
    # no edge starts from a final state, every non-posted state is reachable
    assert not any(e.source in FINAL for e in TRANSITIONS)
    assert {e.target for e in TRANSITIONS} | {Status.POSTED} == set(Status)
    # create is the first history entry, never an edge
    assert not any(e.event is Event.CREATE for e in TRANSITIONS)


def test_an_event_with_several_targets_needs_one_named() -> None:
    assert lifecycle.targets(Status.ASSIGNED, Event.SUBMIT) == (Status.ASSIGNED, Status.SUBMITTED)
    with pytest.raises(ValueError, match="several targets"):
        lifecycle.check("t1", Status.ASSIGNED, Event.SUBMIT)
    assert lifecycle.check("t1", Status.POSTED, Event.CLAIM) is Status.ASSIGNED


def test_an_event_that_cannot_happen_names_the_state() -> None:
    with pytest.raises(InvalidTransition, match="cannot verify from 'posted'") as caught:
        lifecycle.check("task-9", Status.POSTED, Event.VERIFY)
    assert caught.value.to_dict() == {
        "code": "invalid_transition",
        "message": "task task-9: cannot verify from 'posted'",
        "task_id": "task-9",
        "from_status": "posted",
        "event": "verify",
        "to_status": None,
    }


def test_events_from_each_state() -> None:
    assert lifecycle.events_from(Status.VERIFIED) == (Event.DISPUTE,)
    for final in FINAL:
        assert lifecycle.events_from(final) == ()


def test_docs_lifecycle_is_rendered_from_the_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
    assert doc.read_text() == lifecycle.render_markdown(), "run `make docs`"
    for edge in TRANSITIONS:
        assert f"| `{edge.source}` | `{edge.event}` | `{edge.target}` |" in doc.read_text()
