"""Fusion, thresholds and the per-call retriever."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from callwright.engines.base import EngineError, RerankEngine
from callwright.engines.registry import EngineHub
from callwright.knowledge.retriever import NO_MATCH_NOTE, KnowledgeRetriever, RetrievalSettings
from callwright.knowledge.search import SearchParams, rerank, rrf_fuse
from callwright.knowledge.service import KnowledgeService
from callwright.knowledge.types import ChunkHit, KnowledgeBaseNotFound
from callwright.pipeline.context import (
    KnowledgeVia,
    PrefetchingContextProvider,
    ToolContextProvider,
    TurnContext,
)
from callwright.storage.db import Database


def _hit(i: int, v: float | None = None, k: float | None = None) -> ChunkHit:
    return ChunkHit(i, 1, 1, i, f"t{i}", [], "s", None, vector_score=v, keyword_score=k)


def test_rrf_fuse_rewards_agreement() -> None:
    vec = [_hit(1, v=0.9), _hit(2, v=0.8), _hit(3, v=0.7)]
    kw = [_hit(3, k=5.0), _hit(4, k=4.0)]
    fused = rrf_fuse([vec, kw], k=10)
    assert [h.chunk_id for h in fused][:2] == [3, 1]  # 3 is in both lists
    three = fused[0]
    assert three.vector_score == 0.7 and three.keyword_score == 5.0  # both scores kept
    assert fused[0].score == pytest.approx(1 / 13 + 1 / 11)
    # a low keyword weight lets the vector order win
    assert rrf_fuse([vec, kw], k=10, weights=[1.0, 0.1])[0].chunk_id == 1


class WordReranker:
    """Scores a text by how many of `words` it holds; records what it was asked."""

    name = "words"

    def __init__(self, *words: str, drop_last: bool = False) -> None:
        self.words = words
        self.drop_last = drop_last
        self.asked: list[tuple[str, list[str]]] = []

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        self.asked.append((query, list(texts)))
        out = [float(sum(w in t.lower() for w in self.words)) for t in texts]
        return out[:-1] if self.drop_last else out


async def test_rerank_orders_by_the_engines_scores_and_sets_them() -> None:
    engine = WordReranker("b", "c")
    assert isinstance(engine, RerankEngine)
    hits = [_hit(1), _hit(2), _hit(3), _hit(4)]
    for h, text in zip(hits, ["a", "b c", "c", "b"], strict=True):
        h.text, h.score = text, 0.5
    out = await rerank(engine, "query", hits)
    assert [h.chunk_id for h in out] == [2, 3, 4, 1]  # ties (3, 4) keep their order
    assert [h.score for h in out] == [2.0, 1.0, 1.0, 0.0]
    assert engine.asked == [("query", ["a", "b c", "c", "b"])]
    assert await rerank(engine, "query", []) == [] and len(engine.asked) == 1
    with pytest.raises(EngineError, match="'words' returned 3 scores for 4 passages"):
        await rerank(WordReranker(drop_last=True), "query", hits)


async def test_search_reranks_the_candidates(service: KnowledgeService) -> None:
    params = SearchParams(top_k=1, min_score=None)
    plain = await service.search.search("default", ["clinic"], "parking", params=params)
    assert "Parking" in plain.hits[0].text
    engine = WordReranker("blood")
    result = await service.search.search(
        "default", ["clinic"], "parking", params=params, reranker=engine
    )
    assert "Blood test" in result.hits[0].text and result.hits[0].score == 1.0
    assert "rerank_ms" in result.timings_ms
    [(query, texts)] = engine.asked
    assert query == "parking" and len(texts) >= 3  # every candidate, not just top_k


def test_search_params_validate() -> None:
    with pytest.raises(ValueError):
        SearchParams(top_k=5, candidates=2)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[KnowledgeService]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    await db.migrate()
    hub = EngineHub()
    svc = KnowledgeService(db, hub)
    d = tmp_path / "clinic"
    d.mkdir()
    (d / "faq.md").write_text(
        "# FAQ\n\n## Parking\nThe Pier Road garage charges 3 dollars for two hours.\n\n"
        "## Flu shots\nFlu vaccines are given every Tuesday from 9 am.\n\n"
        "## Lab results\nBlood test results arrive within two working days.\n"
    )
    await svc.sync_directory("default", d)
    yield svc
    await svc.aclose()
    await hub.aclose()
    await db.aclose()


async def test_threshold_refuses_off_topic(service: KnowledgeService) -> None:
    on = await service.search.search("default", ["clinic"], "when can I get my flu jab")
    assert on.relevant and "Tuesday" in on.hits[0].text
    off = await service.search.search("default", ["clinic"], "who won the football game last night")
    assert not off.relevant and off.dropped > 0
    everything = await service.search.search(
        "default", ["clinic"], "who won the football game last night",
        params=SearchParams(min_score=None),
    )  # fmt: skip
    assert everything.hits  # the threshold, not the store, removed them


async def test_unknown_kb_is_a_clear_error(service: KnowledgeService) -> None:
    with pytest.raises(KnowledgeBaseNotFound, match="nope"):
        await service.search.search("default", ["nope"], "hello")
    # another tenant does not see this tenant's knowledge base
    with pytest.raises(KnowledgeBaseNotFound):
        await service.search.search("acme", ["clinic"], "parking")


async def test_retriever_builds_the_turn_and_caches(service: KnowledgeService) -> None:
    settings = RetrievalSettings(
        kb_names=("clinic",), access_tags=frozenset({"public"}), params=SearchParams(top_k=2)
    )
    r = KnowledgeRetriever(service.search, "default", settings, instructions="You are Anna.")
    ctx = await r.for_user_turn("How much is parking?")
    assert ctx is not None
    assert ctx.content.startswith("Facts (cite like [1]):\n[1] FAQ > Parking")
    assert ctx.content.endswith("Caller: How much is parking?")
    assert ctx.used is not None and ctx.used.via == KnowledgeVia.PREFIX
    assert ctx.used.relevant and ctx.used.hits[0].source == "faq.md"
    assert ctx.used.cached is False and ctx.used.query == "How much is parking?"
    assert ctx.used.passages[0].startswith("FAQ > Parking")
    again = await r.for_user_turn("how much is parking")  # same words: from the cache
    assert again is not None and again.used is not None
    assert again.used.cached is True and r.hits == 1

    ok = r.check_answer("Parking costs 3 dollars for two hours [1].", ctx)
    assert ok is not None and ok.flagged is False and ok.cited == (1,)
    assert ok.cited_chunks == (ctx.used.hits[0].chunk_id,)
    bad = r.check_answer("Parking costs 7 dollars at the Marina garage.", ctx)
    assert bad is not None and bad.flagged is True
    assert set(bad.unsupported) >= {"7", "marina"}

    none = await r.for_user_turn("what is the capital of mongolia")
    assert none is not None and none.content.startswith(NO_MATCH_NOTE)
    assert none.used is not None and none.used.relevant is False and not none.used.hits


async def test_final_reuses_a_confident_partial(service: KnowledgeService) -> None:
    settings = RetrievalSettings(
        kb_names=("clinic",), access_tags=frozenset({"public"}), params=SearchParams(top_k=2)
    )
    r = KnowledgeRetriever(service.search, "default", settings)
    assert await r.prefetch("how much does parking") is None  # off unless configured
    settings = RetrievalSettings(
        kb_names=("clinic",),
        access_tags=frozenset({"public"}),
        params=SearchParams(top_k=2),
        prefetch_on_partial=True,
    )
    r = KnowledgeRetriever(service.search, "default", settings)
    early = await r.prefetch("how much does parking at the garage")
    assert early is not None and early.prefix and early.content.startswith(early.prefix)
    final = await r.for_user_turn("How much does parking at the garage cost?")
    assert final is not None and final.used is not None and final.used.from_partial is True
    assert final.prefix == early.prefix  # the LLM's read-ahead stays valid
    assert final.content == early.prefix + "How much does parking at the garage cost?"
    # a final that is not an extension of the partial is searched afresh
    await r.prefetch("flu shots")
    other = await r.for_user_turn("when do blood test results arrive")
    assert other is not None and other.used is not None and other.used.from_partial is False
    assert "Lab results" in other.content


async def test_retriever_as_a_tool(service: KnowledgeService) -> None:
    settings = RetrievalSettings(
        kb_names=("clinic",),
        access_tags=frozenset({"public"}),
        params=SearchParams(top_k=1),
        as_tool=True,
    )
    r = KnowledgeRetriever(service.search, "default", settings)
    assert await r.for_user_turn("how much is parking") is None  # nothing up front
    [spec] = r.tools()
    assert spec.name == "search_knowledge" and spec.parameters["required"] == ["query"]
    ctx = await r.call_tool("search_knowledge", json.dumps({"query": "parking price"}))
    assert ctx.content.startswith("Facts") and "3 dollars" in ctx.content
    assert "Caller:" not in ctx.content and ctx.prefix == ""
    assert ctx.used is not None and ctx.used.via == KnowledgeVia.TOOL
    assert ctx.used.to_dict()["via"] == "tool"
    with pytest.raises(ValueError, match="query"):
        await r.call_tool("search_knowledge", "{}")
    with pytest.raises(ValueError, match="JSON"):
        await r.call_tool("search_knowledge", "{nope")
    with pytest.raises(LookupError):
        await r.call_tool("delete_everything", "{}")


async def test_two_tool_calls_in_one_turn_merge(service: KnowledgeService) -> None:
    settings = RetrievalSettings(
        kb_names=("clinic",),
        access_tags=frozenset({"public"}),
        params=SearchParams(top_k=1),
        as_tool=True,
    )
    r = KnowledgeRetriever(service.search, "default", settings)
    parking = await r.call_tool("search_knowledge", json.dumps({"query": "parking price"}))
    flu = await r.call_tool("search_knowledge", json.dumps({"query": "when can I get my flu jab"}))
    failed = TurnContext(content="error: ValueError: no")  # a failed call keeps nothing
    both = parking.merged(flu).merged(failed)
    assert both.content == f"{parking.content}\n{flu.content}\n{failed.content}"
    assert both.used is not None and parking.used is not None and flu.used is not None
    assert both.used.hits == (*parking.used.hits, *flu.used.hits)
    assert both.used.passages == (*parking.used.passages, *flu.used.passages)
    assert both.used.kbs == ("clinic",) and both.used.query == "parking price"
    # the answer is checked against the evidence of both calls
    grounding = r.check_answer("Parking is 3 dollars; flu jabs are on Tuesday.", both)
    assert grounding is not None
    assert not grounding.flagged, grounding.unsupported
    alone = r.check_answer("Flu jabs are on Tuesday.", parking)
    assert alone is not None and alone.flagged  # the parking passage never says Tuesday


def test_retriever_declares_the_optional_protocols(service: KnowledgeService) -> None:
    settings = RetrievalSettings(
        kb_names=("clinic",), access_tags=frozenset({"public"}), params=SearchParams()
    )
    r = KnowledgeRetriever(service.search, "default", settings)
    assert isinstance(r, ToolContextProvider) and isinstance(r, PrefetchingContextProvider)

    class PlainProvider:
        async def for_user_turn(self, text: str) -> TurnContext | None:
            return None

    assert not isinstance(PlainProvider(), ToolContextProvider)
    assert not isinstance(PlainProvider(), PrefetchingContextProvider)
