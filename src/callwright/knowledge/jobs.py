"""The ingest job queue behind `/v1/knowledge-jobs`: uploads and URLs ingested in the background.

Its own room because a job outlives the request that queued it: parsing and embedding
take seconds to minutes, so the request gets a job to poll while an asyncio task in
this process does the work, its state kept in the `kb_jobs` table (queued, running,
succeeded, failed). A worker process could take the same rows later; nothing else in
the knowledge layer needs to know how a job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from callwright.knowledge.ingest import Ingestor
from callwright.knowledge.search import KnowledgeSearch
from callwright.knowledge.store import KnowledgeStore
from callwright.knowledge.types import KnowledgeBaseNotFound
from callwright.storage.calls import TenantRepository
from callwright.storage.db import Database
from callwright.storage.models import KnowledgeJob, utcnow

if TYPE_CHECKING:
    from callwright.knowledge.fetch import FetchPolicy

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class _JobInput:
    """What a queued job ingests: uploaded bytes, or the URL in `source` when `data` is None."""

    tenant_id: str
    kb_name: str
    source: str
    data: bytes | None
    filename: str | None
    content_type: str | None
    access_tags: Sequence[str] | None


class KnowledgeJobs:
    """Queued ingests of one process, each an asyncio task that records its state."""

    def __init__(
        self,
        db: Database,
        store: KnowledgeStore,
        search: KnowledgeSearch,
        default_ingestor: Callable[[], Awaitable[Ingestor]],
        fetch_policy: FetchPolicy | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.search = search
        self.fetch_policy = fetch_policy
        self._default_ingestor = default_ingestor
        self._tasks: set[asyncio.Task[None]] = set()

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
        job = _JobInput(tenant_id, kb_name, source, data, filename, content_type, access_tags)
        task = asyncio.create_task(self._run(row.id, job), name=f"kb-job-{row.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _job(row)

    async def get(self, tenant_id: str, job_id: str) -> JobRecord | None:
        async with self.db.sessions() as s:
            row = await s.scalar(
                select(KnowledgeJob).where(
                    KnowledgeJob.tenant_id == tenant_id, KnowledgeJob.id == job_id
                )
            )
        return None if row is None else _job(row)

    async def wait_idle(self) -> None:
        """Wait for queued jobs (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel running jobs; each records itself failed ("server stopped")."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _set(self, job_id: str, **values: Any) -> None:
        async with self.db.sessions() as s, s.begin():
            await s.execute(
                update(KnowledgeJob)
                .where(KnowledgeJob.id == job_id)
                .values(updated_at=utcnow(), **values)
            )

    async def _run(self, job_id: str, job: _JobInput) -> None:
        await self._set(job_id, status="running")
        try:
            ingestor = await self._ingestor_for(job.tenant_id, job.kb_name)
            if job.data is None:
                report = await ingestor.ingest_url(
                    job.tenant_id,
                    job.kb_name,
                    job.source,
                    policy=self.fetch_policy,
                    access_tags=job.access_tags,
                )
            else:
                report = await ingestor.ingest_bytes(
                    job.tenant_id,
                    job.kb_name,
                    job.data,
                    source=job.source,
                    filename=job.filename,
                    content_type=job.content_type,
                    access_tags=job.access_tags,
                )
        except asyncio.CancelledError:
            await asyncio.shield(self._set(job_id, status="failed", error="server stopped"))
            raise
        except Exception as exc:
            log.warning("knowledge job %s failed", job_id, exc_info=True)
            await self._set(job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.search.forget(job.tenant_id, job.kb_name)
        status = "failed" if report.status == "failed" else "succeeded"
        await self._set(
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
        return await self._default_ingestor()  # the default; Ingestor refuses a mismatch clearly
