"""A person reviews a task's output: ``Task(human_input=True)`` through
``HandrailHumanInput``, and ``Task(guardrail=human_review_guardrail(...))``."""

from __future__ import annotations

from typing import Any

import pytest
from crewai.core.providers.human_input import get_provider
from pydantic import BaseModel

from crewai import Agent, Crew, Task
from handrail import Decision, Handrail, Status
from handrail_crewai import HandrailHumanInput, ReviewNotGiven, human_review_guardrail
from tests.crewai._support import FINAL, ScriptedLLM, crew_of, reviewer

EDITED = "Dear Alice, your refund is on its way."


def feedback_in(llm: ScriptedLLM, text: str) -> bool:
    return text in llm.prompts_text()


class TestHumanInput:
    def crew(self, *answers: str, retries: int = 0) -> tuple[Crew, ScriptedLLM]:
        return crew_of(
            [],
            [FINAL.format(a) for a in answers],
            task_kwargs={"human_input": True},
            retries=retries,
        )

    def test_approve_accepts_the_answer(self, hr: Handrail) -> None:
        crew, llm = self.crew("draft one")
        with HandrailHumanInput(hr).installed(), reviewer(hr, Decision.approve()) as alice:
            assert crew.kickoff().raw == "draft one"
        (task,) = alice.tasks
        assert task.action is not None and task.action.args == {"output": "draft one"}
        assert task.payload["task"] == "email the customer"
        assert task.payload["agent"] == "mailer"
        assert len(llm.seen) == 1

    def test_reject_sends_feedback_back_and_asks_again(self, hr: Handrail) -> None:
        crew, llm = self.crew("draft one", "draft two")
        answers = (Decision.reject("make it shorter"), Decision.approve())
        with HandrailHumanInput(hr).installed(), reviewer(hr, *answers) as alice:
            assert crew.kickoff().raw == "draft two"
        assert len(llm.seen) == 2
        assert feedback_in(llm, "make it shorter")
        assert [t.action.args["output"] for t in alice.tasks if t.action] == [
            "draft one",
            "draft two",
        ]
        assert [t.payload["round"] for t in alice.tasks] == [1, 2]

    def test_modify_accepts_the_reviewers_text_without_another_model_call(
        self, hr: Handrail
    ) -> None:
        crew, llm = self.crew("draft one")
        with HandrailHumanInput(hr).installed(), reviewer(hr, Decision.modify({"output": EDITED})):
            assert crew.kickoff().raw == EDITED
        assert len(llm.seen) == 1

    def test_no_answer_stops_the_run(self, hr: Handrail) -> None:
        crew, llm = self.crew("draft one", "never used", "never used", retries=2)
        with HandrailHumanInput(hr, timeout=0.2).installed(), pytest.raises(ReviewNotGiven) as got:
            crew.kickoff()
        assert "No human answered in time" in str(got.value)
        # a deliberate stop: the agent (which retries after errors) does not run it again
        assert len(llm.seen) == 1
        assert len(hr.tasks.list().items) == 1
        assert hr.tasks.list().items[0].status is Status.CANCELLED

    def test_rounds_run_out(self, hr: Handrail) -> None:
        crew, llm = self.crew("one", "two", "three")
        answers = (Decision.reject("no"), Decision.reject("still no"))
        provider = HandrailHumanInput(hr, max_rounds=2)
        with provider.installed(), reviewer(hr, *answers), pytest.raises(ReviewNotGiven) as got:
            crew.kickoff()
        assert "after 2 rounds" in str(got.value)
        assert len(llm.seen) == 2

    def test_the_provider_is_only_set_inside_the_block(self, hr: Handrail) -> None:
        provider = HandrailHumanInput(hr)
        with provider.installed():
            assert get_provider() is provider
        assert get_provider() is not provider

    async def test_async_kickoff(self, hr: Handrail) -> None:
        crew, llm = self.crew("draft one", "draft two")
        answers = (Decision.respond("add a greeting"), Decision.approve())
        provider = HandrailHumanInput(hr, allowed_decisions=("approve", "respond"))
        with provider.installed(), reviewer(hr, *answers):
            assert (await crew.akickoff()).raw == "draft two"
        assert feedback_in(llm, "add a greeting")

    def test_a_structured_answer_is_edited_as_text(self, hr: Handrail) -> None:
        class Reply(BaseModel):
            subject: str
            body: str

        llm = ScriptedLLM(
            model="scripted", responses=[FINAL.format('{"subject": "Hi", "body": "draft"}')]
        )
        agent = Agent(role="mailer", goal="g", backstory="b", llm=llm, verbose=False)
        task = Task(
            description="write the email",
            expected_output="an email",
            agent=agent,
            human_input=True,
            output_pydantic=Reply,
        )
        # The agent's answer is JSON text at this point; the reviewer edits the text and
        # CrewAI parses the accepted answer into the task's model.
        edit = Decision.modify({"output": '{"subject": "Refund", "body": "on its way"}'})
        with HandrailHumanInput(hr).installed(), reviewer(hr, edit):
            out = Crew(agents=[agent], tasks=[task], verbose=False).kickoff()
        assert out.pydantic == Reply(subject="Refund", body="on its way")


class TestGuardrail:
    def crew(self, *answers: str, **guard: Any) -> tuple[Crew, ScriptedLLM, Handrail]:
        hr: Handrail = guard.pop("hr")
        crew, llm = crew_of(
            [],
            [FINAL.format(a) for a in answers],
            task_kwargs={"guardrail": human_review_guardrail(hr, **guard)},
        )
        return crew, llm, hr

    def test_approve_passes_the_output_on(self, hr: Handrail) -> None:
        crew, _, _ = self.crew("draft one", hr=hr)
        with reviewer(hr, Decision.approve()) as alice:
            assert crew.kickoff().raw == "draft one"
        assert alice.tasks[0].title == "Review the output: the task's output"

    def test_reject_retries_with_the_feedback(self, hr: Handrail) -> None:
        crew, llm, _ = self.crew("draft one", "draft two", hr=hr)
        with reviewer(hr, Decision.reject("mention the order number"), Decision.approve()):
            assert crew.kickoff().raw == "draft two"
        assert feedback_in(llm, "mention the order number")

    def test_modify_replaces_the_output(self, hr: Handrail) -> None:
        crew, llm, _ = self.crew("draft one", hr=hr)
        with reviewer(hr, Decision.modify({"output": EDITED})):
            assert crew.kickoff().raw == EDITED
        assert len(llm.seen) == 1

    def test_no_answer_fails_the_task(self, hr: Handrail) -> None:
        crew, llm, _ = self.crew("draft one", "never used", hr=hr, timeout=0.2)
        with pytest.raises(ReviewNotGiven):
            crew.kickoff()
        assert len(llm.seen) == 1

    def test_an_unreachable_server_fails_the_task(self) -> None:
        client = Handrail.local()
        client.close()
        crew, _, _ = self.crew("draft one", hr=client)
        with pytest.raises(ReviewNotGiven) as got:
            crew.kickoff()
        assert got.value.code == "review_not_given"

    def test_the_task_title_can_be_set(self, hr: Handrail) -> None:
        crew, _, _ = self.crew("draft one", hr=hr, title="Check the refund email", risk_tier="high")
        with reviewer(hr, Decision.approve()) as alice:
            crew.kickoff()
        assert alice.tasks[0].title == "Check the refund email"
        assert alice.tasks[0].risk_tier.value == "high"
