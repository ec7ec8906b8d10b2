"""The memory store's copies, and the fast paths the create path takes instead of pydantic's
copying and validating: a stored task shares nothing a caller could change, no deep copy is
made on a create, and what is assembled without validation is what validation would make."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pydantic.main
import pytest
from pydantic import BaseModel

from handrail import Engine, ManualClock, MemoryStore, Principal, Role, Task, TaskSpec
from handrail._model_base import assembled, detached
from handrail.engine.requests import _fingerprint
from handrail.models import Assignment, AssignmentStatus, TaskEvent
from handrail.policy import Policy, PolicyRule
from handrail.store import TaskQuery, _memory_tasks
from handrail.testing._conformance_support import make_task

AGENT = Principal(org_id="acme", id="agent", roles=frozenset({Role.REQUESTER}), key_id="k-1")
ADMIN = Principal(org_id="acme", id="root", roles=frozenset({Role.ADMIN}))
REVIEW: dict[str, Any] = {"kind": "review", "action": {"name": "send_email", "args": {"to": "a"}}}
FULL_REVIEW: dict[str, Any] = {
    "kind": "review",
    "task_type": "refund",
    "title": "Refund order 42?",
    "instructions": "Check the order history.",
    "payload": {"order": {"id": 42, "items": ["a", "b"]}, "total": "89.99"},
    "risk_tier": "high",
    "sla_seconds": 600,
    "payout": {"currency": "USD", "amount": "0.50"},
    "redundancy": 2,
    "max_answers": 3,
    "max_attempts": 2,
    "idempotency_key": "key-1",
    "callback_url": "https://example.com/hook",
    "metadata": {"trace": "t-1", "nested": {"x": [1, 2.5, None]}},
    "batch_id": "turn-1",
    "action": {
        "name": "refund",
        "args": {"order_id": 42, "lines": [{"sku": "a"}]},
        "args_schema": {"type": "object", "properties": {"order_id": {"type": "integer"}}},
    },
    "agent_reasoning": "The item arrived broken.",
    "confidence": 0.42,
    "allowed_decisions": ["approve", "reject", "respond"],
    "answer_ttl_seconds": 300,
    "redact": ["args.order_id"],
}
JUDGMENT: dict[str, Any] = {
    "kind": "judgment",
    "output_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    "gold_answer": {"ok": True},
    "payload": {"rows": [[1, 2], [3]]},
}
MADE = (
    "id",
    "org_id",
    "task_type",
    "title",
    "sandbox",
    "created_by",
    "request_fingerprint",
    "reached_at",
    "created_at",
    "updated_at",
    "expires_at",
    "backup_at",
    "max_answers",
)


def _shape(model: BaseModel, *, nested_sets: bool = True) -> Any:
    """A model's fields in order, with the exact type of every value, all the way down, and
    the fields it was given (``model_fields_set``; of the models inside too, unless not
    ``nested_sets``)."""

    def of(value: Any) -> Any:
        if isinstance(value, BaseModel):
            given = value.model_fields_set if nested_sets or value is model else None
            return (type(value), given, [(k, of(v)) for k, v in vars(value).items()])
        if isinstance(value, dict):
            return (dict, [(k, type(k), of(v)) for k, v in value.items()])
        if isinstance(value, list | tuple):
            return (type(value), [of(v) for v in value])
        return (type(value), value)

    return of(model)


def _mutable_parts(value: Any) -> Iterator[int]:
    """The ids of every dict and list inside ``value``."""
    if isinstance(value, BaseModel):
        for v in vars(value).values():
            yield from _mutable_parts(v)
    elif isinstance(value, dict | list):
        yield id(value)
        for v in value.values() if isinstance(value, dict) else value:
            yield from _mutable_parts(v)
    elif isinstance(value, tuple):
        for v in value:
            yield from _mutable_parts(v)


@pytest.fixture
def engine() -> Engine:
    return Engine(MemoryStore(), clock=ManualClock())


class TestAssembledIsValidated:
    @pytest.mark.parametrize(
        "raw", [REVIEW, FULL_REVIEW, JUDGMENT], ids=["review", "full", "judgment"]
    )
    def test_a_new_task_is_what_validating_it_makes(
        self, engine: Engine, raw: dict[str, Any]
    ) -> None:
        spec = TaskSpec.model_validate(raw)
        task = engine._new_task(ADMIN, spec, _fingerprint(spec))
        validated = Task.model_validate(
            {
                **spec.model_dump(exclude={"task_type", "title"}),
                **{k: getattr(task, k) for k in MADE},
            }
        )
        assert task == validated
        # an action (or payout) the spec was given keeps the fields it was given with, where
        # validating a dump gives it all of them: nothing reads a nested model's fields set
        assert _shape(task, nested_sets=False) == _shape(validated, nested_sets=False)
        assert task.model_fields_set == validated.model_fields_set
        assert task.model_dump(mode="json") == validated.model_dump(mode="json")

    async def test_create_shares_nothing_with_a_callers_spec(self, engine: Engine) -> None:
        spec = TaskSpec.model_validate(FULL_REVIEW)
        task = await engine.create(AGENT, spec)
        assert not set(_mutable_parts(task)) & set(_mutable_parts(spec))

    def test_a_subclass_spec_is_still_validated(self, engine: Engine) -> None:
        spec = make_task(ManualClock())  # a Task is a TaskSpec too: its own fields carry over
        task = engine._new_task(AGENT, spec, "f" * 64)
        assert task.status is spec.status and task.assignments == spec.assignments

    async def test_the_created_event_is_what_validating_it_makes(self, engine: Engine) -> None:
        async with engine.store.transaction() as tx:
            rule = PolicyRule(id="r", tools=("send_email",), outcome="ask")
            await tx.put_policy("acme", Policy(version=1, rules=(rule,)))
        task = await engine.create(AGENT, REVIEW)
        (event,) = await engine.history(AGENT, task.id)
        given = {k: v for k, v in vars(event).items() if k in event.model_fields_set}
        validated = TaskEvent.model_validate(given)
        assert event == validated and _shape(event) == _shape(validated)
        assert event.data["key_id"] == "k-1" and event.data["policy"]["rule_id"] == "r"

    def test_assembling_refuses_what_it_cannot_make(self) -> None:
        with pytest.raises(TypeError, match="must be given"):
            assembled(Assignment, {"worker_id": "w"})
        with pytest.raises(TypeError, match="no field"):
            assembled(Assignment, {"worker_id": "w", "claimed_at": None, "nope": 1})


class TestModelCopy:
    def test_model_copy_is_pydantics(self) -> None:
        task = make_task(ManualClock())
        ours = task.model_copy(update={"version": 7, "title": "t"})
        theirs = BaseModel.model_copy(task, update={"version": 7, "title": "t"})
        assert _shape(ours) == _shape(theirs)
        assert _shape(copy.copy(task)) == _shape(BaseModel.__copy__(task))
        assert _shape(task.model_copy(deep=True)) == _shape(task)


class TestDetached:
    def test_a_detached_task_shares_no_dict_or_list(self) -> None:
        task = make_task(ManualClock(), output={"type": "approve", "args": None}, gold_answer=[1])
        copied = detached(task)
        assert copied == task and _shape(copied) == _shape(task)
        assert not set(_mutable_parts(copied)) & set(_mutable_parts(task))

    def test_what_cannot_change_is_shared(self) -> None:
        task = make_task(ManualClock())
        copied = detached(task)
        assert copied.policy is task.policy  # frozen all the way down
        assert copied.estimate is task.estimate
        assert copied.allowed_decisions is task.allowed_decisions
        assert copied.action is not task.action  # its args are a dict
        assert copied.assignments[1] is task.assignments[1]  # no answer yet: nothing to copy
        assert copied.assignments[0] is not task.assignments[0]

    def test_unknown_values_are_deep_copied(self) -> None:
        class Loose(BaseModel):  # not frozen: could be changed in place
            items: list[int]

        value = {"a": Loose(items=[1]), "s": {1, 2}}
        copied = detached(value)
        assert copied == value
        assert copied["a"] is not value["a"] and copied["a"].items is not value["a"].items
        assert copied["s"] is not value["s"]

    async def test_changing_what_the_store_gave_changes_nothing_stored(self) -> None:
        store = MemoryStore()
        clock = ManualClock()
        answer = Assignment(
            worker_id="w",
            status=AssignmentStatus.SUBMITTED,
            claimed_at=clock.now(),
            output={"deep": {"list": [1, {"x": 1}]}},
        )
        task = make_task(clock, assignments=(answer,), output={"type": "approve", "n": [1]})
        async with store.transaction() as tx:
            await tx.insert_task(task)
            task.action.args["order_id"] = "changed after insert"  # type: ignore[union-attr]
        before = task.model_dump(mode="json")
        before["action"]["args"]["order_id"] = 42
        for reading in ("get", "list"):
            async with store.transaction(readonly=True) as tx:
                if reading == "get":
                    loaded = await tx.get_task("org-a", task.id)
                else:
                    (loaded,) = await tx.list_tasks("org-a", TaskQuery())
            assert loaded is not None
            loaded.payload["order"]["items"].append("c")
            loaded.metadata["nested"]["x"].clear()
            loaded.action.args["amount"] = "0"  # type: ignore[union-attr]
            loaded.assignments[0].output["deep"]["list"][1]["x"] = 2  # type: ignore[index]
            loaded.output["n"].append(2)  # type: ignore[index]
            loaded.reached_at.clear()
            loaded.gold_answer["type"] = "reject"  # type: ignore[index]
        async with store.transaction(readonly=True) as tx:
            again = await tx.get_task("org-a", task.id)
        assert again is not None
        assert again.model_dump(mode="json") == before

    async def test_changing_an_event_changes_no_history(self, engine: Engine) -> None:
        task = await engine.create(AGENT, REVIEW)
        (event,) = await engine.history(AGENT, task.id)
        event.data["key_id"] = "forged"
        (again,) = await engine.history(AGENT, task.id)
        assert again.data["key_id"] == "k-1"
        async with engine.store.transaction(readonly=True) as tx:
            (entry,) = await tx.audit_entries("acme", 0, 10)
        entry.data["data"]["key_id"] = "forged"
        async with engine.store.transaction(readonly=True) as tx:
            (entry,) = await tx.audit_entries("acme", 0, 10)
        assert entry.data["data"]["key_id"] == "k-1"


class TestCopiesPerCreate:
    async def test_a_create_makes_no_deep_copy_and_one_task_copy(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Pinned: one detached copy of the new task (what the store keeps), no deep copy
        (``copy.deepcopy``, ``model_copy(deep=True)``) anywhere."""
        deep: list[object] = []
        copies: list[Task] = []
        real_deepcopy, real_copy = copy.deepcopy, _memory_tasks._copy

        def counting_deepcopy(value: Any, memo: Any = None) -> Any:
            deep.append(value)
            return real_deepcopy(value, memo)

        def counting_copy(task: Task) -> Task:
            copies.append(task)
            return real_copy(task)

        monkeypatch.setattr(copy, "deepcopy", counting_deepcopy)
        monkeypatch.setattr(pydantic.main, "deepcopy", counting_deepcopy)
        monkeypatch.setattr(_memory_tasks, "_copy", counting_copy)
        await engine.create(AGENT, REVIEW)
        await engine.create(AGENT, FULL_REVIEW)
        assert deep == []
        assert len(copies) == 2
        await engine.get(AGENT, copies[0].id)
        assert len(copies) == 3 and deep == []
