"""The engine interfaces every ASR, LLM, TTS and VAD implementation fills.

They are deliberately small: the real-time policy (when to decode, when to speak,
what to cancel) lives in `callwright.pipeline`; engines only turn one kind of data
into another. Blocking engines run their inference in a thread or process so the
event loop never stalls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Role = Literal["system", "user", "assistant", "tool"]


# --------------------------------------------------------------------------- ASR
@dataclass(slots=True)
class Transcript:
    text: str
    language: str | None = None
    confidence: float | None = None


@runtime_checkable
class ASREngine(Protocol):
    """Batch speech-to-text over an utterance (16 kHz float32 mono).

    Streaming behaviour (partials while the caller speaks, a final at the end of
    speech) is built on top of this by `pipeline.transcriber`, which re-decodes the
    growing utterance. Engines that stream natively can expose `supports_streaming`.
    """

    name: str
    sample_rate: int

    async def transcribe(
        self, audio: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Transcript: ...


# --------------------------------------------------------------------------- LLM
@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as produced by the model


@dataclass(slots=True)
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id:
            msg["tool_call_id"] = self.tool_call_id
        if self.name:
            msg["name"] = self.name
        return msg


@dataclass(slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(slots=True)
class LLMDelta:
    """One streamed piece of a reply: text, finished tool calls, or the finish reason."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None


@runtime_checkable
class LLMEngine(Protocol):
    name: str

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        max_tokens: int = 256,
        temperature: float = 0.3,
        session_key: str | None = None,
    ) -> AsyncIterator[LLMDelta]:
        """Stream a reply. Closing the iterator early must stop generation promptly.

        `session_key` lets engines with a prompt cache keep one per conversation.
        """
        ...


@runtime_checkable
class WarmableLLM(Protocol):
    """An LLM that can read the system prompt before the first call (a prompt cache)."""

    async def warmup(self, system_prompt: str, tools: Sequence[ToolSpec] = ()) -> None: ...


@runtime_checkable
class PrefillLLM(Protocol):
    """An LLM that can read a conversation's prompt ahead of its turn (a prompt cache):
    the turn then reuses it as a cached prefix. Queued like any request."""

    async def prefill(
        self, messages: Sequence[ChatMessage], *, session_key: str | None
    ) -> None: ...


# --------------------------------------------------------------------------- TTS
@runtime_checkable
class TTSEngine(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """Stream PCM16 mono audio at `sample_rate` for `text`; closing it stops synthesis."""
        ...


@dataclass(frozen=True, slots=True)
class TimedAudio:
    """A piece of speech with where its words end: sample offsets into `pcm` (PCM16
    mono at the engine's rate), one per word spoken in it, in order. What the caller
    heard before a barge-in is then counted in real words, not an even spread."""

    pcm: bytes
    word_ends: tuple[int, ...] = ()


@runtime_checkable
class TimedTTSEngine(TTSEngine, Protocol):
    """A TTS engine that also reports word timings (optional; Piper does)."""

    def synthesize_timed(
        self, text: str, *, voice: str | None = None
    ) -> AsyncIterator[TimedAudio]: ...


# --------------------------------------------------------------------------- VAD
class VADStream(Protocol):
    """Per-session detector state (recurrent models keep context between windows)."""

    def probability(self, window: np.ndarray) -> float:
        """Speech probability of one window of `window_samples` float32 samples."""
        ...


@runtime_checkable
class VADEngine(Protocol):
    name: str
    sample_rate: int
    window_samples: int

    def open_stream(self) -> VADStream: ...


@runtime_checkable
class BatchVADEngine(VADEngine, Protocol):
    """A VAD that scores many calls' windows in one inference (one window per stream,
    streams opened by this engine); `pipeline.vad_batch` batches across calls with it."""

    def probabilities(
        self, streams: Sequence[Any], windows: Sequence[np.ndarray]
    ) -> list[float]: ...


# --------------------------------------------------------------------- embeddings
@runtime_checkable
class EmbeddingEngine(Protocol):
    """Text to vectors for retrieval: float32 rows, L2-normalised (dot = cosine).

    Queries and passages are separate calls because asymmetric models (E5, BGE) embed
    them with different prefixes. `model_id` names the vector space: a knowledge base
    records it, and vectors from another space are refused rather than silently
    compared.
    """

    name: str
    model_id: str
    dims: int

    async def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    async def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


# --------------------------------------------------------------------- reranking
@runtime_checkable
class RerankEngine(Protocol):
    """Scores passages by relevance to a query (cross-encoders, rerank APIs): texts in,
    one score per text out, in the order given; higher is more relevant. Ordering and
    thresholds are the caller's business (`knowledge.search`)."""

    name: str

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]: ...


# --------------------------------------------------------------------- lifecycle
@runtime_checkable
class ClosableEngine(Protocol):
    """An engine holding resources (threads, processes, HTTP clients) to release."""

    async def aclose(self) -> None: ...


class EngineError(RuntimeError):
    """An engine failed in a way the session can report (dead provider, bad output)."""
