"""Ingestion into the embedded store with the real parsers and the embedded embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callwright.engines.registry import EngineHub
from callwright.knowledge.search import SearchParams
from callwright.knowledge.service import KnowledgeService
from callwright.knowledge.types import KnowledgeError
from callwright.storage.db import Database

PUBLIC = frozenset({"public"})

HOURS = """# Harbor Clinic

## Opening hours
We are open Monday to Friday from 8 am to 6 pm.

## Parking
The Pier Road garage charges 3 dollars for the first two hours.
"""
STAFF = """---
access_tags: [staff]
---
# Internal

## Door code
The back door code is 4417.
"""


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[KnowledgeService]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    await db.migrate()
    hub = EngineHub()
    svc = KnowledgeService(db, hub)
    await svc.start()
    yield svc
    await svc.aclose()
    await hub.aclose()
    await db.aclose()


def _kb_dir(root: Path) -> Path:
    d = root / "clinic"
    d.mkdir()
    (d / "kb.yaml").write_text("name: clinic\ndescription: test clinic\n")
    (d / "hours.md").write_text(HOURS)
    (d / "staff.md").write_text(STAFF)
    return d


async def test_sync_directory_then_search(service: KnowledgeService, tmp_path: Path) -> None:
    d = _kb_dir(tmp_path)
    reports = await service.sync_directory("default", d)
    assert sorted((r.source, r.status) for r in reports) == [
        ("hours.md", "added"),
        ("staff.md", "added"),
    ]
    result = await service.search.search(
        "default", ["clinic"], "how much is it to leave my car", access_tags=PUBLIC
    )
    assert result.hits and "3 dollars" in result.hits[0].text
    assert result.hits[0].headings == ["Harbor Clinic", "Parking"]
    assert result.hits[0].text.startswith("Harbor Clinic > Parking")
    # front matter made the staff document invisible to public readers...
    public = await service.search.search(
        "default", ["clinic"], "back door code", access_tags=PUBLIC,
        params=SearchParams(min_score=None, top_k=5),
    )  # fmt: skip
    assert all(h.source != "staff.md" for h in public.hits)
    # ...and visible to staff
    staff = await service.search.search(
        "default", ["clinic"], "back door code", access_tags=frozenset({"staff"})
    )
    assert staff.hits and staff.hits[0].source == "staff.md"


async def test_reingest_skips_replaces_and_deletes(
    service: KnowledgeService, tmp_path: Path
) -> None:
    d = _kb_dir(tmp_path)
    await service.sync_directory("default", d)
    again = await service.sync_directory("default", d)
    assert {r.status for r in again} == {"unchanged"}

    # change one section: the document is replaced, the unchanged chunk keeps its vector
    (d / "hours.md").write_text(HOURS.replace("3 dollars", "5 dollars"))
    reports = {r.source: r for r in await service.sync_directory("default", d)}
    assert reports["hours.md"].status == "updated"
    assert reports["hours.md"].reused >= 1 and reports["hours.md"].embedded >= 1
    hits = await service.search.search("default", ["clinic"], "parking price", access_tags=PUBLIC)
    assert "5 dollars" in hits.hits[0].text
    assert all("3 dollars" not in h.text for h in hits.hits)

    # the same bytes under another name are a duplicate, not a second copy
    (d / "copy.md").write_text(HOURS.replace("3 dollars", "5 dollars"))
    reports = {r.source: r for r in await service.sync_directory("default", d)}
    assert reports["copy.md"].status == "duplicate"
    assert reports["copy.md"].duplicate_of == "hours.md"

    # a file removed from the directory is removed from the knowledge base
    (d / "staff.md").unlink()
    (d / "copy.md").unlink()
    await service.sync_directory("default", d)
    kb = await service.store.get_kb("default", "clinic")
    assert kb is not None
    docs = await service.store.list_documents("default", kb.id)
    assert [x.source for x in docs] == ["hours.md"]
    staff = await service.search.search(
        "default", ["clinic"], "back door code", access_tags=frozenset({"staff"}),
        params=SearchParams(min_score=None),
    )  # fmt: skip
    assert all(h.source != "staff.md" for h in staff.hits)


async def test_bad_documents_fail_alone(service: KnowledgeService, tmp_path: Path) -> None:
    d = _kb_dir(tmp_path)
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (d / "empty.txt").write_text("   \n")
    reports = {r.source: r for r in await service.sync_directory("default", d)}
    assert reports["broken.pdf"].status == "failed" and reports["broken.pdf"].error
    assert reports["empty.txt"].status == "failed"
    assert reports["hours.md"].status == "added"


async def test_bytes_upload_and_embedder_mismatch(service: KnowledgeService) -> None:
    ingestor = await service.ingestor()
    await ingestor.ensure_kb("default", "faq")
    html = b"<html><body><nav>Home | About</nav><h2>Wifi</h2><p>Guest wifi is free.</p></body>"
    report = await ingestor.ingest_bytes(
        "default", "faq", html, source="faq.html", content_type="text/html"
    )
    assert report.status == "added" and report.chunks == 1
    kb = await service.store.get_kb("default", "faq")
    assert kb is not None and kb.document_count == 1
    await service.store.create_kb("default", "other", embedder="openai:text-3", dims=1536)
    with pytest.raises(KnowledgeError, match="openai:text-3"):
        await ingestor.ingest_bytes("default", "other", b"hello there", source="x.txt")


async def test_kb_yaml_changes_apply_to_every_document(
    service: KnowledgeService, tmp_path: Path
) -> None:
    d = _kb_dir(tmp_path)
    await service.sync_directory("default", d)
    # new default tags: every document is re-ingested under them
    (d / "kb.yaml").write_text("name: clinic\ndescription: internal\naccess_tags: [staff]\n")
    reports = {r.source: r.status for r in await service.sync_directory("default", d)}
    assert reports == {"hours.md": "updated", "staff.md": "updated"}
    kb = await service.store.get_kb("default", "clinic")
    assert kb is not None and kb.description == "internal"
    assert kb.settings["access_tags"] == ["staff"]
    public = await service.search.search(
        "default", ["clinic"], "parking garage price", access_tags=PUBLIC,
        params=SearchParams(min_score=None),
    )  # fmt: skip
    assert public.hits == []
    # nothing changed since: nothing is re-ingested
    again = {r.status for r in await service.sync_directory("default", d)}
    assert again == {"unchanged"}


async def test_sync_keeps_uploads_and_drops_replaced_text(
    service: KnowledgeService, tmp_path: Path
) -> None:
    d = _kb_dir(tmp_path)
    await service.sync_directory("default", d)
    ingestor = await service.ingestor()
    # an upload into the same knowledge base is not a file of the directory...
    up = await ingestor.ingest_bytes(
        "default", "clinic", b"# Wifi\n\n## Guest wifi\nThe guest wifi is free.", source="wifi.md"
    )
    assert up.status == "added"
    await service.sync_directory("default", d)
    kb = await service.store.get_kb("default", "clinic")
    assert kb is not None
    sources = {x.source for x in await service.store.list_documents("default", kb.id)}
    assert "wifi.md" in sources  # ...so a sync leaves it alone
    # a file edited into a copy of another document: its old text must not linger
    (d / "staff.md").write_text(HOURS)
    reports = {r.source: r for r in await service.sync_directory("default", d)}
    assert reports["staff.md"].status == "duplicate"
    staff = await service.search.search(
        "default", ["clinic"], "back door code", access_tags=frozenset({"staff"}),
        params=SearchParams(min_score=None),
    )  # fmt: skip
    assert all(h.source != "staff.md" for h in staff.hits)
    # new tags for unchanged bytes are applied, not skipped as "unchanged"
    again = await ingestor.ingest_bytes(
        "default", "clinic", b"# Wifi\n\n## Guest wifi\nThe guest wifi is free.",
        source="wifi.md", access_tags=["staff"],
    )  # fmt: skip
    assert again.status == "updated"
    hidden = await service.search.search(
        "default", ["clinic"], "guest wifi", access_tags=PUBLIC,
        params=SearchParams(min_score=None),
    )  # fmt: skip
    assert all(h.source != "wifi.md" for h in hidden.hits)
