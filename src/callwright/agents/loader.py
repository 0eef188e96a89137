"""Reading agent configs from YAML or JSON files, with errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from callwright.agents.config import AgentConfig


class AgentConfigError(ValueError):
    """A config file that cannot be used; the message lists every problem by field."""


def _format(errors: list[dict[str, Any]]) -> str:
    lines = []
    for err in errors:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def parse_agent(data: Any, source: str = "<config>") -> AgentConfig:
    if not isinstance(data, dict):
        raise AgentConfigError(
            f"{source}: an agent config must be a mapping, not {type(data).__name__}"
        )
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise AgentConfigError(f"{source}: invalid agent config\n{_format(exc.errors())}") from None  # type: ignore[arg-type]


def load_agent_file(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgentConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise AgentConfigError(
            f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"
        ) from None
    return parse_agent(data, str(path))


def load_agent_dir(directory: str | Path) -> dict[str, AgentConfig]:
    """Every *.yaml / *.yml / *.json agent in a directory, keyed by agent_id."""
    agents: dict[str, AgentConfig] = {}
    for path in sorted(Path(directory).glob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        agent = load_agent_file(path)
        if agent.agent_id in agents:
            raise AgentConfigError(f"{path}: duplicate agent_id {agent.agent_id!r}")
        agents[agent.agent_id] = agent
    return agents
