"""A simulated caller: speaks WAV files over the real voice WebSocket, like a phone line.

It streams 20 ms frames at real-time pace and keeps sending silence between
utterances. Each utterance is spoken after the agent's reply ends, or `offset`
seconds into the reply (to test barge-in). Everything the agent says is kept on the
caller's timeline, so `agent.wav` lines up with `caller.wav`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from callwright.audio.pcm import SAMPLE_WIDTH
from callwright.audio.resample import resample
from callwright.audio.wav import read_wav, write_wav

RATE = 16000
FRAME_SECS = 0.02
FRAME_BYTES = int(RATE * FRAME_SECS) * SAMPLE_WIDTH


@dataclass(slots=True)
class Utterance:
    path: Path
    offset: float | None = None  # seconds into the agent's reply; None = after it ends

    @classmethod
    def parse(cls, spec: str) -> Utterance:
        """`file.wav` or `file.wav@1.5` (start 1.5 s into the agent's reply)."""
        path, sep, off = spec.rpartition("@")
        if sep and path and _is_number(off):
            return cls(Path(path), float(off))
        return cls(Path(spec))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class CallResult:
    call_id: str | None = None
    agent_id: str | None = None
    end_reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    utterances: list[dict[str, Any]] = field(default_factory=list)

    def turns(self) -> list[dict[str, Any]]:
        """User and agent turns, in order, with their timings."""
        turns: list[dict[str, Any]] = []
        metrics = {e["turn"]: e for e in self.events if e["type"] == "turn_metrics"}
        for e in self.events:
            if e["type"] == "transcript" and e["final"]:
                turns.append({"role": "user", "turn": e["turn"], "text": e["text"], "t": e["t"]})
            elif e["type"] in ("agent_speech_ended", "interruption"):
                interrupted = e["type"] == "interruption"
                m = metrics.get(e["turn"]) if e["turn"] else None
                turns.append(
                    {
                        "role": "assistant",
                        "turn": e["turn"],
                        "text": e["heard_text"] if interrupted else e["text"],
                        "interrupted": interrupted,
                        "t": e["t"],
                        "metrics": {k: v for k, v in m.items() if k.endswith("_ms")} if m else None,
                    }
                )
        return turns


class SimulatedCaller:
    def __init__(
        self,
        url: str,
        utterances: list[Utterance],
        *,
        agent_id: str | None = None,
        reply_timeout: float = 30.0,
        gap_secs: float = 0.4,
        tail_secs: float = 1.5,
        greeting_wait_secs: float = 2.5,
    ) -> None:
        self.url = url
        self.agent_id = agent_id
        self.utterances = utterances
        self.reply_timeout = reply_timeout
        self.gap_secs = gap_secs
        self.tail_secs = tail_secs
        self.greeting_wait_secs = greeting_wait_secs
        self.result = CallResult()
        self._audio: list[bytes] = [self._load(u.path) for u in utterances]
        self._speaking: bytes = b""
        self._pos = 0
        self._sent_frames = 0
        self._caller = bytearray()
        self._agent = bytearray()
        self._t0 = 0.0
        self._event = asyncio.Condition()
        self._agent_speaking = False
        self._done = asyncio.Event()
        self._spoken = asyncio.Event()

    @staticmethod
    def _load(path: Path) -> bytes:
        pcm, rate = read_wav(path)
        return resample(pcm, rate, RATE)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    # ------------------------------------------------------------------ run
    async def run(self) -> CallResult:
        async with connect(self.url, max_size=2**22) as ws:
            start: dict[str, Any] = {
                "type": "start",
                "channel": "sim",
                "audio": {"encoding": "pcm16", "sample_rate": RATE},
            }
            if self.agent_id:
                start["agent_id"] = self.agent_id
            await ws.send(json.dumps(start))
            first = json.loads(await ws.recv())
            if first.get("type") != "started":
                raise RuntimeError(f"the server refused the call: {first}")
            self.result.call_id = first["call_id"]
            self.result.agent_id = first["agent_id"]
            self._t0 = time.monotonic()
            receiver = asyncio.create_task(self._receive(ws))
            sender = asyncio.create_task(self._send(ws))
            try:
                await self._script()
                await ws.send(json.dumps({"type": "stop"}))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), 10)
            finally:
                sender.cancel()
                receiver.cancel()
                for t in (sender, receiver):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        return self.result

    async def _send(self, ws: Any) -> None:
        """One 20 ms frame per tick on an absolute schedule, so pacing never drifts."""
        while True:
            due = self._t0 + self._sent_frames * FRAME_SECS
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._pos < len(self._speaking):
                frame = self._speaking[self._pos : self._pos + FRAME_BYTES]
                frame += bytes(FRAME_BYTES - len(frame))
                self._pos += FRAME_BYTES
                if self._pos >= len(self._speaking):
                    self._spoken.set()
            else:
                frame = bytes(FRAME_BYTES)
            self._caller += frame
            self._sent_frames += 1
            await ws.send(frame)

    async def _receive(self, ws: Any) -> None:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    # place agent audio on the caller's timeline
                    at = max(len(self._caller), len(self._agent))
                    if len(self._agent) < at:
                        self._agent += bytes(at - len(self._agent))
                    self._agent += message
                    continue
                event = json.loads(message)
                event["t"] = round(self._now(), 3)
                self.result.events.append(event)
                kind = event.get("type")
                if kind == "agent_speech_started":
                    self._agent_speaking = True
                elif kind in ("agent_speech_ended", "interruption"):
                    self._agent_speaking = False
                elif kind == "end":
                    self.result.end_reason = event.get("reason")
                    self._done.set()
                async with self._event:
                    self._event.notify_all()
        finally:
            self._done.set()

    async def _wait_for(self, predicate: Any, within: float) -> bool:
        async with self._event:
            try:
                await asyncio.wait_for(self._event.wait_for(predicate), within)
            except TimeoutError:
                return False
        return True

    def _count(self, *types: str) -> int:
        return sum(1 for e in self.result.events if e.get("type") in types)

    async def _speak(self, audio: bytes) -> None:
        self._speaking, self._pos = audio, 0
        self._spoken.clear()
        await self._spoken.wait()

    async def _script(self) -> None:
        # let a greeting play out first
        if await self._wait_for(
            lambda: self._count("agent_speech_started") > 0, self.greeting_wait_secs
        ):
            await self._wait_for(lambda: not self._agent_speaking, self.reply_timeout)
        for utterance, audio in zip(self.utterances, self._audio, strict=True):
            if utterance.offset is None:
                await asyncio.sleep(self.gap_secs)
            replies_before = self._count("agent_speech_started")
            ends_before = self._count("agent_speech_ended", "interruption")
            started = self._now()
            await self._speak(audio)
            record = {
                "file": str(utterance.path),
                "offset": utterance.offset,
                "speech_start": round(started, 3),
                "speech_end": round(self._now(), 3),
            }
            self.result.utterances.append(record)
            # the reply to this utterance
            got = await self._wait_for(
                lambda rb=replies_before: self._count("agent_speech_started") > rb,
                self.reply_timeout,
            )
            if not got:
                continue
            next_up = self.utterances.index(utterance) + 1
            if next_up < len(self.utterances) and self.utterances[next_up].offset is not None:
                await asyncio.sleep(self.utterances[next_up].offset or 0.0)
                continue
            await self._wait_for(
                lambda eb=ends_before: self._count("agent_speech_ended", "interruption") > eb,
                self.reply_timeout,
            )
        await asyncio.sleep(self.tail_secs)

    # ------------------------------------------------------------------ output
    def save(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_wav(out_dir / "caller.wav", bytes(self._caller), RATE)
        write_wav(out_dir / "agent.wav", bytes(self._agent), RATE)
        transcript = {
            "call_id": self.result.call_id,
            "agent_id": self.result.agent_id,
            "end_reason": self.result.end_reason,
            "turns": self.result.turns(),
            "utterances": self.result.utterances,
            "events": self.result.events,
        }
        (out_dir / "transcript.json").write_text(json.dumps(transcript, indent=2))
