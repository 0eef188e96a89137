"""A session with a context provider: what the LLM sees, what is spoken, what is kept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from callwright.engines.base import ChatMessage, LLMDelta, ToolCall, ToolSpec
from callwright.engines.scripted import ScriptedLLM
from callwright.pipeline.context import (
    CallControl,
    GroundingResult,
    KnowledgeHit,
    KnowledgeUse,
    KnowledgeVia,
    TurnContext,
)
from tests.helpers.voice_session import silence, tone

HIT = KnowledgeHit(n=1, chunk_id=7, kb="clinic", source="parking.md")


class Passages:
    """A provider that adds a fixed passage and flags answers that lack its number."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.asked: list[str] = []

    async def for_user_turn(self, text: str) -> TurnContext | None:
        self.asked.append(text)
        if self.fail:
            raise ConnectionError("knowledge store is down")
        return TurnContext(
            content=f"[1] Parking costs 3 dollars.\n\nCaller: {text}",
            used=KnowledgeUse(query=text, hits=(HIT,)),
        )

    def check_answer(self, answer: str, context: TurnContext) -> GroundingResult | None:
        cited = (1,) if "[1]" in answer else ()  # the check sees the citations
        return GroundingResult(flagged="3" not in answer, cited=cited)


class RecordingLLM(ScriptedLLM):
    def __init__(self, reply: str) -> None:
        super().__init__(reply=reply)
        self.seen: list[list[tuple[str, str]]] = []

    async def stream(self, messages: Sequence[ChatMessage], **kw: Any):  # type: ignore[override]
        self.seen.append([(m.role, m.content) for m in messages])
        async for delta in super().stream(messages, **kw):
            yield delta


async def test_context_reaches_the_llm_and_the_history(make_session):
    llm = RecordingLLM("Parking is 3 dollars [1]. Anything else?")
    provider = Passages()
    h = await make_session(llm=llm, context=provider)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    assert provider.asked == ["what time do you open on saturday"]
    # the LLM saw the passage with the caller's words
    assert llm.seen[-1][-1] == (
        "user",
        "[1] Parking costs 3 dollars.\n\nCaller: what time do you open on saturday",
    )
    # the citation marker is never spoken, nor kept in what the caller heard
    spoken = " ".join(e.text for e in h.out.of("agent_text"))
    assert "[1]" not in spoken and "3 dollars" in spoken
    assert h.out.of("agent_speech_ended")[0].text == "Parking is 3 dollars. Anything else?"
    # history: the caller's words only; the passages were in that turn's prompt
    conv = h.session.conversation
    assert conv.messages[0].content == "what time do you open on saturday"
    assert conv.for_llm()[1].content == "what time do you open on saturday"
    knowledge = h.out.of("knowledge")
    assert len(knowledge) == 1 and knowledge[0].used.hits == (HIT,)
    assert knowledge[0].grounding.flagged is False
    assert knowledge[0].grounding.cited == (1,)  # the check saw the citation
    metrics = h.out.of("turn_metrics")[0].to_dict()
    assert metrics["retrieval_ms"] is not None and metrics["retrieval_done_ms"] is not None


async def test_passages_stay_in_their_own_turn(make_session):
    llm = RecordingLLM("Noted.")
    h = await make_session(llm=llm, context=Passages())
    for _ in range(2):
        await h.feed(tone(1.0) + silence(0.2))
        await h.feed_until("agent_speech_ended", within=10)
        await h.feed(silence(0.3))
    second = llm.seen[-1]
    assert [r for r, _ in second] == ["system", "user", "assistant", "user"]
    # the first turn's passages are gone from the second turn's prompt; its own are there
    assert second[1] == ("user", "what time do you open on saturday")
    assert second[3][1].startswith("[1] Parking costs 3 dollars.")


async def test_failed_context_still_answers(make_session):
    h = await make_session(context=Passages(fail=True))
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    errors = h.out.of("error")
    assert errors and errors[0].code == "context_failed" and "down" in errors[0].message
    assert h.out.of("knowledge") == []
    assert h.out.of("agent_speech_ended")[0].text.startswith("We open at nine")


