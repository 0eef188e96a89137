"""The call runtime: agent config to pipeline settings, engines with a TTS fallback,
and a call that runs on the zero-cost engines and is recorded in SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from callwright.agents.config import AgentConfig
from callwright.agents.loader import load_agent_file, parse_agent
from callwright.engines import registry
from callwright.engines.registry import EngineHub
from callwright.engines.scripted import ScriptedTTS
from callwright.sessions.model import AudioFormat, SecurityPolicy, SessionInfo
from callwright.sessions.runtime import CallRuntime, load_engines, session_settings
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from callwright.storage.recordings import LocalRecordingStore
from tests.helpers.session_output import Collector
from tests.helpers.system import REPO

ZERO_COST = REPO / "agents" / "zero-cost.yaml"


def agent_with(**fields: Any) -> AgentConfig:
    """The zero-cost agent with some top-level fields replaced (validated again)."""
    data = load_agent_file(ZERO_COST).model_dump(mode="json")
    data.update(fields)
    return parse_agent(data)


# --------------------------------------------------------------- session_settings


def test_every_turn_taking_field_reaches_the_pipeline() -> None:
    # every value differs from its default, so a field left unmapped shows
    agent = agent_with(
        turn_taking={
            "vad_threshold": 0.61,
            "vad_start_secs": 0.12,
            "vad_stop_secs": 0.45,
            "preroll_secs": 0.25,
            "endpointing_delay_secs": 0.15,
            "incomplete_delay_secs": 0.9,
            "speculative_reply": False,
            "partial_interval_secs": 0.7,
            "allow_interruptions": False,
            "interruption_min_secs": 0.8,
            "interruption_min_words": 3,
            "pause_while_deciding": False,
            "backchannel_words": ["Okay", "RIGHT"],
            "idle_reprompt_secs": 5.0,
            "idle_hangup_secs": 11.0,
            "max_call_secs": 300.0,
        },
        greeting="Hello there.",
        prompts={"system": "Be brief.", "reprompt": "Still there?", "goodbye": "Bye now."},
    )
    s = session_settings(agent)
    t = s.turn
    assert (t.vad.threshold, t.vad.start_secs, t.vad.stop_secs) == (0.61, 0.12, 0.45)
    assert t.preroll_secs == 0.25
    assert t.endpointing.complete_delay_secs == 0.15
    assert t.endpointing.incomplete_delay_secs == 0.9
    assert t.speculative is False
    assert t.partial_interval_secs == 0.7
    assert t.allow_interruptions is False
    assert t.interruption_min_secs == 0.8
    assert t.interruption_min_words == 3
    assert t.pause_while_deciding is False
    assert t.backchannel_words == frozenset({"okay", "right"})  # matched lower-cased
    assert (t.idle_reprompt_secs, t.idle_hangup_secs, t.max_call_secs) == (5.0, 11.0, 300.0)
    assert s.greeting == "Hello there."
    assert (s.reprompt_text, s.goodbye_text) == ("Still there?", "Bye now.")
    assert "Be brief." in s.system_prompt
    assert s.max_tokens == agent.llm.max_tokens and s.temperature == agent.llm.temperature


def test_backchannels_default_to_the_built_in_list() -> None:
    default = session_settings(load_agent_file(ZERO_COST)).turn.backchannel_words
    assert {"mhm", "uh-huh"} <= default
    none = session_settings(agent_with(turn_taking={"backchannel_words": []}))
    assert none.turn.backchannel_words == frozenset()  # an empty list is a choice: no backchannels


# ------------------------------------------------------------------ load_engines


class _Unloadable(RuntimeError):
    pass


@pytest.fixture
def failing_tts() -> AsyncIterator[str]:
    """A TTS engine registered under a test name whose factory always fails."""
    name = "test-unloadable"

    @registry.register("tts", name)
    def create(**options: object) -> ScriptedTTS:
        raise _Unloadable("no voice here")

    yield name
    registry._FACTORIES.pop(("tts", name), None)  # the registry has no public unregister


def _engines(tts: str, fallback: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "asr": {"name": "scripted"},
        "llm": {"name": "scripted"},
        "tts": {"name": tts},
        "vad": {"name": "energy"},
        "tts_fallback": fallback,
    }


async def test_tts_fallback_is_used_when_the_main_tts_fails(failing_tts: str) -> None:
    fallback = {"name": "scripted", "options": {"sample_rate": 8000}}
    agent = agent_with(engines=_engines(failing_tts, fallback))
    hub = EngineHub()
    engines = await load_engines(hub, agent)
    assert isinstance(engines.tts, ScriptedTTS) and engines.tts.sample_rate == 8000
    assert engines.asr is not None and engines.llm is not None and engines.vad is not None
    await hub.aclose()


async def test_tts_failure_without_fallback_is_raised(failing_tts: str) -> None:
    agent = agent_with(engines=_engines(failing_tts, None))
    with pytest.raises(_Unloadable, match="no voice here"):
        await load_engines(EngineHub(), agent)


async def test_main_tts_is_used_when_it_loads() -> None:
    fallback = {"name": "scripted", "options": {"sample_rate": 8000}}
    agent = agent_with(engines=_engines("scripted", fallback))
    engines = await load_engines(EngineHub(), agent)
    assert isinstance(engines.tts, ScriptedTTS) and engines.tts.sample_rate == 16000


# ------------------------------------------------------------- CallRuntime.agent


def test_agent_lookup_default_and_unknown() -> None:
    zero = load_agent_file(ZERO_COST)
    other = agent_with(agent_id="other")
    runtime = CallRuntime({"zero-cost": zero, "other": other}, EngineHub(), default_agent="other")
    assert runtime.agent(None) is other
    assert runtime.agent("zero-cost") is zero
    with pytest.raises(KeyError, match=r"unknown agent 'nope'.*other.*zero-cost"):
        runtime.agent("nope")
    first = CallRuntime({"zero-cost": zero, "other": other}, EngineHub())
    assert first.agent(None) is zero  # no default named: the first agent
    with pytest.raises(ValueError, match="no agents"):
        CallRuntime({}, EngineHub())


# ----------------------------------------------------- open_call / close_call


def _info(agent: AgentConfig, **kwargs: Any) -> SessionInfo:
    return SessionInfo(
        tenant_id=agent.tenant_id,
        agent_id=agent.agent_id,
        agent_version=1,
        channel="sim",
        language="en",
        input_format=AudioFormat(),
        output_format=AudioFormat(sample_rate=16000),
        **kwargs,
    )


async def _greet_and_hang_up(runtime: CallRuntime, info: SessionInfo) -> tuple[str, Collector]:
    """Open a call, let the agent say its greeting, hang up, close the call."""
    out = Collector()
    call = await runtime.open_call(info, out)
    assert runtime.active == {info.session_id: call}
    task = asyncio.create_task(call.run())
    await asyncio.wait_for(out.spoke.wait(), 10)
    call.session.end("caller_hangup")
    reason = await asyncio.wait_for(task, 10)
    runtime.close_call(call)
    assert runtime.active == {}
    return reason, out


async def test_a_call_runs_and_storage_gets_its_record(db: Database, tmp_path: Path) -> None:
    agent = agent_with(greeting="Hello, clinic.")
    recordings = LocalRecordingStore(tmp_path / "recordings")
    runtime = CallRuntime({agent.agent_id: agent}, EngineHub(), db=db, recordings=recordings)
    await runtime.start(preload=False)
    info = _info(agent, metadata={"campaign": "test"})
    reason, out = await _greet_and_hang_up(runtime, info)
    await runtime.aclose()

    assert reason == "caller_hangup"
    assert out.audio_bytes > 0
    call = await CallRepository(db).get_call(agent.tenant_id, info.session_id)
    assert call is not None
    assert (call.status, call.end_reason, call.agent_id) == ("ended", reason, "zero-cost")
    assert (call.channel, call.metadata) == ("sim", {"campaign": "test"})
    assert [(t.index, t.role, t.text) for t in call.turns] == [(0, "assistant", "Hello, clinic.")]
    kinds = [e.type for e in await CallRepository(db).list_events(agent.tenant_id, call.id)]
    assert "agent_speech_ended" in kinds and kinds[-1] == "end"
    assert call.recording_uri is not None
    assert len(await recordings.open(call.recording_uri)) > 44  # a WAV with audio in it


async def test_privacy_policy_keeps_transcripts_and_audio_out(db: Database, tmp_path: Path) -> None:
    agent = agent_with(greeting="Hello, clinic.")
    recordings = LocalRecordingStore(tmp_path / "recordings")
    runtime = CallRuntime({agent.agent_id: agent}, EngineHub(), db=db, recordings=recordings)
    await runtime.start(preload=False)
    info = _info(agent, consent="denied", security=SecurityPolicy(store_transcripts=False))
    await _greet_and_hang_up(runtime, info)
    await runtime.aclose()

    call = await CallRepository(db).get_call(agent.tenant_id, info.session_id)
    assert call is not None and call.status == "ended"
    assert call.turns == () and call.recording_uri is None
    kinds = [e.type for e in await CallRepository(db).list_events(agent.tenant_id, call.id)]
    assert kinds[-1] == "end"  # events are still kept: they are the call's timeline


async def test_a_call_runs_without_storage() -> None:
    agent = agent_with(greeting="Hi.")
    runtime = CallRuntime({agent.agent_id: agent}, EngineHub())
    reason, out = await _greet_and_hang_up(runtime, _info(agent))
    assert reason == "caller_hangup" and out.audio_bytes > 0
