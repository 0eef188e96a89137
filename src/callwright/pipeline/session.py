"""One live conversation: caller audio in, agent audio and events out.

The session owns every task it starts (input loop, pacer, event sender, the current
reply) and cancels them all when it ends. Turn-taking decisions run in audio time
(one VAD window = 32 ms of caller audio), so the same audio always leads to the same
decisions whatever the network does; latency metrics use the loop's wall clock.

The flow of a turn:
  VAD START -> transcriber collects the utterance (partials every ~0.6 s)
  VAD PAUSE -> speculative decode of the utterance so far
  VAD STOP  -> that decode is the final; the reply may start speculatively, its audio
               held back until the end of turn is confirmed
  end of turn (stop + policy's extra wait) -> user message committed, audio released
  caller speaks over audible agent audio for long enough, with real words -> barge-in
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from callwright.audio.pcm import Reframer, pcm16_to_float
from callwright.audio.resample import StreamResampler
from callwright.engines.base import (
    ASREngine,
    ChatMessage,
    LLMEngine,
    TimedTTSEngine,
    ToolCall,
    ToolSpec,
    Transcript,
    TTSEngine,
    VADEngine,
)
from callwright.pipeline.chunker import SpeechChunker
from callwright.pipeline.context import ContextProvider, TurnContext
from callwright.pipeline.conversation import Conversation
from callwright.pipeline.endpointing import EndOfTurnPolicy, TranscriptEndpointing
from callwright.pipeline.events import (
    AgentSpeechEnded,
    AgentSpeechStarted,
    AgentTextEvent,
    ErrorEvent,
    InterruptionEvent,
    KnowledgeEvent,
    SessionEndedEvent,
    SessionEvent,
    ToolCallEvent,
    TranscriptEvent,
    TurnMetrics,
    TurnMetricsEvent,
    UserSpeechStarted,
    UserSpeechStopped,
)
from callwright.pipeline.pacer import OutputPacer, PacerStats, Segment
from callwright.pipeline.transcriber import Transcriber
from callwright.pipeline.vad import VadEvent, VadParams, VadSegmenter
from callwright.pipeline.vad_batch import VadBatcher, batcher_for

log = logging.getLogger(__name__)

# "[1]" or "[1, 3]": source markers the LLM may cite; shown in records, never spoken
CITATION = re.compile(r"\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")

DEFAULT_BACKCHANNELS = frozenset(
    {
        "mhm",
        "mm",
        "mmm",
        "hmm",
        "uh-huh",
        "uh",
        "huh",
        "um",
        "yeah",
        "yes",
        "yep",
        "ok",
        "okay",
        "right",
        "sure",
        "aha",
        "ah",
        "oh",
        "alright",
        "got",
        "it",
        "i",
        "see",
    }
)


# --------------------------------------------------------------------- settings
@dataclass(slots=True)
class TurnTaking:
    vad: VadParams = field(default_factory=VadParams)
    preroll_secs: float = 0.3
    endpointing: EndOfTurnPolicy = field(default_factory=TranscriptEndpointing)
    speculative: bool = True  # start the reply at the VAD stop, release audio at end of turn
    partial_interval_secs: float = 1.0
    allow_interruptions: bool = True
    interruption_min_secs: float = 0.5  # caller speech over the agent before it may yield
    interruption_min_words: int = 1  # real (non-backchannel) words needed; 0 = duration only
    # at interruption_min_secs the agent's audio pauses while the words are decoded; a
    # backchannel resumes it where it stopped
    pause_while_deciding: bool = True
    backchannel_words: frozenset[str] = DEFAULT_BACKCHANNELS
    idle_reprompt_secs: float | None = 8.0
    idle_hangup_secs: float | None = 20.0
    max_call_secs: float | None = None


@dataclass(slots=True)
class SessionSettings:
    system_prompt: str
    greeting: str | None = None
    reprompt_text: str = "Are you still there?"
    goodbye_text: str = "It seems you have stepped away. Goodbye!"
    language: str | None = "en"
    voice: str | None = None
    max_tokens: int = 160
    temperature: float = 0.3
    turn: TurnTaking = field(default_factory=TurnTaking)


@dataclass(slots=True)
class SessionEngines:
    asr: ASREngine
    llm: LLMEngine
    tts: TTSEngine
    vad: VADEngine


class SessionOutput(Protocol):
    """Where a session's audio and events go: a transport's serializer."""

    async def send_audio(self, pcm: bytes) -> None: ...

    async def send_event(self, event: SessionEvent) -> None: ...

    async def clear_audio(self) -> None:
        """Drop agent audio the peer has buffered but not played (barge-in)."""
        ...


class AudioTap(Protocol):
    """Receives both sides of the call as they happen (recordings)."""

    def caller(self, pcm16k: bytes) -> None: ...

    def agent(self, pcm: bytes) -> None: ...


# --------------------------------------------------------------------- state
@dataclass(slots=True)
class _Utterance:
    start_time: float
    over_agent: bool  # began while agent audio was audible: a barge-in candidate
    decided: bool = False  # barge-in decided (interrupt happened)
    backchannel: bool = False  # only backchannel words so far
    evaluating: bool = False
    paused_agent: bool = False  # the agent's audio is held while this speech is decided


@dataclass(slots=True)
class _EndOfTurn:
    stop_time: float
    speech_end_wall: float | None
    vad_stop_wall: float
    final: asyncio.Task[Transcript]
    transcript: str | None = None
    deadline: float | None = None
    asr_final_wall: float | None = None


@dataclass(eq=False, slots=True)
class _Reply:
    turn: int
    metrics: TurnMetrics
    gate: asyncio.Event
    task: asyncio.Task[None] | None = None
    segments: list[Segment] = field(default_factory=list)
    text: str = ""
    kind: str = "reply"  # reply | greeting | reprompt | goodbye
    audible: bool = False
    late_before: int = 0  # the pacer's late-frame count when this reply started
    context: TurnContext | None = None  # what the LLM got with the caller's words


class VoiceSession:
    WINDOW_RATE = 16000

    def __init__(
        self,
        session_id: str,
        engines: SessionEngines,
        settings: SessionSettings,
        output: SessionOutput,
        *,
        output_rate: int,
        tap: AudioTap | None = None,
        context: ContextProvider | None = None,
    ) -> None:
        self.session_id = session_id
        self.context = context
        self.engines = engines
        self.settings = settings
        self.turning = settings.turn
        self.output = output
        self.output_rate = output_rate
        self.tap = tap
        self.conversation = Conversation(settings.system_prompt)
        self.turn_metrics: list[TurnMetrics] = []
        self.end_reason: str | None = None

        vad = engines.vad
        if vad.sample_rate != self.WINDOW_RATE:
            raise ValueError("the pipeline runs its VAD at 16 kHz")
        self._window_samples = vad.window_samples
        self._window_secs = vad.window_samples / vad.sample_rate
        self._vad_stream = vad.open_stream()
        self._segmenter = VadSegmenter(self.turning.vad, self._window_secs)
        self._reframer = Reframer(self._window_samples)
        self._preroll: deque[np.ndarray] = deque(
            maxlen=max(1, round(self.turning.preroll_secs / self._window_secs))
        )
        self._transcriber = Transcriber(
            engines.asr,
            language=settings.language,
            partial_interval_secs=self.turning.partial_interval_secs,
        )

        self._early: list[tuple[bytes, float | None]] = []  # audio pushed before run()
        self._running = False
        self._ended = asyncio.Event()
        self._vad_batcher: VadBatcher | None = None
        self._events: asyncio.Queue[SessionEvent | None] = asyncio.Queue()
        self._pacer: OutputPacer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

        self._window_index = 0
        self._audio_time = 0.0
        self._last_voiced_arrival: float | None = None
        self._utterance: _Utterance | None = None
        self._eot: _EndOfTurn | None = None
        self._pause_decode: asyncio.Task[Transcript] | None = None
        self._prefetching: asyncio.Task[None] | None = None
        self._reply: _Reply | None = None
        self._turn = 0
        self._idle_anchor: float | None = None
        self._reprompted = False
        self._ending = False

    # ================================================================= public API
    def push_audio(self, pcm16k: bytes, arrival: float | None = None) -> None:
        """Caller audio, PCM16 mono at 16 kHz, any chunk size; never blocks.

        It is processed right here, on the caller's task: VAD and turn-taking cost
        ~0.1 ms a window, less than a hop through a queue to another task (profiled
        at 100 calls, the queue hop cost more than the VAD's Python side).
        """
        if not self._running:
            if not self._ended.is_set():
                self._early.append((pcm16k, arrival))
            return
        try:
            self._process(pcm16k, self._now() if arrival is None else arrival)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        log.error("session %s failed on caller audio", self.session_id, exc_info=exc)
        self._emit(ErrorEvent(code="internal_error", message=f"{type(exc).__name__}: {exc}"))
        self.end("error")

    def end(self, reason: str = "caller_hangup") -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self._running = False
        self._ended.set()

    @property
    def pacer_stats(self) -> PacerStats | None:
        return self._pacer.stats if self._pacer else None

    async def run(self) -> str:
        """Run until the caller hangs up or the agent ends the call; return the reason."""
        self._loop = asyncio.get_running_loop()
        self._vad_batcher = batcher_for(self.engines.vad)
        self._pacer = OutputPacer(self.output_rate, self.output.send_audio, on_frame=self._on_frame)
        self._spawn(self._pacer.run(), "pacer")
        sender = asyncio.create_task(self._send_events(), name=f"{self.session_id}:events")
        try:
            if self.settings.greeting:
                self._say(self.settings.greeting, kind="greeting")
            else:
                self._idle_anchor = 0.0
            self._running = not self._ended.is_set()
            early, self._early = self._early, []
            for pcm, arrival in early:
                self.push_audio(pcm, arrival)
            await self._ended.wait()
        finally:
            self._running = False
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._events.put_nowait(SessionEndedEvent(reason=self.end_reason or "ended"))
            self._events.put_nowait(None)
            with contextlib.suppress(Exception):
                await sender
        return self.end_reason or "ended"

    # ================================================================= plumbing
    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(f"{self.session_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _emit(self, event: SessionEvent) -> None:
        self._events.put_nowait(event)

    async def _send_events(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            try:
                await self.output.send_event(event)
            except Exception:  # a dead peer must not kill the session's own cleanup
                log.debug("event send failed", exc_info=True)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # ================================================================= input side
    def _process(self, pcm: bytes, arrival: float) -> None:
        if self.tap is not None:
            self.tap.caller(pcm)
        for window in self._reframer.push(pcm):
            self._on_window(window, arrival)

    def _on_window(self, window: bytes, arrival: float) -> None:
        samples = pcm16_to_float(window)
        if self._vad_batcher is not None:
            self._vad_batcher.submit(
                self._vad_stream, samples, lambda p: self._after_vad(samples, p, arrival)
            )
        else:
            self._after_vad(samples, self._vad_stream.probability(samples), arrival)

    def _after_vad(self, samples: np.ndarray, prob: float, arrival: float) -> None:
        if not self._running:
            return
        try:
            self._decide(samples, prob, arrival)
        except Exception as exc:
            self._fail(exc)

    def _decide(self, samples: np.ndarray, prob: float, arrival: float) -> None:
        index = self._window_index
        self._window_index += 1
        self._audio_time = self._window_index * self._window_secs
        if self._transcriber.active:
            self._transcriber.push(samples)
        else:
            self._preroll.append(samples)
        event = self._segmenter.process(index, prob)
        if self._segmenter.last_voiced_index == index:
            self._last_voiced_arrival = arrival
        if event is VadEvent.START:
            self._on_speech_start()
        elif event is VadEvent.PAUSE:
            self._on_pause()
        elif event is VadEvent.STOP:
            self._on_speech_stop()
        if self._segmenter.speaking and self._utterance is not None:
            self._while_speaking()
        self._check_timers()

    # -- speech start / pause / stop
    def _on_speech_start(self) -> None:
        self._idle_anchor = None
        self._reprompted = False
        self._emit(UserSpeechStarted())
        agent_audible = self._agent_audible()
        if self._eot is not None:
            # the caller went on after a stop: same utterance, drop the speculative reply
            self._eot = None
            self._cancel_unheard_reply()
            if self._preroll:
                self._transcriber.push(np.concatenate(self._preroll))
            self._preroll.clear()
            self._transcriber.active = True
            return
        if not agent_audible:
            self._cancel_unheard_reply()
        preroll = np.concatenate(self._preroll) if self._preroll else None
        self._preroll.clear()
        self._transcriber.start(preroll)
        self._utterance = _Utterance(
            start_time=self._audio_time,
            over_agent=agent_audible and self.turning.allow_interruptions,
        )
        if agent_audible and not self.turning.allow_interruptions:
            self._utterance.backchannel = True  # caller talks over an agent that won't yield

    def _on_pause(self) -> None:
        utt = self._utterance
        if utt is None or (utt.over_agent and not utt.decided):
            return
        if self._pause_decode is not None and not self._pause_decode.done():
            return  # one speculative decode in flight is enough
        # speculative final: queued behind a partial decode in flight if there is one,
        # which still beats waiting for the VAD stop to start it
        self._pause_decode = self._transcriber.decode()

    def _on_speech_stop(self) -> None:
        self._emit(UserSpeechStopped())
        utt = self._utterance
        now = self._now()
        if utt is None:
            return
        if (utt.over_agent and not utt.decided) or utt.backchannel:
            # noise, a cough or "mhm" over the agent: the agent carries on
            self._resume_agent(utt)
            self._utterance = None
            self._transcriber.reset()
            self._refresh_idle_anchor()
            return
        speech_end_samples = self._transcriber.samples - round(
            self.turning.vad.stop_secs * self.WINDOW_RATE
        )
        final = self._transcriber.final_task(max(0, speech_end_samples))
        self._transcriber.active = False
        eot = _EndOfTurn(
            stop_time=self._audio_time,
            speech_end_wall=self._last_voiced_arrival,
            vad_stop_wall=now,
            final=final,
        )
        self._eot = eot
        final.add_done_callback(lambda t, eot=eot: self._on_final(eot, t))  # type: ignore[misc]

    def _on_final(self, eot: _EndOfTurn, task: asyncio.Task[Transcript]) -> None:
        if self._eot is not eot or task.cancelled():
            return
        if task.exception() is not None:
            self._emit(ErrorEvent(code="asr_failed", message=str(task.exception())))
            self._eot = None
            self._utterance = None
            self._transcriber.reset()
            return
        text = task.result().text.strip()
        eot.transcript = text
        eot.asr_final_wall = self._now()
        eot.deadline = eot.stop_time + self.turning.endpointing.extra_wait_secs(text)
        if not text:
            return
        if self.turning.speculative and self._reply is None and eot.deadline > self._audio_time:
            metrics = self._new_metrics(eot, speculative=True)
            messages = [*self.conversation.for_llm(), ChatMessage(role="user", content=text)]
            self._start_reply(self._turn + 1, metrics, messages, gate_open=False)
        self._check_timers()

    def _while_speaking(self) -> None:
        utt = self._utterance
        assert utt is not None
        if (
            self.turning.pause_while_deciding
            and self.turning.interruption_min_words > 0
            and utt.over_agent
            and not utt.decided
            and not utt.paused_agent
            and not utt.backchannel
            and self._audio_time - utt.start_time >= self.turning.interruption_min_secs
            and self._pacer is not None
            and self._reply is not None
        ):
            # long enough to be an interruption: fall silent now, let the words decide
            utt.paused_agent = True
            self._pacer.pause()
        if (
            self._transcriber.active
            and not self._transcriber.busy
            and (
                self._transcriber.wants_partial()
                or (
                    utt.over_agent
                    and not utt.decided
                    and not utt.evaluating
                    and self._audio_time - utt.start_time >= self.turning.interruption_min_secs
                )
            )
        ):
            self._decode_partial(utt)

    def _decode_partial(self, utt: _Utterance) -> None:
        needs_decision = (
            utt.over_agent
            and not utt.decided
            and (self._audio_time - utt.start_time >= self.turning.interruption_min_secs)
        )
        if needs_decision and self.turning.interruption_min_words <= 0:
            self._interrupt()
            return
        utt.evaluating = needs_decision
        task = self._transcriber.decode()

        def done(t: asyncio.Task[Transcript]) -> None:
            utt.evaluating = False
            if t.cancelled() or t.exception() is not None or self._utterance is not utt:
                self._resume_agent(utt)
                return
            text = t.result().text.strip()
            if text and not utt.backchannel:
                self._emit(TranscriptEvent(turn=self._turn + 1, text=text, final=False))
                if not utt.over_agent or utt.decided:
                    self._prefetch_context(text)
            if (
                utt.over_agent
                and not utt.decided
                and (self._audio_time - utt.start_time >= self.turning.interruption_min_secs)
            ):
                words = [w.strip(".,!?;:").lower() for w in text.split()]
                real = [w for w in words if w and w not in self.turning.backchannel_words]
                if len(real) >= self.turning.interruption_min_words:
                    utt.backchannel = False
                    self._interrupt()
                elif words:  # only backchannel words: the agent plays on
                    utt.backchannel = True
                    self._resume_agent(utt)
                # nothing recognised yet: still undecided (and paused); the next decode
                # decides, and speech that stops undecided resumes the agent

        task.add_done_callback(done)

    def _resume_agent(self, utt: _Utterance) -> None:
        """The speech over the agent was not an interruption: play on from where it paused."""
        if utt.paused_agent and not utt.decided:
            utt.paused_agent = False
            if self._pacer is not None:
                self._pacer.resume()

    def _prefetch_context(self, partial: str) -> None:
        """While the caller speaks: fetch context for the partial, and let the LLM read
        it (history + passages) so the end of turn leaves only the caller's words to
        prefill. On a CPU LLM the passages are most of a turn's prompt (~1.5 s for two)."""
        prefetch = getattr(self.context, "prefetch", None)
        prefill = getattr(self.engines.llm, "prefill", None)
        if prefetch is None or self._prefetching is not None:
            return

        async def run() -> None:
            try:
                ctx = await prefetch(partial)
                if ctx is None or not ctx.prefix or prefill is None or self._reply is not None:
                    return
                messages = [
                    *self.conversation.for_llm(),
                    ChatMessage(role="user", content=ctx.prefix),
                ]
                await prefill(messages, session_key=self.session_id)
            except Exception:  # only a head start: the turn itself does the real work
                log.debug("context prefetch failed in session %s", self.session_id, exc_info=True)
            finally:
                self._prefetching = None

        self._prefetching = self._spawn(run(), "prefetch")

    # -- timers (audio time)
    def _check_timers(self) -> None:
        eot = self._eot
        if eot is not None and eot.deadline is not None and self._audio_time >= eot.deadline:
            self._commit_turn(eot)
        t = self.turning
        if t.max_call_secs is not None and self._audio_time >= t.max_call_secs and not self._ending:
            self._ending = True
            self.end_reason = "max_duration"
            self._say(self.settings.goodbye_text, kind="goodbye")
        if self._idle_anchor is None or self._reply is not None or self._ending:
            return
        idle = self._audio_time - self._idle_anchor
        if t.idle_hangup_secs is not None and idle >= t.idle_hangup_secs:
            self._ending = True
            self.end_reason = "idle_timeout"
            self._say(self.settings.goodbye_text, kind="goodbye")
        elif (
            t.idle_reprompt_secs is not None
            and idle >= t.idle_reprompt_secs
            and not self._reprompted
        ):
            self._reprompted = True
            self._say(self.settings.reprompt_text, kind="reprompt")

    def _refresh_idle_anchor(self) -> None:
        idle = self._reply is None and self._utterance is None and self._eot is None
        if idle and self._idle_anchor is None:
            self._idle_anchor = self._audio_time

    # -- commit
    def _commit_turn(self, eot: _EndOfTurn) -> None:
        self._eot = None
        self._utterance = None
        text = eot.transcript or ""
        self._transcriber.reset()
        if not text:
            self._refresh_idle_anchor()
            return
        self._turn += 1
        self.conversation.add_user(text)
        self._emit(TranscriptEvent(turn=self._turn, text=text, final=True))
        reply = self._reply
        now = self._now()
        if reply is not None and reply.kind == "reply" and not reply.gate.is_set():
            reply.metrics.end_of_turn = now
            reply.gate.set()
            return
        metrics = self._new_metrics(eot, speculative=False)
        metrics.end_of_turn = now
        self._start_reply(self._turn, metrics, self.conversation.for_llm(), gate_open=True)

    def _new_metrics(self, eot: _EndOfTurn, *, speculative: bool) -> TurnMetrics:
        m = TurnMetrics(
            turn=self._turn + (1 if speculative else 0),
            speech_end=eot.speech_end_wall,
            vad_stop=eot.vad_stop_wall,
            asr_final=eot.asr_final_wall,
            speculative=speculative,
        )
        return m

    # ================================================================= agent side
    def _agent_audible(self) -> bool:
        reply = self._reply
        return (
            reply is not None
            and reply.gate.is_set()
            and (reply.audible or bool(self._pacer and self._pacer.active))
        )

    def _cancel_unheard_reply(self) -> None:
        reply = self._reply
        if reply is not None and not reply.audible and reply.kind == "reply":
            if reply.task is not None:
                reply.task.cancel()
            if self._pacer is not None:
                self._pacer.interrupt()
            self._reply = None

    async def _with_context(self, reply: _Reply, messages: list[ChatMessage]) -> None:
        """Let the context provider augment the caller's message (retrieval)."""
        if self.context is None or not messages or messages[-1].role != "user":
            return
        reply.metrics.retrieval_start = self._now()
        try:
            ctx = await self.context.for_user_turn(messages[-1].content)
        except Exception as exc:  # a dead knowledge store must not silence the agent
            log.warning("context provider failed in session %s", self.session_id, exc_info=True)
            self._emit(ErrorEvent(code="context_failed", message=f"{type(exc).__name__}: {exc}"))
            ctx = None
        reply.metrics.retrieval_done = self._now()
        if ctx is None:
            return
        reply.context = ctx
        messages[-1] = ChatMessage(role="user", content=ctx.content)

    MAX_TOOL_ROUNDS = 3

    async def _llm_text(self, reply: _Reply, messages: list[ChatMessage]) -> AsyncIterator[str]:
        await self._with_context(reply, messages)
        tools: Sequence[ToolSpec] = ()
        tools_of = getattr(self.context, "tools", None)
        if tools_of is not None:
            tools = tools_of()
        for round_ in range(self.MAX_TOOL_ROUNDS + 1):
            calls: list[ToolCall] = []
            # the last round offers no tools: the LLM has to speak
            offered = tools if round_ < self.MAX_TOOL_ROUNDS else ()
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
                        reply.metrics.llm_first_token = self._now()
                    for call in delta.tool_calls:
                        calls.append(call)
                        self._emit(
                            ToolCallEvent(turn=reply.turn, name=call.name, arguments=call.arguments)
                        )
                    if delta.text:
                        yield delta.text
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            if not calls or not offered:
                return
            # the LLM asked for knowledge: answer its calls, then let it speak
            messages.append(ChatMessage(role="assistant", content="", tool_calls=calls))
            for call in calls:
                messages.append(await self._run_tool(reply, call))
            reply.metrics.llm_first_token = None  # the spoken answer's first token counts

    async def _run_tool(self, reply: _Reply, call: ToolCall) -> ChatMessage:
        run = getattr(self.context, "call_tool", None)
        reply.metrics.retrieval_start = self._now()
        try:
            if run is None:
                raise LookupError(f"no tool {call.name!r}")
            ctx: TurnContext = await run(call.name, call.arguments)
        except Exception as exc:  # the LLM hears the failure and can say so
            log.warning("tool %s failed in session %s", call.name, self.session_id, exc_info=True)
            ctx = TurnContext(content=f"error: {type(exc).__name__}: {exc}")
        reply.metrics.retrieval_done = self._now()
        if ctx.record:
            reply.context = ctx if reply.context is None else _merged(reply.context, ctx)
        return ChatMessage(role="tool", content=ctx.content, tool_call_id=call.id, name=call.name)

    async def _fixed_text(self, text: str) -> AsyncIterator[str]:
        yield text

    def _say(self, text: str, *, kind: str) -> None:
        if self._reply is not None:
            self._interrupt(record=False)
        metrics = TurnMetrics(turn=self._turn)
        self._start_reply(self._turn, metrics, self._fixed_text(text), gate_open=True, kind=kind)

    def _start_reply(
        self,
        turn: int,
        metrics: TurnMetrics,
        source: AsyncIterator[str] | list[ChatMessage],
        *,
        gate_open: bool,
        kind: str = "reply",
    ) -> None:
        """Start a reply spoken from `source`: fixed text, or the LLM on these messages."""
        gate = asyncio.Event()
        if gate_open:
            gate.set()
        reply = _Reply(turn=turn, metrics=metrics, gate=gate, kind=kind)
        if isinstance(source, list):
            source = self._llm_text(reply, source)
        reply.late_before = self._pacer.stats.late_frames if self._pacer else 0
        self._reply = reply
        if kind != "reprompt":
            self._idle_anchor = None
        reply.task = self._spawn(self._run_reply(reply, source), f"reply-{turn}")

    async def _run_reply(self, reply: _Reply, source: AsyncIterator[str]) -> None:
        chunks: asyncio.Queue[str | None] = asyncio.Queue()
        chunker = SpeechChunker()

        async def produce() -> None:
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

        producer = asyncio.ensure_future(produce())
        assert self._pacer is not None
        resampler = (
            StreamResampler(self.engines.tts.sample_rate, self.output_rate)
            if self.engines.tts.sample_rate != self.output_rate
            else None
        )
        try:
            while (piece := await chunks.get()) is not None:
                segment = self._pacer.begin_segment(piece, reply.turn)
                held: list[bytes] = []
                seg_samples = 0  # output samples of this segment so far
                async for pcm, word_ends in self._speak(piece):
                    if reply.metrics.tts_first_audio is None:
                        reply.metrics.tts_first_audio = self._now()
                    out = resampler.process(pcm) if resampler else pcm
                    if word_ends:
                        ratio = self.output_rate / self.engines.tts.sample_rate
                        segment.word_end_frames.extend(
                            (seg_samples + e * ratio) / self._pacer.frame_samples for e in word_ends
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
                self._pacer.end_segment(segment)
            await producer  # surfaces LLM errors
            for segment in reply.segments:
                await segment.done.wait()
        except asyncio.CancelledError:
            producer.cancel()
            raise
        except Exception as exc:
            producer.cancel()
            log.exception("reply failed in session %s", self.session_id)
            self._emit(ErrorEvent(code="reply_failed", message=f"{type(exc).__name__}: {exc}"))
            # the caller heard what was played; the history keeps only that
            self._finish_reply(reply, interrupted=True, emit_interruption=False)
            return
        self._finish_reply(reply, interrupted=False)

    async def _speak(self, text: str) -> AsyncIterator[tuple[bytes, tuple[int, ...]]]:
        """TTS audio with word end offsets, where the engine reports them. The engine's
        stream is closed as soon as this one is (barge-in), not when it is collected."""
        tts = self.engines.tts
        voice = self.settings.voice
        timed = isinstance(tts, TimedTTSEngine)
        stream: AsyncIterator[Any] = (
            tts.synthesize_timed(text, voice=voice)
            if isinstance(tts, TimedTTSEngine)
            else tts.synthesize(text, voice=voice)
        )
        try:
            async for piece in stream:
                yield (piece.pcm, piece.word_ends) if timed else (piece, ())
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    def _release(self, reply: _Reply, segment: Segment, pcm: list[bytes]) -> None:
        assert self._pacer is not None
        if segment not in reply.segments:
            reply.segments.append(segment)
            self._emit(AgentTextEvent(turn=reply.turn, text=segment.text))
        for data in pcm:
            self._pacer.add(segment, data)

    def _on_frame(self, frame: bytes, segment: Segment) -> None:
        reply = self._reply
        if self.tap is not None:
            self.tap.agent(frame)
        if reply is not None and segment in reply.segments and not reply.audible:
            reply.audible = True
            reply.metrics.first_audio_out = self._now()
            self._emit(AgentSpeechStarted(turn=reply.turn))

    def _heard(self, reply: _Reply) -> str:
        return " ".join(t for t in (s.heard_text() for s in reply.segments) if t)

    def _interrupt(self, record: bool = True) -> None:
        reply = self._reply
        if reply is None:
            if self._pacer is not None:
                self._pacer.resume()  # a pause for a reply that has since ended
            return
        if self._pacer is not None:
            self._pacer.interrupt()
        if reply.task is not None:
            reply.task.cancel()
        if self._utterance is not None:
            self._utterance.decided = True
        self._finish_reply(reply, interrupted=True, emit_interruption=record)
        self._spawn(self.output.clear_audio(), "clear")

    def _finish_reply(
        self, reply: _Reply, *, interrupted: bool, emit_interruption: bool = True
    ) -> None:
        if self._reply is not reply:
            return
        self._reply = None
        if self._pacer is not None:
            self._pacer.resume()  # a pause belongs to the reply it held
        heard = CITATION.sub("", reply.text).strip() if not interrupted else self._heard(reply)
        reply.metrics.interrupted = interrupted
        reply.metrics.playback_end = self._now()
        if self._pacer is not None:
            reply.metrics.late_frames = self._pacer.stats.late_frames - reply.late_before
        if heard:
            self.conversation.add_assistant(heard)
        if interrupted and emit_interruption:
            self._emit(InterruptionEvent(turn=reply.turn, heard_text=heard))
        elif not interrupted:
            self._emit(AgentSpeechEnded(turn=reply.turn, text=heard))
        if reply.context is not None and self.context is not None:
            grounding = None
            try:
                grounding = self.context.check_answer(
                    reply.text if not interrupted else heard, reply.context
                )
            except Exception:
                log.warning("answer check failed in session %s", self.session_id, exc_info=True)
            self._emit(
                KnowledgeEvent(turn=reply.turn, used=reply.context.record, grounding=grounding)
            )
        if reply.kind == "reply":
            self.turn_metrics.append(reply.metrics)
            self._emit(TurnMetricsEvent(metrics=reply.metrics))
        if reply.kind == "goodbye" or (self._ending and reply.kind != "reprompt"):
            self.end(self.end_reason or "agent_hangup")
            return
        utt = self._utterance
        if not interrupted and utt is not None and utt.over_agent and not utt.decided:
            # the caller started over the end of the reply and is still talking: the agent
            # has finished, so this is simply the caller's turn now
            utt.over_agent = False
            utt.backchannel = False
        if reply.kind != "reprompt":
            self._idle_anchor = None
        self._refresh_idle_anchor()


def _merged(first: TurnContext, more: TurnContext) -> TurnContext:
    """Several tool calls in one turn: the record and the evidence of all of them."""
    record: dict[str, Any] = dict(first.record)
    for key, value in more.record.items():
        if isinstance(value, list) and isinstance(record.get(key), list):
            record[key] = [*record[key], *value]
        else:
            record.setdefault(key, value)
    return TurnContext(content=f"{first.content}\n{more.content}", record=record)