class Prefetching(Passages):
    def __init__(self) -> None:
        super().__init__()
        self.partials: list[str] = []

    async def prefetch(self, partial: str) -> TurnContext | None:
        self.partials.append(partial)
        prefix = "[1] Parking costs 3 dollars.\n\nCaller: "
        return TurnContext(content=prefix + partial, prefix=prefix)

    async def for_user_turn(self, text: str) -> TurnContext | None:
        ctx = await super().for_user_turn(text)
        assert ctx is not None
        ctx.prefix = "[1] Parking costs 3 dollars.\n\nCaller: "
        return ctx


class PrefillingLLM(RecordingLLM):
    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.prefilled: list[list[tuple[str, str]]] = []

    async def prefill(self, messages: Sequence[ChatMessage], *, session_key: str | None) -> None:
        self.prefilled.append([(m.role, m.content) for m in messages])


async def test_passages_are_read_while_the_caller_speaks(make_session):
    llm = PrefillingLLM("Noted.")
    provider = Prefetching()
    h = await make_session(llm=llm, context=provider)
    await h.feed(tone(1.5) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    assert provider.partials, "a partial transcript was prefetched"
    assert llm.prefilled, "the LLM read the prompt ahead of the end of turn"
    ahead = llm.prefilled[0]
    assert ahead[-1] == ("user", "[1] Parking costs 3 dollars.\n\nCaller: ")
    final = llm.seen[-1]
    # the turn's prompt starts with exactly what was read ahead: a cached prefix
    assert final[:-1] == ahead[:-1] and final[-1][1].startswith(ahead[-1][1])


class ToolProvider(Passages):
    """Gives nothing up front; answers the LLM's search_knowledge calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def for_user_turn(self, text: str) -> TurnContext | None:
        return None

    def tools(self) -> list[ToolSpec]:
        return [ToolSpec("search_knowledge", "search", {"type": "object", "properties": {}})]

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        self.calls.append((name, arguments))
        return TurnContext(
            content="[1] Parking costs 3 dollars.",
            used=KnowledgeUse(query=name, via=KnowledgeVia.TOOL),
        )


class ToolCallingLLM(RecordingLLM):
    """Calls the tool first, then answers from what it returned."""

    async def stream(self, messages: Sequence[ChatMessage], **kw: Any):  # type: ignore[override]
        self.seen.append([(m.role, m.content) for m in messages])
        tool_results = [m.content for m in messages if m.role == "tool"]
        if kw.get("tools") and not tool_results:
            args = json.dumps({"query": messages[-1].content})
            yield LLMDelta(tool_calls=[ToolCall("call-1", "search_knowledge", args)])
            yield LLMDelta(finish_reason="tool_calls")
            return
        fact = tool_results[-1].split("costs ")[-1].rstrip(".") if tool_results else "unknown"
        for word in f"Parking is {fact}.".split(" "):
            yield LLMDelta(text=word + " ")
        yield LLMDelta(finish_reason="stop")


async def test_knowledge_as_a_tool_the_llm_calls(make_session):
    llm = ToolCallingLLM("unused")
    provider = ToolProvider()
    h = await make_session(llm=llm, context=provider)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=10)
    assert provider.calls == [
        ("search_knowledge", json.dumps({"query": "what time do you open on saturday"}))
    ]
    # second round: the tool's answer went back to the LLM, which then spoke
    roles = [r for r, _ in llm.seen[-1]]
    assert roles[-2:] == ["assistant", "tool"]
    assert h.out.of("agent_speech_ended")[0].text == "Parking is 3 dollars."
    assert [e.name for e in h.out.of("tool_call")] == ["search_knowledge"]
    knowledge = h.out.of("knowledge")
    assert knowledge and knowledge[0].used.via is KnowledgeVia.TOOL
    # the history keeps the words, not the tool exchange
    assert [m.role for m in h.session.conversation.messages] == ["user", "assistant"]


class SlowTool(ToolProvider):
    """A tool that takes `secs` to answer, with the tool layer's verdict."""

    def __init__(self, secs: float, status: str = "ok") -> None:
        super().__init__()
        self.secs = secs
        self.status = status
        self.cancelled = False

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        self.calls.append((name, arguments))
        try:
            await asyncio.sleep(self.secs)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return TurnContext(content="[1] Parking costs 3 dollars.", tool_status=self.status)


async def test_a_slow_tool_gets_a_filler_and_its_timing_is_on_the_turn(make_session):
    provider = SlowTool(secs=2.5)
    h = await make_session(llm=ToolCallingLLM("unused"), context=provider)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=15)
    said = [(t, e.text) for t, e in h.out.events if e.type == "agent_text"]
    assert [text for _, text in said] == ["One moment, let me check that.", "Parking is 3 dollars."]
    # in virtual time: the filler exactly 1 s into the tool, the answer when it returns
    asked = h.out.first_time("tool_call")
    assert said[0][0] - asked == pytest.approx(1.0)
    assert said[1][0] - asked == pytest.approx(2.5)
    result = h.out.of("tool_result")[0]
    assert (result.name, result.status, result.duration_ms) == ("search_knowledge", "ok", 2500.0)
    metrics = h.out.of("turn_metrics")[0]
    assert metrics.to_dict()["tools"] == [
        {"name": "search_knowledge", "status": "ok", "ms": 2500.0}
    ]
    # the caller heard the filler: the history keeps it with the answer
    assert h.session.conversation.messages[-1].content == (
        "One moment, let me check that. Parking is 3 dollars."
    )


