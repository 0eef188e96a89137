"""Drives a VoiceSession with synthetic caller audio and records everything it sends.

On the virtual-time loop (`tests/helpers/virtual_time.py`) the timestamps the
`Recorder` keeps are exact: audio "streamed in real time" takes no real time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from callwright.engines.energy_vad import EnergyVADEngine
from callwright.engines.scripted import ScriptedASR, ScriptedLLM, ScriptedTTS
from callwright.pipeline.events import EndReason, SessionEvent
from callwright.pipeline.session import VoiceSession
from callwright.pipeline.settings import SessionEngines, SessionSettings, TurnTaking

RATE = 16000
FRAME = 0.02
REPLY = "We open at nine. On Saturdays we close at one. Is there anything else?"


def tone(secs: float, freq: float = 300.0, amp: float = 6000.0) -> bytes:
    t = np.arange(int(secs * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amp).astype("<i2").tobytes()


def silence(secs: float) -> bytes:
    return bytes(int(secs * RATE) * 2)


@dataclass
class Recorder:
    """A SessionOutput that remembers everything with loop timestamps."""

    events: list[tuple[float, SessionEvent]] = field(default_factory=list)
    audio: list[tuple[float, bytes]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def send_audio(self, pcm: bytes) -> None:
        self.audio.append((self.now(), pcm))

    async def send_event(self, event: SessionEvent) -> None:
        self.events.append((self.now(), event))
        self.changed.set()

    async def clear_audio(self) -> None:
        self.clears.append(self.now())

    def of(self, kind: str) -> list[Any]:
        return [e for _, e in self.events if e.type == kind]

    def first_time(self, kind: str) -> float | None:
        return next((t for t, e in self.events if e.type == kind), None)

    async def wait_for(self, kind: str, within: float = 5.0) -> Any:
        async def poll() -> Any:
            while not self.of(kind):
                self.changed.clear()
                await self.changed.wait()
            return self.of(kind)[0]

        return await asyncio.wait_for(poll(), within)


class Harness:
    """A running session and the caller's side of it."""

    def __init__(self, session: VoiceSession, out: Recorder) -> None:
        self.session = session
        self.out = out
        self.task: asyncio.Task[str] | None = None
        self._sent = 0
        self._t0 = 0.0

    async def start(self) -> None:
        self.task = asyncio.create_task(self.session.run())
        self._t0 = asyncio.get_running_loop().time()

    @property
    def sent_secs(self) -> float:
        """Seconds of caller audio streamed so far (the caller's clock)."""
        return self._sent * FRAME

    async def feed(self, pcm: bytes) -> None:
        """Stream audio in 20 ms frames on an absolute real-time schedule."""
        loop = asyncio.get_running_loop()
        step = int(FRAME * RATE) * 2
        for i in range(0, len(pcm), step):
            due = self._t0 + self._sent * FRAME
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            self.session.push_audio(pcm[i : i + step])
            self._sent += 1

    async def feed_until(self, kind: str, within: float = 5.0) -> None:
        """Stream silence until the session emits `kind`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.out.of(kind):
            if loop.time() > deadline:
                raise AssertionError(
                    f"no {kind!r} event; got {[e.type for _, e in self.out.events]}"
                )
            await self.feed(silence(FRAME))

    async def stop(self) -> str:
        self.session.end(EndReason.CALLER_HANGUP)
        assert self.task is not None
        return await asyncio.wait_for(self.task, 5)


def build_session(
    *,
    asr: Any = None,
    llm: Any = None,
    tts: Any = None,
    greeting: str | None = None,
    context: Any = None,
    **turn: Any,
) -> tuple[VoiceSession, Recorder]:
    """A session on the zero-cost engines and a loudness VAD (tone = speech)."""
    defaults: dict[str, Any] = {
        "idle_reprompt_secs": None,
        "idle_hangup_secs": None,
        "partial_interval_secs": 0.3,
    }
    defaults.update(turn)
    engines = SessionEngines(
        asr=asr or ScriptedASR(text="what time do you open on saturday", words_per_sec=20),
        llm=llm or ScriptedLLM(reply=REPLY),
        tts=tts or ScriptedTTS(sample_rate=16000, chars_per_sec=14),
        vad=EnergyVADEngine(threshold_dbfs=-40),
    )
    settings = SessionSettings(
        system_prompt="You are a test agent.", greeting=greeting, turn=TurnTaking(**defaults)
    )
    out = Recorder()
    session = VoiceSession("test", engines, settings, out, output_rate=16000, context=context)
    return session, out
