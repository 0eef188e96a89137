"""The real server (uvicorn, FastAPI, storage) in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from callwright.api.app import create_app
from callwright.api.settings import ServerSettings

from .servers import free_port

# An agent on zero-cost engines: scripted ASR/LLM/TTS and the energy VAD, no idle timers.
ECHO_AGENT = """
agent_id: echo
agent_name: Echo test agent
prompts: {system: You are a test agent.}
greeting: Hi there.
engines:
  asr: {name: scripted, options: {text: "what are your opening hours", words_per_sec: 20}}
  llm: {name: scripted, options: {reply: "You asked: {user}. We open at nine."}}
  tts: {name: scripted, options: {sample_rate: 22050}}
  vad: {name: energy}
  tts_fallback: null
turn_taking: {idle_reprompt_secs: null, idle_hangup_secs: null, interruption_min_secs: 0.4}
"""


@dataclass
class Server:
    base: str
    ws: str
    app: object
    data_dir: Path


@contextlib.asynccontextmanager
async def run_server(
    tmp_path: Path, agents: dict[str, str], default_agent: str, **settings: Any
) -> AsyncIterator[Server]:
    """The real server on a free port, with these agent files (name -> YAML)."""
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir(exist_ok=True)
    for name, text in agents.items():
        (agents_dir / f"{name}.yaml").write_text(text)
    port = free_port()
    config = ServerSettings(
        port=port,
        agents_dir=agents_dir,
        data_dir=tmp_path / "data",
        default_agent=default_agent,
        **settings,
    )
    app = create_app(config)
    srv = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws="websockets-sansio",
            lifespan="on",
        )
    )
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        assert not task.done(), "server failed to start"
        await asyncio.sleep(0.02)
    try:
        yield Server(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/voice", app, tmp_path / "data"
        )
    finally:
        srv.should_exit = True
        await task
