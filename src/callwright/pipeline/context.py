"""What a session may add to a caller's words before the LLM sees them.

The pipeline knows nothing of knowledge bases: a `ContextProvider` (the knowledge
layer's retriever, or anything else) turns the caller's final text into the user
message the LLM gets, and afterwards checks the answer against what it supplied.
The session keeps that augmented message in the history, byte for byte, so an LLM
with a prompt cache never re-reads an earlier turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from callwright.engines.base import ToolSpec


@dataclass(slots=True)
class TurnContext:
    content: str  # the user message as the LLM sees it
    record: dict[str, Any] = field(default_factory=dict)  # kept with the turn (sources used)
    # the part of `content` before the caller's words: the same for a partial and its
    # final, so an LLM may read it while the caller is still speaking
    prefix: str = ""


class ContextProvider(Protocol):
    async def for_user_turn(self, text: str) -> TurnContext | None:
        """Context for what the caller just said; None adds nothing."""
        ...

    def check_answer(self, answer: str, context: TurnContext) -> dict[str, Any] | None:
        """After the reply: e.g. a grounding check. `{"flagged": True, ...}` marks the turn."""
        ...


@runtime_checkable
class ToolContextProvider(ContextProvider, Protocol):
    """Context the LLM asks for, as tool calls, instead of being handed it."""

    def tools(self) -> Sequence[ToolSpec]: ...

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        """Run one call; `content` goes back to the LLM, `record` is kept with the turn."""
        ...


@runtime_checkable
class PrefetchingContextProvider(ContextProvider, Protocol):
    async def prefetch(self, partial: str) -> TurnContext | None:
        """Context for a partial transcript; a final that extends it may reuse it."""
        ...
