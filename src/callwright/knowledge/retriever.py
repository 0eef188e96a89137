"""Knowledge in a live call: the `ContextProvider` a session asks before each reply.

It searches the agent's knowledge bases with the caller's final words, puts the best
passages (numbered, short) in front of them for the LLM, remembers results for
repeated questions in this call, and checks the answer against what it supplied.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from callwright.engines.base import RerankEngine, ToolSpec
from callwright.knowledge.grounding import check_grounding
from callwright.knowledge.search import KnowledgeSearch, SearchParams, SearchResult
from callwright.pipeline.context import (
    GroundingResult,
    KnowledgeHit,
    KnowledgeUse,
    KnowledgeVia,
    TurnContext,
)

TOOL_NAME = "search_knowledge"

# Kept short: on a CPU LLM every token here is prefill on the live path. How to use
# the facts is said once, in the agent's (cached) system prompt.
NO_MATCH_NOTE = "Facts: none found for this question."


@dataclass(slots=True, frozen=True)
class RetrievalSettings:
    kb_names: tuple[str, ...]
    access_tags: frozenset[str]
    params: SearchParams
    max_passage_chars: int = 400  # every character is prefill on a CPU LLM
    cite: bool = True
    grounding_check: bool = True
    prefetch_on_partial: bool = False
    as_tool: bool = False  # the LLM calls search_knowledge instead of every turn searching
    cache_size: int = 32


def _normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > limit // 2 else cut.rsplit(" ", 1)[0] + "..."


class KnowledgeRetriever:
    """One per call: the cache is this caller's, the search is shared.

    A `ContextProvider`, and the optional `ToolContextProvider` and
    `PrefetchingContextProvider` too: its settings decide whether they do anything."""

    def __init__(
        self,
        search: KnowledgeSearch,
        tenant_id: str,
        settings: RetrievalSettings,
        *,
        instructions: str = "",
        reranker: RerankEngine | None = None,
    ) -> None:
        self.reranker = reranker
        self.search = search
        self.tenant_id = tenant_id
        self.settings = settings
        self.instructions = instructions  # evidence too: facts from the system prompt
        self._cache: OrderedDict[str, SearchResult] = OrderedDict()
        self._partial: tuple[str, SearchResult] | None = None
        self.hits = 0
        self.misses = 0

    async def lookup(self, text: str) -> tuple[SearchResult, bool]:
        key = _normalise(text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached, True
        self.misses += 1
        result = await self.search.search(
            self.tenant_id,
            self.settings.kb_names,
            text,
            access_tags=self.settings.access_tags,
            params=self.settings.params,
            reranker=self.reranker,
        )
        self._cache[key] = result
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)
        return result, False

    async def prefetch(self, partial: str) -> TurnContext | None:
        """Search on a partial transcript; `for_user_turn` on a final that extends it
        reuses the result, so the passages the LLM may already have read stay the same."""
        if not self.settings.prefetch_on_partial:
            return None
        result, _ = await self.lookup(partial)
        self._partial = (_normalise(partial), result)
        return self._build(partial, result, cached=False, t0=time.perf_counter())

    def _from_partial(self, text: str) -> SearchResult | None:
        if self._partial is None:
            return None
        partial, result = self._partial
        final = _normalise(text)
        # the caller said more after the partial: keep its passages when the partial
        # was most of the question (a confident partial), else search again
        if final.startswith(partial) and len(partial.split()) >= 0.6 * len(final.split()):
            return result
        return None

    def tools(self) -> list[ToolSpec]:
        if not self.settings.as_tool:
            return []
        return [
            ToolSpec(
                name=TOOL_NAME,
                description="Search our documents (services, prices, hours, policies) for "
                "facts that answer the caller's question.",
                parameters={
                    "type": "object",
                    "properties": {"query": {"type": "string", "description": "what to look up"}},
                    "required": ["query"],
                    "additionalProperties": False,
                },
            )
        ]

    async def call_tool(self, name: str, arguments: str) -> TurnContext:
        if name != TOOL_NAME or not self.settings.as_tool:
            raise LookupError(f"no tool {name!r}")
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{TOOL_NAME} arguments are not JSON: {exc}") from None
        query = args.get("query") if isinstance(args, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"{TOOL_NAME} needs a non-empty 'query' string")
        t0 = time.perf_counter()
        result, cached = await self.lookup(query)
        ctx = self._build(query, result, cached=cached, t0=t0, via=KnowledgeVia.TOOL)
        # what the LLM reads back: the facts alone
        return TurnContext(content=ctx.prefix.removesuffix("\n\nCaller: "), used=ctx.used)

    async def for_user_turn(self, text: str) -> TurnContext | None:
        if self.settings.as_tool:
            return None
        t0 = time.perf_counter()
        early = self._from_partial(text)
        self._partial = None
        if early is not None:
            return self._build(text, early, cached=True, t0=t0, from_partial=True)
        result, cached = await self.lookup(text)
        return self._build(text, result, cached=cached, t0=t0)

    def _build(
        self,
        text: str,
        result: SearchResult,
        *,
        cached: bool,
        t0: float,
        from_partial: bool = False,
        via: KnowledgeVia = KnowledgeVia.PREFIX,
    ) -> TurnContext:
        passages = [_clip(h.text, self.settings.max_passage_chars) for h in result.hits]
        if passages:
            lines = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages, start=1))
            cite = " (cite like [1])" if self.settings.cite else ""
            prefix = f"Facts{cite}:\n{lines}\n\nCaller: "
        else:
            prefix = f"{NO_MATCH_NOTE}\n\nCaller: "
        used = KnowledgeUse(
            query=text,
            hits=tuple(
                KnowledgeHit(
                    n=i,
                    chunk_id=h.chunk_id,
                    kb=h.kb_name,
                    source=h.source,
                    headings=tuple(h.headings),
                    score=round(h.score, 6),
                    vector_score=None if h.vector_score is None else round(h.vector_score, 4),
                )
                for i, h in enumerate(result.hits, start=1)
            ),
            passages=tuple(passages),
            kbs=self.settings.kb_names,
            cached=cached,
            from_partial=from_partial,
            dropped=result.dropped,
            timings_ms={
                **({} if cached else result.timings_ms),
                "total_ms": round((time.perf_counter() - t0) * 1000, 2),
            },
            via=via,
        )
        return TurnContext(content=prefix + text, used=used, prefix=prefix)

    def check_answer(self, answer: str, context: TurnContext) -> GroundingResult | None:
        used = context.used
        if not self.settings.grounding_check or not answer.strip() or used is None:
            return None
        grounding = check_grounding(answer, [*used.passages, self.instructions, used.query])
        cited = [h.chunk_id for h in used.hits if h.n in grounding.cited]
        return replace(grounding, cited_chunks=tuple(cited))
