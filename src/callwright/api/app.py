"""The ASGI application: REST API, voice WebSocket and web page in one process."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from callwright import __version__
from callwright.actions.builtin import server_tool_names
from callwright.actions.modules import load_tool_modules
from callwright.actions.tools import DEFAULT_REGISTRY
from callwright.actions.webhooks import WebhookPolicy, load_webhook_tools
from callwright.agents.checks import check_agents
from callwright.agents.config import AgentConfig
from callwright.agents.loader import load_agent_dir
from callwright.api import knowledge_routes, routes
from callwright.api.settings import ServerSettings
from callwright.engines.registry import EngineHub
from callwright.knowledge.fetch import FetchPolicy
from callwright.knowledge.service import KnowledgeService
from callwright.sessions.runtime import CallRuntime
from callwright.storage.db import Database
from callwright.storage.models import DEFAULT_TENANT_ID
from callwright.storage.recordings import LocalRecordingStore
from callwright.transports.websocket import serve_voice_websocket

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def _tune_for_serving() -> None:
    """Once everything is loaded: the collector and the loop set up for real-time calls."""
    # Everything loaded so far lives as long as the process: keep it out of the
    # collector's scans, and collect the young generation less often. Measured at
    # 70 calls: full collections of the start-up heap paused every call for
    # up to 160 ms, longer than the pacer's 80 ms lead.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    slow_ms = os.environ.get("CALLWRIGHT_SLOW_CALLBACK_MS")
    if slow_ms:  # diagnosis: log every loop step that blocks longer than this
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = float(slow_ms) / 1000


def load_tools(settings: ServerSettings) -> None:
    """The installation's tools, before the agents that list them are checked: Python
    tool modules, then webhook tools (idempotent: `serve` checks before the app starts)."""
    load_tool_modules(settings.tool_modules)
    policy = WebhookPolicy(
        allow_private=settings.tools_allow_private,
        private_hosts=frozenset(settings.tools_private_hosts),
    )
    load_webhook_tools(settings.tools_dir, DEFAULT_REGISTRY, policy=policy)


def create_app(
    settings: ServerSettings | None = None, agents: dict[str, AgentConfig] | None = None
) -> FastAPI:
    settings = settings or ServerSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = agents if agents is not None else load_agent_dir(settings.agents_dir)
        load_tools(settings)
        # before any work: a misspelt engine or tool fails at once
        check_agents(catalog, server_tool_names())
        db = Database(settings.resolved_database_url())
        await db.migrate()
        recordings = (
            LocalRecordingStore(settings.data_dir / "recordings") if settings.record else None
        )
        default = settings.default_agent if settings.default_agent in catalog else None
        hub = EngineHub()
        knowledge = KnowledgeService(
            db, hub, fetch_policy=FetchPolicy(allow_private=settings.fetch_allow_private)
        )
        await knowledge.start()
        if settings.knowledge_dir is not None:
            await knowledge.sync_root(DEFAULT_TENANT_ID, settings.knowledge_dir)
        runtime = CallRuntime(
            catalog,
            hub,
            db=db,
            recordings=recordings,
            default_agent=default,
            knowledge=knowledge,
        )
        app.state.runtime = runtime
        app.state.ready = False
        await runtime.start(preload=settings.preload)
        _tune_for_serving()
        app.state.ready = True
        log.info("Callwright %s ready with agents %s", __version__, sorted(catalog))
        try:
            yield
        finally:
            app.state.ready = False
            await knowledge.aclose()
            await runtime.aclose()
            await runtime.hub.aclose()
            await db.aclose()

    app = FastAPI(
        title="Callwright",
        version=__version__,
        lifespan=lifespan,
        description="Self-hostable conversational voice AI. Voice protocol: "
        "WebSocket /v1/voice (docs/protocol.md).",
    )
    # the widget is embedded on other sites: they fetch its script and audio worklets
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET"],
        allow_headers=["*"],
    )
    app.include_router(routes.router)
    app.include_router(knowledge_routes.router)

    @app.websocket("/v1/voice")
    async def voice(ws: WebSocket) -> None:
        await serve_voice_websocket(ws, ws.app.state.runtime)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
