"""REST endpoints for knowledge bases: create, list, delete, ingest (as jobs), search.

Documents are uploaded as the raw request body (`curl --data-binary @file.pdf`), with
their type in Content-Type and their name in `?source=`; a JSON body `{"url": ...}`
ingests a URL instead. Either way the answer is a job to poll, because parsing and
embedding a long PDF takes longer than a request should.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from callwright.api.routes import _plain
from callwright.knowledge.parsers import SUPPORTED_SUFFIXES, DocumentError, detect_mime
from callwright.knowledge.search import SearchParams
from callwright.knowledge.service import KnowledgeService
from callwright.knowledge.types import KnowledgeBaseExists, KnowledgeError

router = APIRouter(tags=["knowledge"])
DEFAULT_TENANT = "default"  # until API keys pick the tenant
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class CreateKnowledgeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    description: str = ""
    access_tags: list[str] = Field(default_factory=lambda: ["public"], min_length=1)


class IngestUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2048)
    access_tags: list[str] | None = None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    min_score: float | None = Field(None, ge=-1, le=1)
    access_tags: list[str] = Field(
        default_factory=lambda: ["public"],
        description="search as a reader with these tags (default: what callers may read)",
    )


def _service(request: Request) -> KnowledgeService:
    runtime = getattr(request.app.state, "runtime", None)
    service: KnowledgeService | None = getattr(runtime, "knowledge", None)
    if service is None:
        raise HTTPException(503, "knowledge is not available (server starting?)")
    return service


async def _kb(service: KnowledgeService, name: str) -> Any:
    kb = await service.store.get_kb(DEFAULT_TENANT, name)
    if kb is None:
        raise HTTPException(404, f"no knowledge base {name!r}")
    return kb


@router.get("/v1/knowledge-bases")
async def list_knowledge_bases(request: Request) -> list[dict[str, Any]]:
    return [_plain(kb) for kb in await _service(request).store.list_kbs(DEFAULT_TENANT)]


@router.post("/v1/knowledge-bases", status_code=201)
async def create_knowledge_base(body: CreateKnowledgeBase, request: Request) -> dict[str, Any]:
    service = _service(request)
    ingestor = await service.ingestor()
    if await service.store.get_kb(DEFAULT_TENANT, body.name) is not None:
        raise HTTPException(409, f"knowledge base {body.name!r} already exists")
    try:
        kb = await ingestor.ensure_kb(
            DEFAULT_TENANT,
            body.name,
            description=body.description,
            settings={"access_tags": body.access_tags},
        )
    except KnowledgeBaseExists as exc:
        raise HTTPException(409, str(exc)) from None
    return dict(_plain(kb))


@router.get("/v1/knowledge-bases/{name}")
async def get_knowledge_base(name: str, request: Request) -> dict[str, Any]:
    return dict(_plain(await _kb(_service(request), name)))


@router.delete("/v1/knowledge-bases/{name}", status_code=204)
async def delete_knowledge_base(name: str, request: Request) -> Response:
    service = _service(request)
    if not await service.store.delete_kb(DEFAULT_TENANT, name):
        raise HTTPException(404, f"no knowledge base {name!r}")
    service.search.forget(DEFAULT_TENANT, name)
    return Response(status_code=204)


@router.get("/v1/knowledge-bases/{name}/documents")
async def list_documents(name: str, request: Request) -> list[dict[str, Any]]:
    service = _service(request)
    kb = await _kb(service, name)
    return [_plain(d) for d in await service.store.list_documents(DEFAULT_TENANT, kb.id)]


@router.delete("/v1/knowledge-bases/{name}/documents/{document_id}", status_code=204)
async def delete_document(name: str, document_id: int, request: Request) -> Response:
    service = _service(request)
    kb = await _kb(service, name)
    if not await service.store.delete_document(DEFAULT_TENANT, kb.id, document_id):
        raise HTTPException(404, f"no document {document_id} in {name!r}")
    return Response(status_code=204)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"document is {declared} bytes; the limit is {limit}")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise HTTPException(413, f"document is over the {limit}-byte limit")
        parts.append(part)
    return b"".join(parts)


@router.post(
    "/v1/knowledge-bases/{name}/documents",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": IngestUrl.model_json_schema()},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def ingest_document(
    name: str,
    request: Request,
    source: str | None = Query(None, max_length=2048, description="document name (uploads)"),
    tag: list[str] | None = Query(None, description="access tags (default: the kb's)"),
) -> dict[str, Any]:
    """Queue an ingest: a raw document upload, or `{"url": ...}` as JSON. Poll the job."""
    service = _service(request)
    await _kb(service, name)
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.split(";")[0].strip() == "application/json":
            body = IngestUrl.model_validate_json(await _read_limited(request, 64 * 1024))
            if not body.url.startswith(("http://", "https://")):
                raise HTTPException(422, "url must be http:// or https://")
            job = await service.jobs.submit(
                DEFAULT_TENANT, name, body.url, access_tags=body.access_tags or tag
            )
        else:
            if not source:
                raise HTTPException(422, "uploads need ?source=NAME (e.g. ?source=prices.pdf)")
            data = await _read_limited(request, MAX_UPLOAD_BYTES)
            if not data:
                raise HTTPException(422, "empty document")
            generic = content_type in ("", "application/octet-stream")
            try:  # refuse what cannot be parsed now, not in the job
                detect_mime(source, None if generic else content_type, data)
            except DocumentError as exc:
                raise HTTPException(
                    415, f"{exc} (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
                ) from None
            job = await service.jobs.submit(
                DEFAULT_TENANT,
                name,
                source,
                data=data,
                filename=source,
                content_type=None if generic else content_type,
                access_tags=tag,
            )
    except KnowledgeError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError as exc:  # pydantic validation of the JSON body
        raise HTTPException(422, str(exc)) from None
    return dict(_plain(job))


@router.get("/v1/knowledge-jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    job = await _service(request).jobs.get(DEFAULT_TENANT, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return dict(_plain(job))


@router.post("/v1/knowledge-bases/{name}/search")
async def search(name: str, body: SearchRequest, request: Request) -> dict[str, Any]:
    """Search as an agent would; scores and sources included, for debugging retrieval."""
    service = _service(request)
    kb = await _kb(service, name)
    for engine in service.search.embedders.values():
        if engine.model_id == kb.embedder:
            break
    else:
        await service.embedder()
    try:
        result = await service.search.search(
            DEFAULT_TENANT,
            [name],
            body.query,
            access_tags=frozenset(body.access_tags),
            params=SearchParams(
                top_k=body.top_k,
                candidates=max(20, body.top_k),
                mode=body.mode,
                min_score=body.min_score,
            ),
        )
    except KnowledgeError as exc:
        raise HTTPException(422, str(exc)) from None
    return {
        "query": body.query,
        "hits": [h.to_dict() for h in result.hits],
        "dropped": result.dropped,
        "timings_ms": result.timings_ms,
    }
