"""The knowledge store contract, run against every store (see conftest)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from callwright.knowledge.store import KnowledgeStore
from callwright.knowledge.types import (
    KnowledgeBaseExists,
    KnowledgeError,
    NewChunk,
    NewDocument,
    SearchFilter,
)

DIMS = 8


def _unit(*values: float) -> np.ndarray:
    v = np.zeros(DIMS, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def _chunk(i: int, text: str, vec: np.ndarray) -> NewChunk:
    return NewChunk(
        ordinal=i,
        text=text,
        headings=["Section"],
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        embedding=vec,
    )


def _doc(source: str, tags: list[str] | None = None, content: str = "x") -> NewDocument:
    return NewDocument(
        source=source,
        mime_type="text/markdown",
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
        size_bytes=len(content),
        title=source,
        access_tags=tags or ["public"],
    )


async def test_kb_lifecycle(knowledge_store: KnowledgeStore) -> None:
    kb = await knowledge_store.create_kb("default", "clinic", embedder="test:8", dims=DIMS)
    assert kb.name == "clinic" and kb.dims == DIMS
    with pytest.raises(KnowledgeBaseExists):
        await knowledge_store.create_kb("default", "clinic", embedder="test:8", dims=DIMS)
    # the same name in another tenant is another knowledge base
    other = await knowledge_store.create_kb("acme", "clinic", embedder="test:8", dims=DIMS)
    assert other.id != kb.id
    assert [k.name for k in await knowledge_store.list_kbs("default")] == ["clinic"]
    assert await knowledge_store.delete_kb("default", "clinic")
    assert await knowledge_store.get_kb("default", "clinic") is None
    assert await knowledge_store.get_kb("acme", "clinic") is not None
    assert not await knowledge_store.delete_kb("default", "clinic")


async def test_replace_document_and_search(knowledge_store: KnowledgeStore) -> None:
    kb = await knowledge_store.create_kb("default", "kb", embedder="test:8", dims=DIMS)
    chunks = [
        _chunk(0, "Parking garage on Pier Road costs 3 dollars", _unit(1, 0, 0)),
        _chunk(1, "Flu vaccines are given on Tuesdays", _unit(0, 1, 0)),
        _chunk(2, "Lab results arrive within two days", _unit(0, 0, 1)),
    ]
    doc = await knowledge_store.replace_document("default", kb.id, _doc("a.md"), chunks)
    assert doc.chunk_count == 3
    filt = SearchFilter("default", (kb.id,))
    hits = await knowledge_store.vector_search(filt, _unit(0.9, 0.1, 0), 2)
    assert [h.ordinal for h in hits] == [0, 1]
    assert hits[0].vector_score is not None and hits[0].vector_score > 0.9
    assert hits[0].source == "a.md" and hits[0].kb_name == "kb"

    words = await knowledge_store.keyword_search(
        filt, "how much does the parking cost", 5, query=_unit(1, 0, 0)
    )
    assert words and words[0].ordinal == 0
    assert words[0].keyword_score is not None and words[0].vector_score is not None
    assert words[0].vector_score == pytest.approx(1.0, abs=1e-4)
    # stemming: "vaccinations" finds "vaccines"? Porter maps both to "vaccin"
    stem = await knowledge_store.keyword_search(filt, "vaccination", 5)
    assert [h.ordinal for h in stem] == [1]

    # re-ingest replaces the chunks atomically: old text gone from both indexes
    new = [_chunk(0, "Parking is free on Sundays", _unit(1, 0, 0))]
    doc2 = await knowledge_store.replace_document("default", kb.id, _doc("a.md", content="y"), new)
    assert doc2.id == doc.id and doc2.chunk_count == 1
    assert not await knowledge_store.keyword_search(filt, "vaccines tuesdays", 5)
    hits = await knowledge_store.vector_search(filt, _unit(0, 1, 0), 5)
    assert [h.text for h in hits] == ["Parking is free on Sundays"]
    docs = await knowledge_store.list_documents("default", kb.id)
    assert [d.source for d in docs] == ["a.md"]
    info = await knowledge_store.get_kb("default", "kb")
    assert info is not None and info.document_count == 1 and info.chunk_count == 1


async def test_filters_inside_the_query(knowledge_store: KnowledgeStore) -> None:
    """Tenants, knowledge bases and access tags never leak, and never cost recall."""
    kb1 = await knowledge_store.create_kb("default", "one", embedder="test:8", dims=DIMS)
    kb2 = await knowledge_store.create_kb("default", "two", embedder="test:8", dims=DIMS)
    kb3 = await knowledge_store.create_kb("acme", "one", embedder="test:8", dims=DIMS)
    target = _unit(1, 0, 0)
    # many staff-only chunks nearer the query than the one public chunk: a post-filter
    # of a top 5 would return nothing
    staff = [_chunk(i, f"staff secret door code {i}", target) for i in range(10)]
    await knowledge_store.replace_document("default", kb1.id, _doc("staff.md", ["staff"]), staff)
    await knowledge_store.replace_document(
        "default", kb1.id, _doc("public.md"), [_chunk(0, "public door hours", _unit(1, 1, 0))]
    )
    await knowledge_store.replace_document(
        "default", kb2.id, _doc("other.md"), [_chunk(0, "door other kb", target)]
    )
    await knowledge_store.replace_document(
        "acme", kb3.id, _doc("acme.md"), [_chunk(0, "door acme tenant", target)]
    )
    public = SearchFilter("default", (kb1.id,), frozenset({"public"}))
    hits = await knowledge_store.vector_search(public, target, 5)
    assert [h.text for h in hits] == ["public door hours"]
    words = await knowledge_store.keyword_search(public, "door", 5)
    assert [h.text for h in words] == ["public door hours"]
    both = SearchFilter("default", (kb1.id, kb2.id), frozenset({"public", "staff"}))
    texts = {h.text for h in await knowledge_store.keyword_search(both, "door", 20)}
    assert "door other kb" in texts and "door acme tenant" not in texts and len(texts) == 12
    nothing = SearchFilter("default", (kb1.id,), frozenset())
    assert await knowledge_store.vector_search(nothing, target, 5) == []
    assert await knowledge_store.keyword_search(nothing, "door", 5) == []
    # the other tenant's kb id in this tenant's filter finds nothing either
    assert await knowledge_store.vector_search(SearchFilter("default", (kb3.id,)), target, 5) == []


async def test_delete_document_removes_everything(knowledge_store: KnowledgeStore) -> None:
    kb = await knowledge_store.create_kb("default", "kb", embedder="test:8", dims=DIMS)
    doc = await knowledge_store.replace_document(
        "default", kb.id, _doc("a.md"), [_chunk(0, "walk-in clinic on mondays", _unit(1))]
    )
    filt = SearchFilter("default", (kb.id,))
    assert await knowledge_store.keyword_search(filt, "walk-in", 5)
    assert await knowledge_store.delete_document("default", kb.id, doc.id)
    assert not await knowledge_store.delete_document("default", kb.id, doc.id)
    assert await knowledge_store.keyword_search(filt, "walk-in", 5) == []
    assert await knowledge_store.vector_search(filt, _unit(1), 5) == []
    assert await knowledge_store.list_documents("default", kb.id) == []


async def test_embeddings_reused_and_validated(knowledge_store: KnowledgeStore) -> None:
    kb = await knowledge_store.create_kb("default", "kb", embedder="test:8", dims=DIMS)
    c = _chunk(0, "reused chunk", _unit(0, 1))
    await knowledge_store.replace_document("default", kb.id, _doc("a.md"), [c])
    found = await knowledge_store.chunk_embeddings("default", kb.id, [c.content_hash, "nope"])
    assert list(found) == [c.content_hash]
    np.testing.assert_allclose(found[c.content_hash], c.embedding, atol=1e-6)
    assert await knowledge_store.find_by_hash("default", kb.id, _doc("a.md").content_hash)
    bad = NewChunk(0, "wrong size", [], "h", np.ones(3, dtype=np.float32))
    with pytest.raises(KnowledgeError, match="3"):
        await knowledge_store.replace_document("default", kb.id, _doc("b.md"), [bad])
    # the failed write left nothing behind
    assert [d.source for d in await knowledge_store.list_documents("default", kb.id)] == ["a.md"]


async def test_keyword_search_beyond_ascii(knowledge_store: KnowledgeStore) -> None:
    kb = await knowledge_store.create_kb("default", "kb", embedder="test:8", dims=DIMS)
    await knowledge_store.replace_document(
        "default", kb.id, _doc("a.md"), [_chunk(0, "Le café de la clinique ouvre à midi", _unit(1))]
    )
    hits = await knowledge_store.keyword_search(SearchFilter("default", (kb.id,)), "café", 5)
    assert [h.ordinal for h in hits] == [0]
    # quotes and FTS syntax in a question are words, not operators
    odd = await knowledge_store.keyword_search(
        SearchFilter("default", (kb.id,)), 'café" OR NEAR(x', 5
    )
    assert [h.ordinal for h in odd] == [0]
