"""From an agent config and a transport to a running, recorded VoiceSession.

The runtime is the one place that knows both the pipeline and the platform: it
builds pipeline settings from the agent config, takes engines from the shared hub,
and persists the call (turns, events, recording) without ever blocking the audio
path: storage writes go through one writer task for all calls.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from callwright.actions.calendar import register_calendar_tools
from callwright.actions.gateway import ToolAudit, ToolGateway
from callwright.actions.sms import register_sms_tools, sms_provider_from_env, sms_region_from_env
from callwright.actions.tools import DEFAULT_REGISTRY, ToolRegistry
from callwright.agents.checks import check_agents
from callwright.agents.config import AgentConfig
from callwright.engines.base import RerankEngine, WarmableLLM
from callwright.engines.registry import EngineHub
from callwright.knowledge.service import KnowledgeService
from callwright.pipeline.context import ContextProvider
from callwright.pipeline.endpointing import TranscriptEndpointing
from callwright.pipeline.events import EndReason, SessionEvent, TranscriptEvent
from callwright.pipeline.session import VoiceSession
from callwright.pipeline.settings import (
    DEFAULT_BACKCHANNELS,
    SessionEngines,
    SessionOutput,
    SessionSettings,
    TurnTaking,
)
from callwright.pipeline.vad import VadParams
from callwright.sessions.call_context import CallContext
from callwright.sessions.call_record import CallRecord
from callwright.sessions.call_writer import CallWriter
from callwright.sessions.model import SessionInfo
from callwright.storage.agent_configs import AgentConfigRepository
from callwright.storage.calendar import CalendarRepository
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from callwright.storage.recordings import CallRecorder, RecordingStore
from callwright.storage.records import EventInput

log = logging.getLogger(__name__)


def session_settings(agent: AgentConfig) -> SessionSettings:
    t = agent.turn_taking
    return SessionSettings(
        system_prompt=agent.system_prompt(),
        greeting=agent.greeting,
        reprompt_text=agent.prompts.reprompt,
        goodbye_text=agent.prompts.goodbye,
        language=agent.asr_language,
        voice=agent.voice,
        max_tokens=agent.llm.max_tokens,
        temperature=agent.llm.temperature,
        tool_filler_text=agent.prompts.tool_filler,
        tool_filler_secs=agent.tool_policy.filler_after_secs,
        turn=TurnTaking(
            vad=VadParams(
                threshold=t.vad_threshold, start_secs=t.vad_start_secs, stop_secs=t.vad_stop_secs
            ),
            preroll_secs=t.preroll_secs,
            endpointing=TranscriptEndpointing(t.endpointing_delay_secs, t.incomplete_delay_secs),
            speculative=t.speculative_reply,
            partial_interval_secs=t.partial_interval_secs,
            allow_interruptions=t.allow_interruptions,
            interruption_min_secs=t.interruption_min_secs,
            interruption_min_words=t.interruption_min_words,
            pause_while_deciding=t.pause_while_deciding,
            backchannel_words=(
                frozenset(w.lower() for w in t.backchannel_words)
                if t.backchannel_words is not None
                else DEFAULT_BACKCHANNELS
            ),
            idle_reprompt_secs=t.idle_reprompt_secs,
            idle_hangup_secs=t.idle_hangup_secs,
            max_call_secs=t.max_call_secs,
        ),
    )


async def load_engines(hub: EngineHub, agent: AgentConfig) -> SessionEngines:
    e = agent.engines
    tts: Any
    try:
        tts = await hub.get("tts", e.tts.name, e.tts.options)
    except Exception:
        if e.tts_fallback is None:
            raise
        log.warning(
            "TTS engine %r unavailable, using fallback %r",
            e.tts.name,
            e.tts_fallback.name,
            exc_info=True,
        )
        tts = await hub.get("tts", e.tts_fallback.name, e.tts_fallback.options)
    asr, llm, vad = await asyncio.gather(
        hub.get("asr", e.asr.name, e.asr.options),
        hub.get("llm", e.llm.name, e.llm.options),
        hub.get("vad", e.vad.name, e.vad.options),
    )
    return SessionEngines(asr=asr, llm=llm, tts=tts, vad=vad)


class RecordingOutput:
    """Wraps a transport's output: forwards everything, and keeps the call's record."""

    def __init__(self, inner: SessionOutput, call: Call) -> None:
        self.inner = inner
        self.call = call

    async def send_audio(self, pcm: bytes) -> None:
        await self.inner.send_audio(pcm)

    async def clear_audio(self) -> None:
        await self.inner.clear_audio()

    async def send_event(self, event: SessionEvent) -> None:
        self.call.observe(event)
        await self.inner.send_event(event)


class Call:
    """One call: its session info, its VoiceSession, and its record in storage."""

    def __init__(
        self,
        runtime: CallRuntime,
        info: SessionInfo,
        agent: AgentConfig,
        engines: SessionEngines,
        output: SessionOutput,
        reranker: RerankEngine | None = None,
    ) -> None:
        self.runtime = runtime
        self.info = info
        self.agent = agent
        self.recorder = (
            CallRecorder(agent_rate=info.output_format.sample_rate)
            if info.may_record and runtime.recordings is not None
            else None
        )
        self.turn = 0  # the latest caller turn, for the tool audit records
        self.caller_said = ""  # its words: a sensitive tool runs after a clear yes
        self.session = VoiceSession(
            info.session_id,
            engines,
            session_settings(agent),
            RecordingOutput(output, self),
            output_rate=info.output_format.sample_rate,
            tap=self.recorder,
            context=self._context(reranker),
        )
        self.record = CallRecord(store_transcripts=info.security.store_transcripts)
        self.started_at = datetime.now(UTC)

    @property
    def call_id(self) -> str:
        return self.info.session_id

    def _context(self, reranker: RerankEngine | None) -> ContextProvider | None:
        """The agent's knowledge, and its tools behind a policy gateway if it has any."""
        knowledge = self.runtime.knowledge
        retriever = knowledge.retriever(self.agent, reranker) if knowledge else None
        if not self.agent.tools:
            return retriever
        policy = self.agent.tool_policy
        gateway = ToolGateway(
            tenant_id=self.info.tenant_id,
            call_id=self.call_id,
            agent_id=self.agent.agent_id,
            allowed=self.agent.tools,
            audit=self._audit,
            registry=self.runtime.tools,
            max_calls=policy.max_calls,
            max_per_minute=policy.max_per_minute,
            caller_said=lambda: self.caller_said,
        )
        return CallContext(retriever, gateway, turn=lambda: self.turn)

    def _audit(self, record: ToolAudit) -> None:
        """Every tool call, allowed or refused, kept with the call (arguments redacted)."""
        log.info(
            "call %s tool %s: %s (%.0f ms)",
            self.call_id,
            record.tool,
            record.status,
            record.duration_ms,
        )
        writer = self.runtime.writer
        if writer is not None:
            event: EventInput = ("tool_audit", record.to_dict(), record.at)
            writer.add(self.info.tenant_id, self.call_id, turns=[], events=[event])

    def push_audio(self, pcm16k: bytes) -> None:
        self.session.push_audio(pcm16k)

    def observe(self, event: SessionEvent) -> None:
        """Queue what storage keeps of `event`; called on the loop, never awaits."""
        writer = self.runtime.writer
        if writer is None:
            return
        if isinstance(event, TranscriptEvent) and event.final:
            self.turn, self.caller_said = event.turn, event.text
        rows = self.record.observe(event, datetime.now(UTC))
        writer.add(self.info.tenant_id, self.call_id, turns=rows.turns, events=rows.events)

    async def run(self) -> EndReason:
        db = self.runtime.db
        if db is not None:
            await CallRepository(db).create_call(
                tenant_id=self.info.tenant_id,
                call_id=self.call_id,
                agent_id=self.info.agent_id,
                agent_version=self.info.agent_version,
                channel=self.info.channel,
                user_id=self.info.user_id,
                consent=self.info.consent,
                language=self.info.language,
                metadata=dict(self.info.metadata),
            )
        reason = EndReason.ERROR
        status = "failed"
        try:
            reason = await self.session.run()
            status = "ended"
        finally:
            if self.runtime.writer is not None:
                await self.runtime.writer.flush_call(self.info.tenant_id, self.call_id)
            uri = None
            if self.recorder is not None and self.runtime.recordings is not None:
                try:
                    path = await asyncio.to_thread(self.recorder.finish)
                    uri = await self.runtime.recordings.put(self.info.tenant_id, self.call_id, path)
                    self.info.audio_ref = uri
                except Exception:
                    log.exception("could not store the recording of call %s", self.call_id)
            if db is not None:
                await CallRepository(db).finish_call(
                    self.info.tenant_id,
                    self.call_id,
                    status=status,
                    end_reason=reason,
                    recording_uri=uri,
                )
        return reason


