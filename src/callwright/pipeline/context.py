"""What a session may add to a caller's words before the LLM sees them.

The pipeline knows nothing of knowledge bases: a `ContextProvider` (the knowledge
layer's retriever, or anything else) turns the caller's final text into the user
message the LLM gets, and afterwards checks the answer against what it supplied.
The session keeps that augmented message in the history, byte for byte, so an LLM
with a prompt cache never re-reads an earlier turn.

The knowledge a turn used and the check of its answer travel up to storage, the API
and the web page as the typed records below (`KnowledgeUse`, `GroundingResult`), so
every layer reads the same fields instead of guessing dictionary keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from callwright.engines.base import ToolSpec


class KnowledgeVia(StrEnum):
    """How the LLM got the passages."""

    PREFIX = "prefix"  # put in front of the caller's words every turn
    TOOL = "tool"  # the LLM asked for them with a tool call


@dataclass(slots=True, frozen=True)
class KnowledgeHit:
    """One passage given to the LLM; `n` is the number it cites as "[n]"."""

    n: int
    chunk_id: int
    kb: str
    source: str
    headings: tuple[str, ...] = ()
    score: float = 0.0
    vector_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "chunk_id": self.chunk_id,
            "kb": self.kb,
            "source": self.source,
            "headings": list(self.headings),
            "score": self.score,
            "vector_score": self.vector_score,
        }


@dataclass(slots=True, frozen=True)
class KnowledgeUse:
    """The knowledge one agent turn was given: kept with the turn, shown to reviewers."""

    query: str
    hits: tuple[KnowledgeHit, ...] = ()
    # the passages as the LLM read them (clipped), in hit order: the grounding evidence
    passages: tuple[str, ...] = ()
    kbs: tuple[str, ...] = ()
    cached: bool = False  # answered from this call's cache
    from_partial: bool = False  # reused the search of a partial transcript
    dropped: int = 0  # candidates below the relevance threshold
    timings_ms: dict[str, float] = field(default_factory=dict)
    via: KnowledgeVia = KnowledgeVia.PREFIX

    @property
    def relevant(self) -> bool:
        return bool(self.hits)

    def merged(self, other: KnowledgeUse) -> KnowledgeUse:
        """Two lookups of one turn (tool calls): the hits and evidence of both."""
        timings = dict(self.timings_ms)
        for key, value in other.timings_ms.items():
            timings[key] = round(timings.get(key, 0.0) + value, 2)
        return KnowledgeUse(
            query=self.query,
            hits=(*self.hits, *other.hits),
            passages=(*self.passages, *other.passages),
            kbs=tuple(dict.fromkeys((*self.kbs, *other.kbs))),
            cached=self.cached and other.cached,
            from_partial=self.from_partial,
            dropped=self.dropped + other.dropped,
            timings_ms=timings,
            via=self.via,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kbs": list(self.kbs),
            "query": self.query,
            "via": self.via.value,
            "relevant": self.relevant,
            "cached": self.cached,
            "from_partial": self.from_partial,
            "dropped": self.dropped,
            "passages": list(self.passages),
            "hits": [h.to_dict() for h in self.hits],
            "timings_ms": dict(self.timings_ms),
        }


@dataclass(slots=True, frozen=True)
class GroundingResult:
    """The check of an answer against what the agent was given; `flagged` marks the
    turn for review (facts found in no evidence)."""

    flagged: bool
    unsupported: tuple[str, ...] = ()  # the facts no evidence supports
    checked: int = 0  # how many facts were checked
    cited: tuple[int, ...] = ()  # passage numbers the answer cited ("[1]")
    cited_chunks: tuple[int, ...] = ()  # the chunks behind those numbers

    def to_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "unsupported": list(self.unsupported),
            "checked": self.checked,
            "cited": list(self.cited),
            "cited_chunks": list(self.cited_chunks),
        }


class CallControl(StrEnum):
    """What a tool may ask of the call itself, carried out after the reply is spoken."""

    END_CALL = "end_call"  # hang up (the agent says goodbye first)


@dataclass(slots=True)
class TurnContext:
    content: str  # the user message (or tool result) as the LLM sees it
    used: KnowledgeUse | None = None  # kept with the turn: the knowledge behind `content`
    # the part of `content` before the caller's words: the same for a partial and its
    # final, so an LLM may read it while the caller is still speaking
    prefix: str = ""
    # for a tool's answer: the tool layer's verdict (ok, not_allowed, timed_out, ...)
    tool_status: str = "ok"
    # for a tool's answer: what the call should do once the reply has been spoken
    control: CallControl | None = None

    def merged(self, other: TurnContext) -> TurnContext:
        """Several tool calls in one turn: the content and the knowledge of all of them."""
        if self.used is None or other.used is None:
            used = self.used or other.used
        else:
            used = self.used.merged(other.used)
        return TurnContext(content=f"{self.content}\n{other.content}", used=used)


class ContextProvider(Protocol):
    async def for_user_turn(self, text: str) -> TurnContext | None:
        """Context for what the caller just said; None adds nothing."""
        ...

    def check_answer(self, answer: str, context: TurnContext) -> GroundingResult | None:
        """After the reply: e.g. a grounding check; a flagged result marks the turn."""
        ...


@runtime_checkable
class ToolContextProvider(Protocol):
    """Optional: context the LLM asks for, as tool calls, instead of being handed it.
    A session checks `isinstance(provider, ToolContextProvider)`."""

    def tools(self) -> Sequence[ToolSpec]: ...

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        """Run one call; `content` goes back to the LLM, `used` is kept with the turn."""
        ...


@runtime_checkable
class PrefetchingContextProvider(Protocol):
    """Optional: context fetched while the caller is still speaking.
    A session checks `isinstance(provider, PrefetchingContextProvider)`."""

    async def prefetch(self, partial: str) -> TurnContext | None:
        """Context for a partial transcript; a final that extends it may reuse it."""
        ...
