"""Zero-cost engines: scripted ASR, LLM and TTS that do no inference.

They exist for unit tests and for measuring the framework alone (an agent config
that selects them runs on a live server, so an outside load generator sees only
Callwright's own cost). They are never a default for a real agent.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import AsyncIterator, Sequence

import numpy as np

from callwright.engines.base import ChatMessage, LLMDelta, ToolSpec, Transcript
from callwright.engines.registry import register


class ScriptedASR:
    """Hears a fixed line, revealed word by word as the utterance grows.

    An utterance of `secs` seconds yields the first `ceil(secs * words_per_sec)` words,
    so partials grow like a real recogniser's and short noises yield one word.
    `delay_secs` simulates decoding time.
    """

    name = "scripted"
    sample_rate = 16000

    def __init__(
        self,
        text: str = "I would like to book an appointment for next week",
        words_per_sec: float = 2.5,
        delay_secs: float = 0.0,
    ) -> None:
        self.words = text.split()
        self.words_per_sec = words_per_sec
        self.delay_secs = delay_secs

    async def transcribe(
        self, audio: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript:
        if self.delay_secs:
            await asyncio.sleep(self.delay_secs)
        secs = len(audio) / self.sample_rate
        n = max(1, math.ceil(secs * self.words_per_sec)) if secs > 0 else 0
        return Transcript(text=" ".join(self.words[:n]), language=language)


class ScriptedLLM:
    """Streams a canned reply word by word: a template over the last user message."""

    name = "scripted"

    def __init__(
        self,
        reply: str = "You said: {user}. How else can I help?",
        token_delay_secs: float = 0.0,
        first_token_delay_secs: float = 0.0,
    ) -> None:
        self.reply = reply
        self.token_delay_secs = token_delay_secs
        self.first_token_delay_secs = first_token_delay_secs

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 256,
        temperature: float = 0.3,
        session_key: str | None = None,
    ) -> AsyncIterator[LLMDelta]:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = self.reply.format(user=last_user.strip().rstrip(".?!"))
        if self.first_token_delay_secs:
            await asyncio.sleep(self.first_token_delay_secs)
        for token in itertools.islice(re.findall(r"\S+\s*", text), max_tokens):
            yield LLMDelta(text=token)
            await asyncio.sleep(self.token_delay_secs)
        yield LLMDelta(finish_reason="stop")


class ScriptedTTS:
    """Speaks a quiet tone whose length follows the text (about 14 characters a second).

    The tone is precomputed once, so synthesis costs a slice, not a computation.
    """

    name = "scripted"

    def __init__(
        self, sample_rate: int = 16000, chars_per_sec: float = 14.0, chunk_secs: float = 0.5
    ) -> None:
        self.sample_rate = sample_rate
        self.chars_per_sec = chars_per_sec
        self.chunk_secs = chunk_secs
        t = np.arange(int(sample_rate * 60)) / sample_rate
        self._tone = (np.sin(2 * np.pi * 220.0 * t) * 3000).astype("<i2").tobytes()

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        total = int(len(text) / self.chars_per_sec * self.sample_rate) * 2
        total = min(total, len(self._tone))
        step = int(self.chunk_secs * self.sample_rate) * 2
        for start in range(0, total, step):
            yield self._tone[start : min(total, start + step)]
            await asyncio.sleep(0)


@register("asr", "scripted")
def create_asr(**options: object) -> ScriptedASR:
    return ScriptedASR(**options)  # type: ignore[arg-type]


@register("llm", "scripted")
def create_llm(**options: object) -> ScriptedLLM:
    return ScriptedLLM(**options)  # type: ignore[arg-type]


@register("tts", "scripted")
def create_tts(**options: object) -> ScriptedTTS:
    return ScriptedTTS(**options)  # type: ignore[arg-type]
