"""The `callwright` command: serve, call, agents validate, doctor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Callwright: self-hostable conversational voice AI.", no_args_is_help=True)
agents_app = typer.Typer(help="Agent configs.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
DEFAULT_KNOWLEDGE_DIR = Path("knowledge")


def _knowledge_dir(option: Path | None) -> Path | None:
    """The option, else $CALLWRIGHT_KNOWLEDGE_DIR (read by the settings), else ./knowledge."""
    import os

    if option is not None or os.environ.get("CALLWRIGHT_KNOWLEDGE_DIR"):
        return option
    return DEFAULT_KNOWLEDGE_DIR if DEFAULT_KNOWLEDGE_DIR.is_dir() else None


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    agents_dir: Annotated[Path | None, typer.Option(help="directory of agent YAML/JSON")] = None,
    knowledge_dir: Annotated[
        Path | None, typer.Option(help="knowledge bases to sync at start (default ./knowledge)")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="database and recordings")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL (default SQLite)")
    ] = None,
    default_agent: Annotated[str | None, typer.Option(help="agent used when none is named")] = None,
    tool_module: Annotated[
        list[str] | None,
        typer.Option(
            help="a Python module that registers tools (repeatable; docs/tools-and-flows.md)"
        ),
    ] = None,
    tools_dir: Annotated[
        Path | None, typer.Option(help="webhook tools, *.yaml (default ./tools)")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the server: REST API, voice WebSocket and web page."""
    import uvicorn

    from callwright.actions.builtin import server_tool_names
    from callwright.actions.modules import ToolModuleError
    from callwright.actions.sms import SmsConfigError
    from callwright.actions.webhooks import WebhookConfigError
    from callwright.agents.checks import check_agents
    from callwright.agents.loader import AgentConfigError, load_agent_dir
    from callwright.api.app import create_app, load_tools
    from callwright.api.settings import ServerSettings

    _logging(verbose)
    settings = ServerSettings.from_env(
        host=host,
        port=port,
        agents_dir=agents_dir,
        knowledge_dir=_knowledge_dir(knowledge_dir),
        data_dir=data_dir,
        database_url=database_url,
        default_agent=default_agent,
        tool_modules=tool_module or None,
        tools_dir=tools_dir,
    )
    try:  # a broken agent config is said plainly, before the server starts
        load_tools(settings)
        check_agents(load_agent_dir(settings.agents_dir), server_tool_names())
    except (AgentConfigError, ToolModuleError, WebhookConfigError, SmsConfigError) as exc:
        typer.echo(f"callwright serve: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        ws="websockets-sansio",
        ws_max_size=1 << 20,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _inprocess_server(
    agents_dir: Path, data_dir: Path, knowledge_dir: Path | None = None
) -> AsyncIterator[str]:
    """Run the real server in this process, on a free loopback port."""
    import uvicorn

    from callwright.api.app import create_app
    from callwright.api.settings import ServerSettings

    port = _free_port()
    settings = ServerSettings.from_env(
        port=port, agents_dir=agents_dir, data_dir=data_dir, knowledge_dir=knowledge_dir
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the in-process server stopped during start-up")
        await asyncio.sleep(0.05)
    try:
        yield f"ws://127.0.0.1:{port}/v1/voice"
    finally:
        server.should_exit = True
        await task


@app.command()
def call(
    wav: Annotated[
        list[str],
        typer.Option(
            help="caller utterance WAV; FILE@SECS starts it "
            "SECS into the agent's reply (barge-in); repeat "
            "for several turns"
        ),
    ],
    out: Annotated[Path, typer.Option(help="writes transcript.json, agent.wav, caller.wav")],
    agent: Annotated[str | None, typer.Option(help="agent id (default: the demo agent)")] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="ws://host:port/v1/voice of a running server; default: start one in-process"
        ),
    ] = None,
    agents_dir: Annotated[Path, typer.Option(help="agents for the in-process server")] = Path(
        "agents"
    ),
    data_dir: Annotated[Path, typer.Option(help="data for the in-process server")] = Path("data"),
    knowledge_dir: Annotated[
        Path | None, typer.Option(help="knowledge for the in-process server (default ./knowledge)")
    ] = None,
    reply_timeout: Annotated[float, typer.Option(help="seconds to wait for each reply")] = 30.0,
    tail: Annotated[float, typer.Option(help="silence streamed after the last reply")] = 1.5,
) -> None:
    """Call an agent as a simulated caller streaming WAV files in real time."""
    from callwright.client.caller import SimulatedCaller, Utterance

    utterances = [Utterance.parse(w) for w in wav]
    for u in utterances:
        if not u.path.is_file():
            raise typer.BadParameter(f"no such file: {u.path}", param_hint="--wav")

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            target = url
            if target is None:
                target = await stack.enter_async_context(
                    _inprocess_server(agents_dir, data_dir, _knowledge_dir(knowledge_dir))
                )
            caller = SimulatedCaller(
                target, utterances, agent_id=agent, reply_timeout=reply_timeout, tail_secs=tail
            )
            result = await caller.run()
            caller.save(out)
        for turn in result.turns():
            who = "caller" if turn["role"] == "user" else "agent "
            cut = " [interrupted]" if turn.get("interrupted") else ""
            lat = (turn.get("metrics") or {}).get("voice_to_voice_ms")
            extra = f"  ({lat:.0f} ms)" if lat is not None else ""
            typer.echo(f"{who}: {turn['text']}{cut}{extra}")
        typer.echo(f"call {result.call_id} ended ({result.end_reason}); wrote {out}/")

    asyncio.run(main())


