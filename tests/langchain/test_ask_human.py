"""``ask_human_tool``: the model's question becomes a judgment task; the tool returns the
verified answer, or an error result (never a made-up answer) when there is none."""

from __future__ import annotations

import json

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage

from handrail import Handrail, Kind, RetryPolicy, Status
from handrail_langchain import AskHumanTool, ask_human_tool
from tests.langchain.conftest import Reviewer, call, calls, script, tool_messages
from tests.server._live import free_port

VERDICT = {
    "type": "object",
    "properties": {"approve": {"type": "boolean"}, "why": {"type": "string"}},
    "required": ["approve", "why"],
}


def test_free_text_question_and_answer(hr: Handrail) -> None:
    ask = ask_human_tool(hr, timeout=20)
    assert isinstance(ask, AskHumanTool) and ask.name == "ask_human"
    assert set(ask.args) == {"question", "context"}
    with Reviewer(hr.as_reviewer("alice"), {"q1": "Blue, like last year."}):
        result = ask.invoke(
            call("ask_human", "q1", question="Which colour for the logo?", context="rebrand")
        )
    assert isinstance(result, ToolMessage)
    assert (result.content, result.status) == ("Blue, like last year.", "success")
    (task,) = hr.tasks.list().items
    assert task.kind is Kind.JUDGMENT and task.title == "Which colour for the logo?"
    assert task.payload == {"question": "Which colour for the logo?", "context": "rebrand"}
    assert task.output_schema == {"type": "string", "minLength": 1}
    assert task.idempotency_key == "langchain:ask_human:q1"
    assert task.status is Status.VERIFIED and task.assignments[0].worker_id == "alice"


def test_a_structured_answer_fits_the_schema(hr: Handrail) -> None:
    ask = ask_human_tool(hr, name="judge", output_schema=VERDICT, timeout=20)
    assert json.dumps(VERDICT) in ask.description
    answer = {"approve": False, "why": "the numbers do not add up"}
    with Reviewer(hr.as_reviewer("alice"), lambda task: answer):
        result = ask.invoke({"question": "Is the report right?"})
    assert result == answer


def test_a_long_question_is_kept_whole(hr: Handrail) -> None:
    question = "Please check this: " + "x" * 900
    ask = ask_human_tool(hr, timeout=20)
    with Reviewer(hr.as_reviewer("alice"), lambda task: "checked"):
        assert ask.invoke({"question": question}) == "checked"
    (task,) = hr.tasks.list().items
    assert len(task.title) == 500 and task.title.endswith("…")
    assert task.instructions == question


def test_no_answer_in_time_is_an_error_not_an_answer(hr: Handrail) -> None:
    ask = ask_human_tool(hr, timeout=0.2)
    result = ask.invoke(call("ask_human", "q1", question="Anyone?"))
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert str(result.content).startswith(
        "No human answered the question (no one answered in time)"
    )
    assert "Do not assume an answer" in str(result.content)
    (task,) = hr.tasks.list().items
    assert task.status is Status.CANCELLED


def test_an_unreachable_server_is_an_error(tmp_path: object) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Handrail(url, "hr_live_nobody", retry=RetryPolicy(max_attempts=1)) as down:
        result = ask_human_tool(down).invoke(call("ask_human", "q1", question="Anyone?"))
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert "it could not be asked: could not reach" in str(result.content)


async def test_async_in_an_agent(hr: Handrail) -> None:
    model = script(
        calls(call("ask_human", "q1", question="May I close the ticket?")),
        AIMessage("closed"),
    )
    agent = create_agent(model, [ask_human_tool(hr, timeout=20)])
    with Reviewer(hr.as_reviewer("alice"), {"q1": "yes"}):
        result = await agent.ainvoke({"messages": [{"role": "user", "content": "close it"}]})
    assert tool_messages(result["messages"])["q1"].content == "yes"
    assert result["messages"][-1].content == "closed"


async def test_async_timeout(hr: Handrail) -> None:
    result = await ask_human_tool(hr, timeout=0.2).ainvoke(call("ask_human", "q1", question="?"))
    assert result.status == "error" and "no one answered in time" in str(result.content)


def test_an_empty_question_is_refused_before_anyone_is_asked(hr: Handrail) -> None:
    with pytest.raises(Exception, match="at least 1 character"):
        ask_human_tool(hr).invoke({"question": ""})
    assert hr.tasks.list().items == ()
