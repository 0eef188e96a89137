"""What a voice session is configured with, and the two things it talks to.

Plain dataclasses built from an agent config by `sessions.runtime`; the Protocols are
what a transport (`SessionOutput`) and a recorder (`AudioTap`) must provide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from callwright.engines.base import ASREngine, LLMEngine, TTSEngine, VADEngine
from callwright.pipeline.endpointing import EndOfTurnPolicy, TranscriptEndpointing
from callwright.pipeline.events import SessionEvent
from callwright.pipeline.vad import VadParams

# Said over the agent, these do not interrupt it ("mhm", "yeah", "I see")
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
    # said when a tool has not answered after `tool_filler_secs` and nothing was said
    # yet in the reply; None: never
    tool_filler_text: str = "One moment, let me check that."
    tool_filler_secs: float | None = 1.0


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
