"""REST endpoints: health, agents, calls, turns with their latency, recordings."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from callwright.sessions.runtime import CallRuntime
from callwright.storage.calls import CallRepository

router = APIRouter()

# Embedded mode has one tenant; API keys that pick the tenant arrive with the platform layer.
DEFAULT_TENANT = "default"


def _runtime(request: Request) -> CallRuntime:
    runtime: CallRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(503, "server is starting")
    return runtime


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return obj


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Engines are loaded and storage is migrated: the server can take calls."""
    ready = bool(getattr(request.app.state, "ready", False))
    runtime: CallRuntime | None = getattr(request.app.state, "runtime", None)
    body = {
        "status": "ready" if ready else "starting",
        "active_calls": len(runtime.active) if runtime else 0,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v1/agents", tags=["agents"])
async def list_agents(request: Request) -> list[dict[str, Any]]:
    runtime = _runtime(request)
    return [
        {
            "agent_id": a.agent_id,
            "agent_name": a.agent_name,
            "description": a.description,
            "language": a.language,
            "version": runtime.versions.get(a.agent_id, 1),
            "default": a.agent_id == runtime.default_agent,
        }
        for a in runtime.agents.values()
    ]


@router.get("/v1/agents/{agent_id}", tags=["agents"])
async def get_agent(agent_id: str, request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    agent = runtime.agents.get(agent_id)
    if agent is None:
        raise HTTPException(404, f"no agent {agent_id!r}")
    return {"version": runtime.versions.get(agent_id, 1), "config": agent.model_dump(mode="json")}


@router.get("/v1/calls", tags=["calls"])
async def list_calls(
    request: Request,
    agent_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> list[dict[str, Any]]:
    runtime = _runtime(request)
    if runtime.db is None:
        return []
    calls = await CallRepository(runtime.db).list_calls(
        DEFAULT_TENANT, limit=limit, offset=offset, agent_id=agent_id
    )
    return [_plain(c) for c in calls]


@router.get("/v1/calls/{call_id}", tags=["calls"])
async def get_call(call_id: str, request: Request) -> dict[str, Any]:
    """One call with its turns; each agent turn carries its latency breakdown (ms)."""
    runtime = _runtime(request)
    if runtime.db is None:
        raise HTTPException(404, "no storage configured")
    call = await CallRepository(runtime.db).get_call(DEFAULT_TENANT, call_id)
    if call is None:
        raise HTTPException(404, f"no call {call_id!r}")
    body: dict[str, Any] = _plain(call)
    body["active"] = call_id in runtime.active
    return body


@router.get("/v1/calls/{call_id}/events", tags=["calls"])
async def get_call_events(
    call_id: str,
    request: Request,
    type: Annotated[
        list[str] | None, Query(description="only these event types, e.g. tool_audit")
    ] = None,
) -> list[dict[str, Any]]:
    """The call's timeline: transcripts, interruptions, metrics, errors, and one
    `tool_audit` record per tool call (allowed or refused, arguments redacted)."""
    runtime = _runtime(request)
    if runtime.db is None:
        raise HTTPException(404, "no storage configured")
    repo = CallRepository(runtime.db)
    if await repo.get_call(DEFAULT_TENANT, call_id) is None:
        raise HTTPException(404, f"no call {call_id!r}")
    events = await repo.list_events(DEFAULT_TENANT, call_id, type)
    return [{"type": e.type, "at": e.at.isoformat(), "payload": e.payload} for e in events]


@router.get(
    "/v1/calls/{call_id}/recording", tags=["calls"], responses={200: {"content": {"audio/wav": {}}}}
)
async def get_recording(call_id: str, request: Request) -> Response:
    """The call's stereo WAV: caller on the left channel, agent on the right."""
    runtime = _runtime(request)
    if runtime.db is None or runtime.recordings is None:
        raise HTTPException(404, "recordings are not enabled")
    call = await CallRepository(runtime.db).get_call(DEFAULT_TENANT, call_id)
    if call is None:
        raise HTTPException(404, f"no call {call_id!r}")
    uri = call.recording_uri
    if not uri:
        raise HTTPException(404, "this call has no recording (still active, or not recorded)")
    return Response(await runtime.recordings.open(uri), media_type="audio/wav")
