"""An agent config checked against this installation: are the engines it names known?

The pydantic model (`config.py`) checks a file's shape; this checks it against the
engine registry, which an installation may extend (its own engines registered before
the agents are loaded). A misspelt engine used to pass `callwright agents validate`
and fail only at `serve` (or, for the TTS, be replaced by the fallback voice with a
warning in the log); now both `agents validate` and the server's start refuse it,
naming the field.
"""

from __future__ import annotations

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


def check_agents(agents: dict[str, AgentConfig]) -> None:
    """Raise `AgentConfigError` naming every unknown engine of every agent."""
    from callwright.agents.loader import AgentConfigError

    problems = [
        f"  agent {agent.agent_id!r}: {problem}"
        for agent in agents.values()
        for problem in engine_problems(agent)
    ]
    if problems:
        raise AgentConfigError("invalid agent configs\n" + "\n".join(problems))
