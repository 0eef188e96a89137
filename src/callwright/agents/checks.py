"""An agent config checked against this installation: are its engines and tools known?

The pydantic model (`config.py`) checks a file's shape; this checks it against the
engine registry, which an installation may extend (its own engines registered before
the agents are loaded). A misspelt engine used to pass `callwright agents validate`
and fail only at `serve` (or, for the TTS, be replaced by the fallback voice with a
warning in the log); now both `agents validate` and the server's start refuse it,
naming the field.
"""

from __future__ import annotations

from collections.abc import Collection

from callwright.agents.config import AgentConfig
from callwright.engines.registry import known_engines


def engine_problems(agent: AgentConfig) -> list[str]:
    """One line per engine the agent names that this installation does not have."""
    known = known_engines()
    problems = []
    for field, kind, ref in agent.engines.refs():
        if (kind, ref.name) not in known:
            names = sorted(n for k, n in known if k == kind)
            problems.append(
                f"engines.{field}.name: unknown {kind} engine {ref.name!r}; known: {names}"
            )
    return problems


def tool_problems(agent: AgentConfig, known_tools: Collection[str]) -> list[str]:
    """One line per tool the agent lists that is not registered (`actions.tools`; the
    caller passes the names, this layer does not import the actions layer)."""
    known = sorted(known_tools)
    return [
        f"tools[{i}]: unknown tool {name!r}; registered: {known}"
        for i, name in enumerate(agent.tools)
        if name not in known_tools
    ]


def agent_problems(agent: AgentConfig, known_tools: Collection[str]) -> list[str]:
    return [*engine_problems(agent), *tool_problems(agent, known_tools)]


def check_agents(agents: dict[str, AgentConfig], known_tools: Collection[str]) -> None:
    """Raise `AgentConfigError` naming every unknown engine and tool of every agent."""
    from callwright.agents.loader import AgentConfigError

    problems = [
        f"  agent {agent.agent_id!r}: {problem}"
        for agent in agents.values()
        for problem in agent_problems(agent, known_tools)
    ]
    if problems:
        raise AgentConfigError("invalid agent configs\n" + "\n".join(problems))
