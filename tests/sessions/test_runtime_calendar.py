"""With a database, the runtime offers the built-in calendar tools, so an agent can list them."""

from __future__ import annotations

import pytest

from callwright.actions.calendar import CALENDAR_TOOL_NAMES
from callwright.actions.tools import ToolRegistry
from callwright.agents.loader import AgentConfigError, load_agent_file, parse_agent
from callwright.engines.registry import EngineHub
from callwright.sessions.runtime import CallRuntime
from callwright.storage.db import Database
from tests.helpers.system import REPO


def _agent_with_calendar() -> dict[str, object]:
    data = load_agent_file(REPO / "agents" / "zero-cost.yaml").model_dump(mode="json")
    data["tools"] = ["calendar_availability", "calendar_book"]
    return data


async def test_start_registers_the_calendar_tools_with_a_database(db: Database) -> None:
    agent = parse_agent(_agent_with_calendar())
    tools = ToolRegistry()
    runtime = CallRuntime({agent.agent_id: agent}, EngineHub(), db=db, tools=tools)
    await runtime.start(preload=False)
    await runtime.start(preload=False)  # a second start registers nothing twice
    assert set(CALENDAR_TOOL_NAMES) <= set(runtime.tools.known())
    assert tools.known() == []  # on the runtime's own registry: the one given is unchanged
    await runtime.aclose()


async def test_without_a_database_there_is_no_calendar() -> None:
    agent = parse_agent(_agent_with_calendar())
    tools = ToolRegistry()
    runtime = CallRuntime({agent.agent_id: agent}, EngineHub(), tools=tools)
    with pytest.raises(AgentConfigError, match="calendar_availability"):
        await runtime.start(preload=False)
    assert tools.known() == []