async def test_a_quick_tool_needs_no_filler(make_session):
    h = await make_session(llm=ToolCallingLLM("unused"), context=SlowTool(secs=0.4))
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=15)
    assert [e.text for e in h.out.of("agent_text")] == ["Parking is 3 dollars."]
    assert h.out.of("tool_result")[0].duration_ms == 400.0


async def test_a_refused_tool_call_is_timed_with_its_verdict(make_session):
    h = await make_session(llm=ToolCallingLLM("unused"), context=SlowTool(0.0, "not_allowed"))
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("turn_metrics", within=15)
    assert h.out.of("tool_result")[0].status == "not_allowed"
    assert h.out.of("turn_metrics")[0].metrics.tools[0].status == "not_allowed"


async def test_a_barge_in_cancels_a_running_tool(make_session):
    provider = SlowTool(secs=10.0)
    h = await make_session(
        llm=ToolCallingLLM("unused"), context=provider, interruption_min_secs=0.3
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=15)  # the filler, at 1 s
    await h.feed(tone(1.0))
    await h.out.wait_for("interruption", within=3)
    await h.feed(silence(0.1))
    assert provider.cancelled
    assert h.out.of("tool_result") == []


class HangUpTool(ToolProvider):
    """The tool layer asks the call to end after the reply (as `end_call` does)."""

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        self.calls.append((name, arguments))
        return TurnContext(content="Say goodbye.", control=CallControl.END_CALL)


async def test_a_tool_can_end_the_call_after_the_goodbye_is_spoken(make_session):
    h = await make_session(llm=ToolCallingLLM("unused"), context=HangUpTool())
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("end", within=15)
    assert h.out.of("agent_speech_ended")  # the reply was spoken in full first
    assert h.out.first_time("agent_speech_ended") <= h.out.first_time("end")
    assert await asyncio.wait_for(h.task, 2) == "agent_hangup"


async def test_the_caller_talking_over_the_goodbye_keeps_the_call(make_session):
    h = await make_session(
        llm=ToolCallingLLM("unused"), context=HangUpTool(), interruption_min_secs=0.3
    )
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=15)
    await h.feed(tone(1.0))
    await h.out.wait_for("interruption", within=3)
    await h.feed(silence(1.0))
    assert not h.task.done()
