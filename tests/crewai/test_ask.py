"""``AskHumanTool``: an agent puts a question to a person and gets the verified answer."""

from __future__ import annotations

import json
import threading

from crewai.tools import ToolFailure

from handrail import Handrail, Kind, Status
from handrail_crewai import AskHumanTool
from tests.crewai._support import FINAL, act, crew_of, reviewer

QUESTION = '{"question": "Which plan is the customer on?", "context": "ticket T-1"}'
PLAN = {
    "type": "object",
    "properties": {"plan": {"enum": ["free", "pro"]}},
    "required": ["plan"],
    "additionalProperties": False,
}


def test_a_free_text_answer_comes_back(hr: Handrail) -> None:
    crew, llm = crew_of([AskHumanTool(hr)], [act("ask_human", QUESTION), FINAL.format("ok")])
    with reviewer(hr, {"answer": "the pro plan"}) as alice:
        assert crew.kickoff().raw == "ok"
    assert llm.last_observation() == "the pro plan"
    (task,) = alice.tasks
    assert task.kind is Kind.JUDGMENT
    assert task.title == "Which plan is the customer on?"
    assert task.payload == {"context": "ticket T-1"}


def test_a_structured_answer_is_json(hr: Handrail) -> None:
    ask = AskHumanTool(hr, name="ask_support", output_schema=PLAN, risk_tier="low")
    crew, llm = crew_of([ask], [act("ask_support", QUESTION), FINAL.format("ok")])
    with reviewer(hr, {"plan": "pro"}) as alice:
        crew.kickoff()
    assert json.loads(llm.last_observation()) == {"plan": "pro"}
    assert alice.tasks[0].output_schema == PLAN


def test_no_answer_in_time_is_a_failure_not_an_answer(hr: Handrail) -> None:
    got = AskHumanTool(hr, timeout=0.2).run(question="Which plan?")
    assert isinstance(got, ToolFailure) and got.code == "wait_timeout"
    assert "Do not assume an answer" in got.message
    assert hr.tasks.list().items[0].status is Status.CANCELLED


def test_a_withdrawn_question_is_a_failure(hr: Handrail) -> None:
    def withdraw() -> None:
        (task,) = hr.as_reviewer("alice").tasks.wait_for_work(timeout=10)
        hr.tasks.cancel(task.id, "asked elsewhere")

    thread = threading.Thread(target=withdraw)
    thread.start()
    got = AskHumanTool(hr, timeout=10).run(question="Which plan?")
    thread.join()
    assert isinstance(got, ToolFailure) and got.code == "no_answer"
    assert "ended without an answer (cancelled)" in got.message


def test_an_unreachable_server_is_a_failure(hr: Handrail) -> None:
    client = Handrail.local()
    client.close()
    got = AskHumanTool(client).run(question="Which plan?")
    assert isinstance(got, ToolFailure) and got.code == "ask_failed"


async def test_arun(hr: Handrail) -> None:
    with reviewer(hr, {"answer": "yes"}):
        assert await AskHumanTool(hr).arun(question="Ship it?") == "yes"
