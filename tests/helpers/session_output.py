"""A transport's output for runtime tests: keeps the events, counts the audio."""

from __future__ import annotations

import asyncio

from callwright.pipeline.events import SessionEvent


class Collector:
    """A SessionOutput that keeps the events and counts the audio bytes."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []
        self.audio_bytes = 0
        self.spoke = asyncio.Event()  # an agent reply was spoken in full

    async def send_audio(self, pcm: bytes) -> None:
        self.audio_bytes += len(pcm)

    async def clear_audio(self) -> None:
        pass

    async def send_event(self, event: SessionEvent) -> None:
        self.events.append(event)
        if event.type == "agent_speech_ended":
            self.spoke.set()
