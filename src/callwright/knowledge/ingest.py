"""Ingestion: documents in, chunks with embeddings out, stored atomically.

source -> parse (thread) -> structure-aware chunks -> dedupe -> embed only what is
new -> `store.replace_document` (one transaction). A document whose bytes did not
change is skipped; one whose bytes equal another document's in the same knowledge
base is reported as a duplicate and not stored twice; a changed document replaces
its chunks, reusing the embeddings of the chunks that did not change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from callwright.engines.base import EmbeddingEngine
from callwright.knowledge.chunking import ChunkSpec, chunk_document
from callwright.knowledge.parsers import (
    SUPPORTED_SUFFIXES,
    DocumentError,
    ParsedDocument,
    parse_document,
)
from callwright.knowledge.store import KnowledgeStore
from callwright.knowledge.types import (
    PUBLIC_TAG,
    KnowledgeBaseInfo,
    KnowledgeBaseNotFound,
    KnowledgeError,
    NewChunk,
    NewDocument,
)

if TYPE_CHECKING:
    from callwright.knowledge.fetch import FetchPolicy

log = logging.getLogger(__name__)

KB_FILE = "kb.yaml"
DIRECTORY_ORIGIN = "directory"
Status = Literal["added", "updated", "unchanged", "duplicate", "failed"]
Progress = Callable[[int, int, str], None]


@dataclass(slots=True)
class IngestReport:
    source: str
    status: Status
    document_id: int | None = None
    chunks: int = 0
    embedded: int = 0  # chunks the model embedded now
    reused: int = 0  # chunks whose stored embedding was reused
    duplicate_of: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class KnowledgeBaseSpec:
    """`kb.yaml` in a knowledge directory: what the directory's knowledge base is."""

    name: str
    description: str = ""
    access_tags: list[str] = field(default_factory=lambda: [PUBLIC_TAG])
    chunking: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> KnowledgeBaseSpec:
        path = directory / KB_FILE
        data: dict[str, Any] = {}
        if path.exists():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            if loaded is not None and not isinstance(loaded, dict):
                raise KnowledgeError(f"{path}: expected a mapping")
            data = loaded or {}
        unknown = set(data) - {"name", "description", "access_tags", "chunking"}
        if unknown:
            raise KnowledgeError(f"{path}: unknown keys {sorted(unknown)}")
        tags = data.get("access_tags", [PUBLIC_TAG])
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise KnowledgeError(f"{path}: access_tags must be a list of names")
        return cls(
            name=str(data.get("name") or directory.name),
            description=str(data.get("description", "")),
            access_tags=list(tags),
            chunking=dict(data.get("chunking") or {}),
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES and path.name != KB_FILE


def _tags(value: Any, fallback: Sequence[str]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(t, str) and t for t in value):
        return list(dict.fromkeys(value))
    return list(fallback)


class Ingestor:
    def __init__(self, store: KnowledgeStore, embedder: EmbeddingEngine) -> None:
        self.store = store
        self.embedder = embedder

    async def ensure_kb(
        self,
        tenant_id: str,
        name: str,
        *,
        description: str = "",
        settings: dict[str, Any] | None = None,
    ) -> KnowledgeBaseInfo:
        kb = await self.store.get_kb(tenant_id, name)
        if kb is None:
            return await self.store.create_kb(
                tenant_id,
                name,
                embedder=self.embedder.model_id,
                dims=self.embedder.dims,
                description=description,
                settings=settings or {},
            )
        self.check_space(kb)
        return kb

    def check_space(self, kb: KnowledgeBaseInfo) -> None:
        if kb.embedder != self.embedder.model_id or kb.dims != self.embedder.dims:
            raise KnowledgeError(
                f"knowledge base {kb.name!r} holds {kb.embedder} vectors ({kb.dims} dims); "
                f"this ingest embeds with {self.embedder.model_id} ({self.embedder.dims}): "
                "use the same embedder, or a new knowledge base"
            )

    async def _kb(self, tenant_id: str, name: str) -> KnowledgeBaseInfo:
        kb = await self.store.get_kb(tenant_id, name)
        if kb is None:
            raise KnowledgeBaseNotFound(f"knowledge base {name!r} not found in {tenant_id!r}")
        self.check_space(kb)
        return kb

    async def ingest_bytes(
        self,
        tenant_id: str,
        kb_name: str,
        data: bytes,
        *,
        source: str,
        filename: str | None = None,
        content_type: str | None = None,
        access_tags: Sequence[str] | None = None,
        force: bool = False,
        origin: str | None = None,
    ) -> IngestReport:
        """Ingest one document. Bad documents give a `failed` report, never an exception.

        `force` re-ingests unchanged bytes too (the chunking or default tags changed);
        `origin` is kept in the document's metadata ("directory": owned by a sync)."""
        kb = await self._kb(tenant_id, kb_name)
        try:
            return await self._ingest(
                kb, data, source, filename or source, content_type, access_tags, force, origin
            )
        except DocumentError as exc:
            return IngestReport(source, "failed", error=str(exc))

    async def _ingest(
        self,
        kb: KnowledgeBaseInfo,
        data: bytes,
        source: str,
        filename: str,
        content_type: str | None,
        access_tags: Sequence[str] | None,
        force: bool = False,
        origin: str | None = None,
    ) -> IngestReport:
        digest = sha256(data)
        existing = await self.store.get_document(kb.tenant_id, kb.id, source)
        default_tags = access_tags or kb.settings.get("access_tags") or [PUBLIC_TAG]
        same_tags = access_tags is None or (
            existing is not None and sorted(access_tags) == sorted(existing.access_tags)
        )
        if existing is not None and existing.content_hash == digest and same_tags and not force:
            return IngestReport(
                source, "unchanged", document_id=existing.id, chunks=existing.chunk_count
            )
        twin = await self.store.find_by_hash(kb.tenant_id, kb.id, digest)
        if twin is not None and twin.source != source:
            if existing is not None:  # its new bytes are another document's: drop the old text
                await self.store.delete_document(kb.tenant_id, kb.id, existing.id)
            return IngestReport(source, "duplicate", document_id=twin.id, duplicate_of=twin.source)
        parsed = await asyncio.to_thread(
            parse_document, data, filename=filename, content_type=content_type
        )
        spec = ChunkSpec(**{k: int(v) for k, v in kb.settings.get("chunking", {}).items()})
        texts, headings = _passages(parsed, spec)
        if not texts:
            raise KnowledgeError(f"{source}: no text to index")
        hashes = [sha256(t.encode("utf-8")) for t in texts]
        vectors, embedded = await self._vectors(kb, texts, hashes)
        tags = _tags(parsed.metadata.get("access_tags"), default_tags)
        doc = NewDocument(
            source=source,
            mime_type=parsed.mime_type,
            content_hash=digest,
            size_bytes=len(data),
            title=parsed.title,
            access_tags=tags,
            metadata={
                **{k: v for k, v in parsed.metadata.items() if _jsonable(v)},
                **({"origin": origin} if origin else {}),
            },
        )
        chunks = [
            NewChunk(i, t, hd, h, v)
            for i, (t, hd, h, v) in enumerate(zip(texts, headings, hashes, vectors, strict=True))
        ]
        info = await self.store.replace_document(kb.tenant_id, kb.id, doc, chunks)
        return IngestReport(
            source,
            "updated" if existing is not None else "added",
            document_id=info.id,
            chunks=len(chunks),
            embedded=embedded,
            reused=len(chunks) - embedded,
        )

    async def _vectors(
        self, kb: KnowledgeBaseInfo, texts: list[str], hashes: list[str]
    ) -> tuple[list[np.ndarray], int]:
        """One vector per passage, and how many were embedded: a passage the knowledge
        base already holds (same hash) keeps its stored vector instead of a new embedding."""
        known = await self.store.chunk_embeddings(kb.tenant_id, kb.id, hashes)
        todo = [i for i, h in enumerate(hashes) if h not in known]
        fresh = await self.embedder.embed_passages([texts[i] for i in todo]) if todo else None
        vectors: list[np.ndarray] = []
        new_iter = iter(range(len(todo)))
        for h in hashes:
            if h in known:
                vectors.append(known[h])
            else:
                assert fresh is not None
                vectors.append(fresh[next(new_iter)])
        return vectors, len(todo)

    async def ingest_path(
        self,
        tenant_id: str,
        kb_name: str,
        path: Path,
        *,
        access_tags: Sequence[str] | None = None,
        progress: Progress | None = None,
        delete_missing: bool = False,
        force: bool = False,
    ) -> list[IngestReport]:
        """A file, or every supported file under a directory (sources relative to it).

        `delete_missing` also removes documents whose files are gone (a directory sync).
        """
        files, root, is_dir = await asyncio.to_thread(_list_files, path)
        reports = []
        for n, file in enumerate(files):
            source = file.relative_to(root).as_posix()
            if progress is not None:
                progress(n, len(files), source)
            data = await asyncio.to_thread(file.read_bytes)
            reports.append(
                await self.ingest_bytes(
                    tenant_id,
                    kb_name,
                    data,
                    source=source,
                    access_tags=access_tags,
                    force=force,
                    origin=DIRECTORY_ORIGIN if delete_missing else None,
                )
            )
        if progress is not None:
            progress(len(files), len(files), "")
        if delete_missing and is_dir:
            kb = await self._kb(tenant_id, kb_name)
            present = {f.relative_to(root).as_posix() for f in files}
            for doc in await self.store.list_documents(tenant_id, kb.id):
                # only what an earlier sync brought in: uploads and URLs are not files
                owned = doc.metadata.get("origin") == DIRECTORY_ORIGIN
                if owned and doc.source not in present:
                    await self.store.delete_document(tenant_id, kb.id, doc.id)
                    log.info("knowledge %s: removed %s (file gone)", kb_name, doc.source)
        return reports

    async def ingest_url(
        self,
        tenant_id: str,
        kb_name: str,
        url: str,
        *,
        policy: FetchPolicy | None = None,
        access_tags: Sequence[str] | None = None,
    ) -> IngestReport:
        from callwright.knowledge.fetch import FetchPolicy, fetch_url

        await self._kb(tenant_id, kb_name)
        fetched = await fetch_url(url, policy or FetchPolicy())
        return await self.ingest_bytes(
            tenant_id,
            kb_name,
            fetched.data,
            source=url,
            filename=fetched.filename,
            content_type=fetched.content_type,
            access_tags=access_tags,
        )

    async def sync_directory(self, tenant_id: str, directory: Path) -> list[IngestReport]:
        """Make the knowledge base described by `directory/kb.yaml` match the directory."""
        spec = KnowledgeBaseSpec.load(directory)
        settings = {"access_tags": spec.access_tags, "chunking": spec.chunking}
        ChunkSpec(**spec.chunking)  # refuse bad chunking settings before any work
        kb = await self.ensure_kb(
            tenant_id, spec.name, description=spec.description, settings=settings
        )
        force = False
        if kb.settings != settings or kb.description != spec.description:
            # new chunking or default tags apply to every document: re-ingest them all
            # (unchanged chunks keep their stored embeddings). Marked pending until
            # done, so a sync that dies half-way is finished by the next one.
            force = kb.settings != settings
            await self.store.update_kb(
                tenant_id,
                spec.name,
                description=spec.description,
                settings={**settings, "reingest_pending": True} if force else settings,
            )
            log.info("knowledge %s: %s changed%s", kb.name, KB_FILE, ", re-ingesting" * force)
        reports = await self.ingest_path(
            tenant_id, spec.name, directory, delete_missing=True, force=force
        )
        if force:
            await self.store.update_kb(tenant_id, spec.name, settings=settings)
        return reports


def _passages(parsed: ParsedDocument, spec: ChunkSpec) -> tuple[list[str], list[list[str]]]:
    """The document's passages as they are indexed (section path, then body), with
    their headings; the same passage twice in one document is indexed once."""
    texts: list[str] = []
    headings: list[list[str]] = []
    seen: set[str] = set()
    for piece in chunk_document(parsed, spec):
        body = piece.contextual_text(parsed.title)
        h = sha256(body.encode("utf-8"))
        if h in seen:
            continue
        seen.add(h)
        texts.append(body)
        headings.append(list(piece.headings))
    return texts, headings


def _list_files(path: Path) -> tuple[list[Path], Path, bool]:
    """The supported files at `path` (a file or a directory tree), their root, is_dir."""
    path = path.expanduser()
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and supported(p)), path, True
    if path.is_file():
        return [path], path.parent, False
    raise KnowledgeError(f"{path}: no such file or directory")


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict) or value is None