class CallRuntime:
    """Process-wide: agents, engines, storage. Transports ask it for calls."""

    def __init__(
        self,
        agents: dict[str, AgentConfig],
        hub: EngineHub,
        *,
        db: Database | None = None,
        recordings: RecordingStore | None = None,
        default_agent: str | None = None,
        knowledge: KnowledgeService | None = None,
        tools: ToolRegistry = DEFAULT_REGISTRY,
    ) -> None:
        if not agents:
            raise ValueError("no agents configured")
        self.agents = agents
        self.hub = hub
        self.db = db
        self.recordings = recordings
        self.knowledge = knowledge
        self.tools = tools
        self.default_agent = default_agent or next(iter(agents))
        self.versions: dict[str, int] = {a: 1 for a in agents}
        self.active: dict[str, Call] = {}
        self.writer = CallWriter(db) if db is not None else None

    async def start(self, preload: bool = True) -> None:
        """Record agent config versions, and load every agent's engines before serving.
        An agent naming an engine or tool this installation lacks is refused here."""
        if self.db is not None:  # the built-in calendar tools need storage: this runtime's
            self.tools = self.tools.copy()  # own registry, the process's stays as it was
            register_calendar_tools(self.tools, CalendarRepository(self.db))
        sms = sms_provider_from_env()
        if sms is not None:  # SMS configured in the environment: this runtime's registry too
            self.tools = self.tools.copy()
            register_sms_tools(self.tools, sms, default_region=sms_region_from_env())
        check_agents(self.agents, self.tools.known())
        if self.db is not None:
            repo = AgentConfigRepository(self.db)
            for agent in self.agents.values():
                await CallRepository(self.db).ensure_tenant(agent.tenant_id, agent.tenant_id)
                self.versions[agent.agent_id] = await repo.save_version(
                    agent.tenant_id, agent.agent_id, agent.model_dump(mode="json")
                )
        if self.knowledge is not None:
            for agent in self.agents.values():
                for problem in await self.knowledge.check_agent(agent):
                    log.warning("%s", problem)
        if preload:
            for agent in self.agents.values():
                if self.knowledge is not None:
                    await self.knowledge.warm(agent)
                engines = await load_engines(self.hub, agent)
                # the first caller should not pay for the system prompt
                if isinstance(engines.llm, WarmableLLM):
                    await engines.llm.warmup(agent.system_prompt())

    def agent(self, agent_id: str | None) -> AgentConfig:
        key = agent_id or self.default_agent
        try:
            return self.agents[key]
        except KeyError:
            raise KeyError(f"unknown agent {key!r}; known: {sorted(self.agents)}") from None

    async def open_call(self, info: SessionInfo, output: SessionOutput) -> Call:
        agent = self.agent(info.agent_id)
        engines = await load_engines(self.hub, agent)
        reranker = await self.knowledge.reranker(agent) if self.knowledge is not None else None
        call = Call(self, info, agent, engines, output, reranker)
        self.active[call.call_id] = call
        return call

    def close_call(self, call: Call) -> None:
        self.active.pop(call.call_id, None)

    async def aclose(self) -> None:
        """Write what calls left queued (each call also flushes its own rows at its end)."""
        if self.writer is not None:
            await self.writer.aclose()
