"""The agent's side of a conversation: one reply at a time, from words to paced audio.

A reply's text comes from the LLM (with the context provider's passages and tools) or
is fixed (greeting, re-prompt, goodbye). It is cut into a short first clause and then
sentences (`SpeechChunker`), each spoken by TTS as soon as it is complete and handed
to the pacer. A speculative reply (started at the VAD stop, before the end of turn is
confirmed) runs with its gate closed: its audio is held until `release()`.

When a reply ends, the history keeps what the caller heard (all of it, or the words
played before an interruption, by the TTS's word timings where it gives them), its
events go out through `emit`, and `on_done` tells the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from callwright.audio.resample import StreamResampler
from callwright.engines.base import ChatMessage, PrefillLLM, TimedTTSEngine, ToolCall, ToolSpec
from callwright.pipeline.chunker import SpeechChunker
from callwright.pipeline.clock import Clock
from callwright.pipeline.context import (
    CallControl,
    ContextProvider,
    PrefetchingContextProvider,
    ToolContextProvider,
    TurnContext,
)
from callwright.pipeline.conversation import Conversation
from callwright.pipeline.events import (
    AgentSpeechEnded,
    AgentSpeechStarted,
    AgentTextEvent,
    ErrorCode,
    ErrorEvent,
    InterruptionEvent,
    KnowledgeEvent,
    ReplyKind,
    SessionEvent,
    ToolCallEvent,
    ToolResultEvent,
    ToolTiming,
    TurnMetrics,
    TurnMetricsEvent,
)
from callwright.pipeline.pacer import OutputPacer, Segment
from callwright.pipeline.settings import SessionEngines, SessionSettings

log = logging.getLogger(__name__)

# "[1]" or "[1, 3]": source markers the LLM may cite; shown in records, never spoken
CITATION = re.compile(r"\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")

MAX_TOOL_ROUNDS = 3  # then the LLM is offered no tools and has to speak


@dataclass(eq=False, slots=True)
class Reply:
    turn: int
    metrics: TurnMetrics
    gate: asyncio.Event
    kind: ReplyKind = ReplyKind.REPLY
    task: asyncio.Task[None] | None = None
    segments: list[Segment] = field(default_factory=list)
    text: str = ""
    audible: bool = False
    late_before: int = 0  # the pacer's late-frame count when this reply started
    context: TurnContext | None = None  # what the LLM got with the caller's words
    control: CallControl | None = None  # a tool asked the call to do this afterwards

    def heard(self) -> str:
        return " ".join(t for t in (s.heard_text() for s in self.segments) if t)


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class ReplyRunner:
    """Runs the session's replies, one at a time (`current`)."""

    def __init__(
        self,
        session_id: str,
        engines: SessionEngines,
        settings: SessionSettings,
        conversation: Conversation,
        pacer: OutputPacer,
        clock: Clock,
        *,
        emit: Callable[[SessionEvent], None],
        on_done: Callable[[Reply, bool], None],
        spawn: Spawn,
        context: ContextProvider | None = None,
    ) -> None:
        self.session_id = session_id
        self.engines = engines
        self.settings = settings
        self.conversation = conversation
        self.pacer = pacer
        self.clock = clock
        self.context = context
        self._emit = emit
        self._on_done = on_done
        self._spawn = spawn
        self.current: Reply | None = None
        self._prefetching: asyncio.Task[None] | None = None
        self._output_rate = pacer.sample_rate

    # ------------------------------------------------------------------ control
    @property
    def audible(self) -> bool:
        """The caller hears (or is about to hear) the current reply."""
        reply = self.current
        return reply is not None and reply.gate.is_set() and (reply.audible or self.pacer.active)

    def start(
        self,
        turn: int,
        metrics: TurnMetrics,
        source: AsyncIterator[str] | list[ChatMessage],
        *,
        gate_open: bool,
        kind: ReplyKind = ReplyKind.REPLY,
    ) -> Reply:
        """Start a reply spoken from `source`: fixed text, or the LLM on these messages."""
        gate = asyncio.Event()
        if gate_open:
            gate.set()
        reply = Reply(turn=turn, metrics=metrics, gate=gate, kind=kind)
        if isinstance(source, list):
            source = self._llm_text(reply, source)
        reply.late_before = self.pacer.stats.late_frames
        self.current = reply
        reply.task = self._spawn(self._run(reply, source), f"reply-{turn}")
        return reply

    def say(self, text: str, *, turn: int, kind: ReplyKind) -> Reply:
        return self.start(turn, TurnMetrics(turn=turn), _fixed(text), gate_open=True, kind=kind)

    def held(self) -> Reply | None:
        """The speculative reply waiting for the end of turn, if there is one."""
        reply = self.current
        if reply is not None and reply.kind is ReplyKind.REPLY and not reply.gate.is_set():
            return reply
        return None

    def interrupt(self, *, record: bool = True) -> Reply | None:
        """Stop the current reply now; the history keeps what was heard."""
        reply = self.current
        if reply is None:
            self.pacer.resume()  # a pause for a reply that has since ended
            return None
        self.pacer.interrupt()
        if reply.task is not None:
            reply.task.cancel()
        self._finish(reply, interrupted=True, emit_interruption=record)
        return reply

    def cancel_unheard(self) -> None:
        """Drop a reply the caller has not heard a word of (the turn went on)."""
        reply = self.current
        if reply is not None and not reply.audible and reply.kind is ReplyKind.REPLY:
            if reply.task is not None:
                reply.task.cancel()
            self.pacer.interrupt()
            self.current = None

    def on_frame(self, segment: Segment) -> None:
        """The pacer sent a frame of `segment`: the first one makes the reply audible."""
        reply = self.current
        if reply is not None and not reply.audible and segment in reply.segments:
            reply.audible = True
            reply.metrics.first_audio_out = self.clock.now()
            self._emit(AgentSpeechStarted(turn=reply.turn))

    # ------------------------------------------------------------------ prefetch
    def prefetch(self, partial: str) -> None:
        """While the caller speaks: fetch context for the partial, and let the LLM read
        it (history + passages) so the end of turn leaves only the caller's words to
        prefill. On a CPU LLM the passages are most of a turn's prompt (~1.5 s for two)."""
        context, llm = self.context, self.engines.llm
        if not isinstance(context, PrefetchingContextProvider) or self._prefetching is not None:
            return

        async def run() -> None:
            try:
                ctx = await context.prefetch(partial)
                if ctx is None or not ctx.prefix or self.current is not None:
                    return
                if isinstance(llm, PrefillLLM):
                    messages = [
                        *self.conversation.for_llm(),
                        ChatMessage(role="user", content=ctx.prefix),
                    ]
                    await llm.prefill(messages, session_key=self.session_id)
            except Exception:  # only a head start: the turn itself does the real work
                log.debug("context prefetch failed in session %s", self.session_id, exc_info=True)
            finally:
                self._prefetching = None

        self._prefetching = self._spawn(run(), "prefetch")

    # ------------------------------------------------------------------ the LLM
    async def _with_context(self, reply: Reply, messages: list[ChatMessage]) -> None:
        """Let the context provider augment the caller's message (retrieval)."""
        if self.context is None or not messages or messages[-1].role != "user":
            return
        reply.metrics.retrieval_start = self.clock.now()
        try:
            ctx = await self.context.for_user_turn(messages[-1].content)
        except Exception as exc:  # a dead knowledge store must not silence the agent
            log.warning("context provider failed in session %s", self.session_id, exc_info=True)
            self._emit(
                ErrorEvent(code=ErrorCode.CONTEXT_FAILED, message=f"{type(exc).__name__}: {exc}")
            )
            ctx = None
        reply.metrics.retrieval_done = self.clock.now()
        if ctx is None:
            return
        reply.context = ctx
        messages[-1] = ChatMessage(role="user", content=ctx.content)

    async def _llm_text(self, reply: Reply, messages: list[ChatMessage]) -> AsyncIterator[str]:
        await self._with_context(reply, messages)
        tools: Sequence[ToolSpec] = ()
        if isinstance(self.context, ToolContextProvider):
            tools = self.context.tools()
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            calls: list[ToolCall] = []
            offered = tools if round_ < MAX_TOOL_ROUNDS else ()
            stream = self.engines.llm.stream(
                messages,
                tools=offered,
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
                session_key=self.session_id,
            )
            try:
                async for delta in stream:
                    if reply.metrics.llm_first_token is None and (delta.text or delta.tool_calls):
                        reply.metrics.llm_first_token = self.clock.now()
                    for call in delta.tool_calls:
                        calls.append(call)
                        self._emit(
                            ToolCallEvent(turn=reply.turn, name=call.name, arguments=call.arguments)
                        )
                    if delta.text:
                        yield delta.text
            finally:
                await _close(stream)
            if not calls or not offered:
                return
            # the LLM asked for tools: run its calls, then let it speak
            messages.append(ChatMessage(role="assistant", content="", tool_calls=calls))
            running = asyncio.ensure_future(self._run_tools(reply, calls))
            try:
                if not await self._done_within(running) and not reply.text.strip():
                    # the caller is never left in silence while a tool works
                    yield self.settings.tool_filler_text + " "
                messages.extend(await running)
            finally:
                running.cancel()  # a barge-in cancels the tools with the reply
            reply.metrics.llm_first_token = None  # the spoken answer's first token counts

    async def _done_within(self, task: asyncio.Future[Any]) -> bool:
        """Whether `task` finishes before it is time for a filler (never, if none)."""
        secs = self.settings.tool_filler_secs
        if secs is None or not self.settings.tool_filler_text:
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep(secs))
        try:
            await asyncio.wait((task, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        return task.done()

    async def _run_tools(self, reply: Reply, calls: list[ToolCall]) -> list[ChatMessage]:
        return [await self._run_tool(reply, call) for call in calls]

    async def _run_tool(self, reply: Reply, call: ToolCall) -> ChatMessage:
        started = self.clock.now()
        try:
            if not isinstance(self.context, ToolContextProvider):
                raise LookupError(f"no tool {call.name!r}")
            ctx = await self.context.call_tool(call.name, call.arguments)
        except Exception as exc:  # the LLM hears the failure and can say so
            log.warning("tool %s failed in session %s", call.name, self.session_id, exc_info=True)
            ctx = TurnContext(content=f"error: {type(exc).__name__}: {exc}", tool_status="failed")
        done = self.clock.now()
        ms = round((done - started) * 1000, 1)
        reply.metrics.tools.append(ToolTiming(call.name, ctx.tool_status, ms))
        self._emit(ToolResultEvent(reply.turn, call.name, ctx.tool_status, ms))
        if ctx.control is not None:
            reply.control = ctx.control
        if ctx.used is not None:  # knowledge: its lookup is the turn's retrieval
            reply.metrics.retrieval_start, reply.metrics.retrieval_done = started, done
            reply.context = ctx if reply.context is None else reply.context.merged(ctx)
        return ChatMessage(role="tool", content=ctx.content, tool_call_id=call.id, name=call.name)

    # ------------------------------------------------------------------ speech
    async def _run(self, reply: Reply, source: AsyncIterator[str]) -> None:
        chunks: asyncio.Queue[str | None] = asyncio.Queue()
        producer = asyncio.ensure_future(_produce(reply, source, chunks))
        tts_rate = self.engines.tts.sample_rate
        # one resampler for the whole reply: it carries samples over between clauses
        resampler = (
            StreamResampler(tts_rate, self._output_rate) if tts_rate != self._output_rate else None
        )
        try:
            while (piece := await chunks.get()) is not None:
                await self._speak_segment(reply, piece, resampler)
            await producer  # surfaces LLM errors
            for segment in reply.segments:
                await segment.done.wait()
        except asyncio.CancelledError:
            producer.cancel()
            raise
        except Exception as exc:
            producer.cancel()
            log.exception("reply failed in session %s", self.session_id)
            self._emit(
                ErrorEvent(code=ErrorCode.REPLY_FAILED, message=f"{type(exc).__name__}: {exc}")
            )
            # the caller heard what was played; the history keeps only that
            self._finish(reply, interrupted=True, emit_interruption=False)
            return
        self._finish(reply, interrupted=False)

    async def _speak_segment(
        self, reply: Reply, piece: str, resampler: StreamResampler | None
    ) -> None:
        """Speak one clause: its audio goes to the pacer, or is held behind the gate."""
        pacer = self.pacer
        tts_rate = self.engines.tts.sample_rate
        segment = pacer.begin_segment(piece, reply.turn)
        held: list[bytes] = []
        seg_samples = 0  # output samples of this segment so far
        async for pcm, word_ends in self._synthesize(piece):
            if reply.metrics.tts_first_audio is None:
                reply.metrics.tts_first_audio = self.clock.now()
            out = resampler.process(pcm) if resampler else pcm
            if word_ends:
                ratio = self._output_rate / tts_rate
                segment.word_end_frames.extend(
                    (seg_samples + e * ratio) / pacer.frame_samples for e in word_ends
                )
            seg_samples += len(out) // 2
            if not reply.gate.is_set():
                held.append(out)
                continue
            if held:
                self._release(reply, segment, held)
                held = []
            self._release(reply, segment, [out])
        if held or not reply.gate.is_set():
            await reply.gate.wait()
            self._release(reply, segment, held)
        if segment not in reply.segments:
            reply.segments.append(segment)
        pacer.end_segment(segment)

    async def _synthesize(self, text: str) -> AsyncIterator[tuple[bytes, tuple[int, ...]]]:
        """TTS audio with word end offsets, where the engine reports them. The engine's
        stream is closed as soon as this one is (barge-in), not when it is collected."""
        tts = self.engines.tts
        voice = self.settings.voice
        if isinstance(tts, TimedTTSEngine):
            timed = tts.synthesize_timed(text, voice=voice)
            try:
                async for piece in timed:
                    yield piece.pcm, piece.word_ends
            finally:
                await _close(timed)
            return
        plain = tts.synthesize(text, voice=voice)
        try:
            async for pcm in plain:
                yield pcm, ()
        finally:
            await _close(plain)

    def _release(self, reply: Reply, segment: Segment, pcm: list[bytes]) -> None:
        if segment not in reply.segments:
            reply.segments.append(segment)
            self._emit(AgentTextEvent(turn=reply.turn, text=segment.text))
        for data in pcm:
            self.pacer.add(segment, data)

    # ------------------------------------------------------------------ the end
    def _finish(self, reply: Reply, *, interrupted: bool, emit_interruption: bool = True) -> None:
        if self.current is not reply:
            return
        self.current = None
        self.pacer.resume()  # a pause belongs to the reply it held
        heard = reply.heard() if interrupted else CITATION.sub("", reply.text).strip()
        reply.metrics.interrupted = interrupted
        reply.metrics.playback_end = self.clock.now()
        reply.metrics.late_frames = self.pacer.stats.late_frames - reply.late_before
        if heard:
            self.conversation.add_assistant(heard)
        if interrupted and emit_interruption:
            self._emit(InterruptionEvent(turn=reply.turn, heard_text=heard))
        elif not interrupted:
            self._emit(AgentSpeechEnded(turn=reply.turn, text=heard))
        self._check_answer(reply, reply.text if not interrupted else heard)
        if reply.kind is ReplyKind.REPLY:
            self._emit(TurnMetricsEvent(metrics=reply.metrics))
        self._on_done(reply, interrupted)

    def _check_answer(self, reply: Reply, answer: str) -> None:
        """The knowledge a turn used, and the grounding check of what was said."""
        ctx = reply.context
        if ctx is None or ctx.used is None or self.context is None:
            return
        grounding = None
        try:
            grounding = self.context.check_answer(answer, ctx)
        except Exception:
            log.warning("answer check failed in session %s", self.session_id, exc_info=True)
        self._emit(KnowledgeEvent(turn=reply.turn, used=ctx.used, grounding=grounding))


async def _fixed(text: str) -> AsyncIterator[str]:
    yield text


async def _produce(
    reply: Reply, source: AsyncIterator[str], chunks: asyncio.Queue[str | None]
) -> None:
    """LLM text into speakable pieces: citations dropped, first clause early."""
    chunker = SpeechChunker()

    def queue(piece: str) -> None:
        spoken = CITATION.sub("", piece).strip()
        if spoken:
            chunks.put_nowait(spoken)

    try:
        async for text in source:
            reply.text += text
            for piece in chunker.push(text):
                queue(piece)
        for piece in chunker.flush():
            queue(piece)
    finally:
        chunks.put_nowait(None)


async def _close(stream: AsyncIterator[Any]) -> None:
    """Close an engine's stream now (stops generation/synthesis), not at collection."""
    if isinstance(stream, AsyncGenerator):
        with contextlib.suppress(Exception):
            await stream.aclose()
