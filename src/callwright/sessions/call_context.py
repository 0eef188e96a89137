"""What one call's replies draw on: the agent's knowledge and its tools, as the one
context provider the pipeline sees.

The pipeline knows a `ContextProvider` (passages for the caller's turn, the grounding
check) and an optional `ToolContextProvider` (tools the LLM may call); it imports
neither `knowledge/` nor `actions/`. This joins them for a call: knowledge's search
tool (in `mode: tool`) and the agent's action tools are offered together, and each
call goes where its tool lives: knowledge answers its own, every other name goes
through the call's policy gateway (which refuses what the agent may not use).
"""

from __future__ import annotations

from collections.abc import Callable

from callwright.actions.gateway import ToolGateway
from callwright.engines.base import ToolSpec
from callwright.pipeline.context import (
    ContextProvider,
    GroundingResult,
    PrefetchingContextProvider,
    ToolContextProvider,
    TurnContext,
)


class CallContext:
    """Knowledge (optional) and the tool gateway of one call, as one provider."""

    def __init__(
        self,
        knowledge: ContextProvider | None,
        gateway: ToolGateway,
        turn: Callable[[], int],
    ) -> None:
        self.knowledge = knowledge
        self.gateway = gateway
        self._turn = turn  # the caller turn being answered, for the audit records

    async def for_user_turn(self, text: str) -> TurnContext | None:
        if self.knowledge is None:
            return None
        return await self.knowledge.for_user_turn(text)

    def check_answer(self, answer: str, context: TurnContext) -> GroundingResult | None:
        if self.knowledge is None:
            return None
        return self.knowledge.check_answer(answer, context)

    async def prefetch(self, partial: str) -> TurnContext | None:
        if isinstance(self.knowledge, PrefetchingContextProvider):
            return await self.knowledge.prefetch(partial)
        return None

    def _knowledge_tools(self) -> list[ToolSpec]:
        if isinstance(self.knowledge, ToolContextProvider):
            return list(self.knowledge.tools())
        return []

    def tools(self) -> list[ToolSpec]:
        return [*self._knowledge_tools(), *self.gateway.specs()]

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        if isinstance(self.knowledge, ToolContextProvider) and name in {
            t.name for t in self._knowledge_tools()
        }:
            return await self.knowledge.call_tool(name, arguments)
        result = await self.gateway.call(name, arguments, turn=self._turn())
        return TurnContext(
            content=result.content, tool_status=result.status, control=result.control
        )