@agents_app.command("validate")
def agents_validate(
    files: Annotated[list[Path], typer.Argument(help="agent YAML/JSON files")],
    tool_module: Annotated[
        list[str] | None,
        typer.Option(help="a Python module that registers tools (also $CALLWRIGHT_TOOL_MODULES)"),
    ] = None,
    tools_dir: Annotated[
        Path | None,
        typer.Option(help="webhook tools, *.yaml (also $CALLWRIGHT_TOOLS_DIR; default ./tools)"),
    ] = None,
) -> None:
    """Check agent configs; errors name the field."""
    from callwright.actions.builtin import server_tool_names
    from callwright.actions.modules import ToolModuleError, load_tool_modules, tool_modules
    from callwright.actions.tools import DEFAULT_REGISTRY
    from callwright.actions.webhooks import (
        WebhookConfigError,
        WebhookPolicy,
        load_webhook_tools,
        webhook_tools_dir,
    )
    from callwright.agents.checks import agent_problems
    from callwright.agents.loader import AgentConfigError, load_agent_file

    try:
        load_tool_modules(tool_modules(tool_module or ()))
        # the address policy matters only when a tool runs, not for validation
        load_webhook_tools(webhook_tools_dir(tools_dir), DEFAULT_REGISTRY, policy=WebhookPolicy())
    except (ToolModuleError, WebhookConfigError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    failed = False
    for path in files:
        try:
            agent = load_agent_file(path)
        except AgentConfigError as exc:
            failed = True
            typer.echo(str(exc), err=True)
            continue
        problems = agent_problems(agent, server_tool_names())
        if problems:
            failed = True
            lines = "\n".join(f"  {p}" for p in problems)
            typer.echo(f"{path}: invalid agent config\n{lines}", err=True)
            continue
        typer.echo(f"{path}: ok ({agent.agent_id}: {agent.agent_name})")
    raise typer.Exit(1 if failed else 0)


@app.command()
def doctor(
    agents_dir: Annotated[Path, typer.Option(help="agents whose engines to check")] = Path(
        "agents"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Load every engine the agents use and report what works and how long it took."""
    from callwright.agents.loader import load_agent_dir
    from callwright.engines.registry import EngineHub, LoadReport

    agents = load_agent_dir(agents_dir)
    wanted: dict[tuple[str, str, str], tuple[str, str, dict[str, object]]] = {}
    for a in agents.values():
        refs = [
            ("asr", a.engines.asr),
            ("llm", a.engines.llm),
            ("tts", a.engines.tts),
            ("vad", a.engines.vad),
        ]
        if a.engines.tts_fallback:
            refs.append(("tts", a.engines.tts_fallback))
        if a.knowledge_sources and a.knowledge.mode != "off":
            refs.append(("embed", a.engines.embed))
        for kind, ref in refs:
            key = (kind, ref.name, json.dumps(ref.options, sort_keys=True))
            wanted[key] = (kind, ref.name, ref.options)

    async def main() -> list[LoadReport]:
        hub = EngineHub()
        reports = [await hub.probe(kind, name, opts) for kind, name, opts in wanted.values()]
        await hub.aclose()
        return reports

    reports = asyncio.run(main())
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "kind": r.kind,
                        "name": r.name,
                        "ok": r.ok,
                        "seconds": round(r.seconds, 3),
                        "error": r.error,
                    }
                    for r in reports
                ],
                indent=2,
            )
        )
    else:
        for r in reports:
            status = "ok  " if r.ok else "FAIL"
            typer.echo(
                f"{status} {r.kind:4} {r.name:10} {r.seconds:6.2f} s"
                + (f"  {r.error}" if r.error else "")
            )
    if not all(r.ok for r in reports):
        sys.exit(1)


from callwright.kb_cli import kb_app  # noqa: E402  (the `kb` commands)

app.add_typer(kb_app, name="kb")

if __name__ == "__main__":
    app()
