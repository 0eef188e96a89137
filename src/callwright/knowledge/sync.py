"""Knowledge directories to knowledge bases: each `knowledge/<kb>/` (named by its kb.yaml).

Its own room because syncing is about the file tree, not about ingestion: which
subdirectories are knowledge bases, what kb.yaml calls them, and that a synced base's
cached search data is dropped. Making one base match its directory is the Ingestor's
job (`Ingestor.sync_directory`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from callwright.agents.config import EngineRef
from callwright.knowledge.ingest import KB_FILE, Ingestor, IngestReport
from callwright.knowledge.search import KnowledgeSearch

log = logging.getLogger(__name__)


class DirectorySync:
    """Syncs knowledge directories with ingestors from `ingestor` (the service's)."""

    def __init__(
        self,
        ingestor: Callable[[EngineRef | None], Awaitable[Ingestor]],
        search: KnowledgeSearch,
    ) -> None:
        self._ingestor = ingestor
        self._search = search

    async def sync_directory(
        self, tenant_id: str, directory: Path, ref: EngineRef | None = None
    ) -> list[IngestReport]:
        ingestor = await self._ingestor(ref)
        reports = await ingestor.sync_directory(tenant_id, directory)
        name = (await asyncio.to_thread(_kb_name, directory)) or directory.name
        self._search.forget(tenant_id, name)
        return reports

    async def sync_root(self, tenant_id: str, root: Path) -> dict[str, list[IngestReport]]:
        """Every subdirectory of `root` with documents is a knowledge base (kb.yaml names it)."""
        out: dict[str, list[IngestReport]] = {}
        for directory in await asyncio.to_thread(_kb_dirs, root):
            reports = await self.sync_directory(tenant_id, directory)
            out[directory.name] = reports
            changed = [r for r in reports if r.status in ("added", "updated")]
            failed = [r for r in reports if r.status == "failed"]
            log.info(
                "knowledge %s: %d documents, %d changed, %d failed",
                directory.name,
                len(reports),
                len(changed),
                len(failed),
            )
            for r in failed:
                log.warning("knowledge %s: %s not ingested: %s", directory.name, r.source, r.error)
        return out


def _kb_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and any(p.is_file() for p in d.rglob("*"))
    )


def _kb_name(directory: Path) -> str | None:
    import yaml

    path = directory / KB_FILE
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return str(data.get("name")) if isinstance(data, dict) and data.get("name") else None
