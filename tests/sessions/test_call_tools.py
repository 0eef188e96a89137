"""Tools in a live call: the agent's tools offered to the LLM, every call through the
policy gateway, refusals read back to the LLM, and each call audited in storage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest

from callwright.actions.builtin import register_builtin_tools
from callwright.actions.tools import ToolCallContext, ToolOutcome, ToolRegistry
from callwright.agents.config import AgentConfig
from callwright.agents.loader import AgentConfigError, load_agent_file, parse_agent
from callwright.engines import registry
from callwright.engines.base import ChatMessage, LLMDelta, ToolCall, ToolSpec
from callwright.engines.registry import EngineHub
from callwright.sessions.model import AudioFormat, SessionInfo
from callwright.sessions.runtime import CallRuntime
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from tests.helpers.session_output import Collector
from tests.helpers.system import REPO

LLM = "test-call-tools-llm"


class ToolCallingLLM:
    """Asks for the order's status (and for a refund it may not give) when it is offered
    tools, then answers with what the tools said."""

    name = LLM

    def __init__(self) -> None:
        self.offered: list[list[str]] = []

    async def stream(
        self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = (), **kw: Any
    ) -> AsyncIterator[LLMDelta]:
        self.offered.append([t.name for t in tools])
        results = [m.content for m in messages if m.role == "tool"]
        if tools and not results:
            yield LLMDelta(
                tool_calls=[
                    ToolCall("c1", "order_status", '{"order_id": "A12", "pin": "4321"}'),
                    ToolCall("c2", "refund", '{"order_id": "A12"}'),
                ]
            )
            return
        yield LLMDelta(text="I checked. " + " ".join(results))
        yield LLMDelta(finish_reason="stop")


@pytest.fixture
def llm() -> ToolCallingLLM:
    engine = ToolCallingLLM()
    registry.register("llm", LLM)(lambda **_: engine)
    yield engine
    registry._FACTORIES.pop(("llm", LLM))


@pytest.fixture
def tools() -> ToolRegistry:
    tools = ToolRegistry()
    seen: list[ToolCallContext] = []

    @tools.tool(
        name="order_status",
        description="Where an order is.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "pin": {"type": "string"}},
            "required": ["order_id"],
        },
        redact=("pin",),
    )
    async def order_status(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        seen.append(call)
        return ToolOutcome(f"Order {args['order_id']} ships tomorrow.", {"eta_days": 1})

    tools.seen = seen  # type: ignore[attr-defined]
    return tools


def agent(**fields: Any) -> AgentConfig:
    data = load_agent_file(REPO / "agents" / "zero-cost.yaml").model_dump(mode="json")
    data["engines"]["llm"] = {"name": LLM}
    data["engines"]["vad"] = {"name": "energy"}  # a tone is speech
    # a fast talker: the reply's audio plays in real time
    data["engines"]["tts"] = {"name": "scripted", "options": {"chars_per_sec": 500}}
    data.update(fields)
    return parse_agent(data)


def session_info(a: AgentConfig) -> SessionInfo:
    return SessionInfo(
        tenant_id=a.tenant_id,
        agent_id=a.agent_id,
        agent_version=1,
        channel="sim",
        language="en",
        input_format=AudioFormat(),
        output_format=AudioFormat(sample_rate=16000),
    )


def tone(secs: float) -> bytes:
    t = np.arange(int(secs * 16000)) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 6000).astype("<i2").tobytes()


async def test_a_tool_call_goes_through_the_gateway_and_is_audited(
    db: Database, llm: ToolCallingLLM, tools: ToolRegistry
) -> None:
    a = agent(tools=["order_status"])
    runtime = CallRuntime({a.agent_id: a}, EngineHub(), db=db, tools=tools)
    await runtime.start(preload=False)
    info = session_info(a)
    out = Collector()
    call = await runtime.open_call(info, out)
    task = asyncio.create_task(call.run())
    call.push_audio(tone(1.0) + bytes(2 * 32000))  # a question, then 2 s of silence
    await asyncio.wait_for(out.spoke.wait(), 15)
    call.session.end()
    await asyncio.wait_for(task, 10)
    runtime.close_call(call)
    await runtime.aclose()

    # offered the agent's tool; the answer carries the tool's result and the refusal
    assert llm.offered[0] == ["order_status"]
    said = next(e for e in out.events if e.type == "agent_speech_ended").text
    assert "Order A12 ships tomorrow." in said
    assert "not done: there is no tool 'refund' here" in said
    assert [e.name for e in out.events if e.type == "tool_call"] == ["order_status", "refund"]
    assert [(c.call_id, c.agent_id, c.turn) for c in tools.seen] == [  # type: ignore[attr-defined]
        (info.session_id, "zero-cost", 1)
    ]
    # both calls audited with the call, the secret argument redacted
    events = await CallRepository(db).list_events(a.tenant_id, info.session_id, ["tool_audit"])
    audits = {e.payload["tool"]: e.payload for e in events}
    assert audits["order_status"]["status"] == "ok"
    assert audits["order_status"]["arguments"] == {"order_id": "A12", "pin": "[redacted]"}
    assert audits["order_status"]["data"] == {"eta_days": 1}
    assert audits["order_status"]["turn"] == 1
    assert audits["refund"]["status"] == "not_allowed"


async def test_an_agent_without_tools_is_offered_none(
    db: Database, llm: ToolCallingLLM, tools: ToolRegistry
) -> None:
    a = agent()
    runtime = CallRuntime({a.agent_id: a}, EngineHub(), db=db, tools=tools)
    await runtime.start(preload=False)
    info = session_info(a)
    out = Collector()
    call = await runtime.open_call(info, out)
    task = asyncio.create_task(call.run())
    call.push_audio(tone(1.0) + bytes(2 * 32000))
    await asyncio.wait_for(out.spoke.wait(), 15)
    call.session.end()
    await asyncio.wait_for(task, 10)
    await runtime.aclose()
    assert llm.offered == [[]]
    assert [e for e in out.events if e.type == "tool_call"] == []


async def test_an_agent_listing_an_unregistered_tool_is_refused_at_start(
    tools: ToolRegistry,
) -> None:
    a = agent(tools=["order_status", "cancel_order"])
    runtime = CallRuntime({a.agent_id: a}, EngineHub(), tools=tools)
    with pytest.raises(AgentConfigError, match=r"tools\[1\]: unknown tool 'cancel_order'"):
        await runtime.start(preload=False)


class GoodbyeLLM:
    """Says goodbye and calls the built-in end_call."""

    name = "test-goodbye-llm"

    async def stream(
        self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = (), **kw: Any
    ) -> AsyncIterator[LLMDelta]:
        if tools and not any(m.role == "tool" for m in messages):
            yield LLMDelta(tool_calls=[ToolCall("c1", "end_call", '{"reason": "done"}')])
            return
        yield LLMDelta(text="Goodbye, and thank you for calling.")


async def test_the_built_in_end_call_hangs_up_after_the_goodbye(db: Database) -> None:
    tools = ToolRegistry()
    register_builtin_tools(tools)
    registry.register("llm", GoodbyeLLM.name)(lambda **_: GoodbyeLLM())
    try:
        a = agent(tools=["end_call"])
        a.engines.llm.name = GoodbyeLLM.name
        runtime = CallRuntime({a.agent_id: a}, EngineHub(), db=db, tools=tools)
        await runtime.start(preload=False)
        out = Collector()
        info = session_info(a)
        call = await runtime.open_call(info, out)
        task = asyncio.create_task(call.run())
        call.push_audio(tone(1.0) + bytes(2 * 32000))
        reason = await asyncio.wait_for(task, 15)  # the agent hangs up by itself
        await runtime.aclose()
    finally:
        registry._FACTORIES.pop(("llm", GoodbyeLLM.name))
    assert reason == "agent_hangup"
    said = next(e for e in out.events if e.type == "agent_speech_ended").text
    assert said == "Goodbye, and thank you for calling."
    stored = await CallRepository(db).get_call(a.tenant_id, info.session_id)
    assert stored is not None and stored.end_reason == "agent_hangup"


class TwoLineASR:
    """Hears a booking request in a long utterance, and a yes in a short one."""

    name = "test-two-line-asr"
    sample_rate = 16000

    async def transcribe(self, audio: Any, *, language: str | None = None, prompt: Any = None):
        from callwright.engines.base import Transcript

        long = len(audio) / self.sample_rate > 1.2
        return Transcript("Book a table for two on Friday." if long else "Yes, that's right.")


class BookingLLM:
    """Asks to book on every caller turn, and says what the tool answered."""

    name = "test-booking-llm"

    async def stream(
        self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = (), **kw: Any
    ) -> AsyncIterator[LLMDelta]:
        if tools and messages[-1].role == "user":
            yield LLMDelta(
                tool_calls=[ToolCall("b", "book_table", '{"day": "Friday", "party": 2}')]
            )
            return
        yield LLMDelta(text=messages[-1].content.split(";")[0].rstrip(".") + ".")


async def test_a_sensitive_tool_runs_after_the_caller_says_yes_on_the_next_turn(
    db: Database,
) -> None:
    tools = ToolRegistry()
    booked: list[dict[str, Any]] = []

    @tools.tool(
        name="book_table",
        description="Book a table.",
        parameters={
            "type": "object",
            "properties": {"day": {"type": "string"}, "party": {"type": "integer"}},
            "required": ["day", "party"],
        },
        sensitive=True,
    )
    async def book_table(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        booked.append(args)
        return ToolOutcome("Booked for two on Friday.")

    registry.register("asr", TwoLineASR.name)(lambda **_: TwoLineASR())
    registry.register("llm", BookingLLM.name)(lambda **_: BookingLLM())
    try:
        a = agent(tools=["book_table"])
        a.engines.asr.name, a.engines.llm.name = TwoLineASR.name, BookingLLM.name
        runtime = CallRuntime({a.agent_id: a}, EngineHub(), db=db, tools=tools)
        await runtime.start(preload=False)
        out = Collector()
        info = session_info(a)
        call = await runtime.open_call(info, out)
        task = asyncio.create_task(call.run())

        async def spoken(n: int) -> list[str]:
            for _ in range(300):
                said = [e.text for e in out.events if e.type == "agent_speech_ended"]
                if len(said) >= n:
                    return said
                await asyncio.sleep(0.05)
            raise AssertionError([e.type for e in out.events])

        call.push_audio(tone(1.6) + bytes(2 * 32000))  # "Book a table for two on Friday."
        first = await spoken(1)
        assert booked == []  # read back, not booked
        assert first[0].startswith("not done yet: book_table needs the caller's confirmation")
        call.push_audio(tone(0.5) + bytes(2 * 32000))  # "Yes, that's right."
        second = await spoken(2)
        call.session.end()
        await asyncio.wait_for(task, 10)
        await runtime.aclose()
    finally:
        registry._FACTORIES.pop(("asr", TwoLineASR.name))
        registry._FACTORIES.pop(("llm", BookingLLM.name))
    assert booked == [{"day": "Friday", "party": 2}]
    assert second[1] == "Booked for two on Friday."
    events = await CallRepository(db).list_events(a.tenant_id, info.session_id, ["tool_audit"])
    assert [(e.payload["status"], e.payload["turn"]) for e in events] == [
        ("needs_confirmation", 1),
        ("ok", 2),
    ]
