"""Server settings, from the command line or CALLWRIGHT_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# comma-separated in the environment
_LISTS = ("cors_origins", "tool_modules", "tools_private_hosts")


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = Field(None, description="default: SQLite in data_dir")
    agents_dir: Path = Path("agents")
    knowledge_dir: Path | None = Field(
        None, description="each subdirectory is a knowledge base, synced at start"
    )
    fetch_allow_private: bool = Field(
        False, description="let URL ingestion reach private and loopback addresses"
    )
    default_agent: str | None = "clinic-receptionist"
    preload: bool = Field(True, description="load every agent's engines before serving")
    record: bool = True
    cors_origins: list[str] = Field(["*"], description="origins that may embed the widget")
    tool_modules: list[str] = Field(
        default_factory=list, description="Python modules that register the agents' tools"
    )
    tools_dir: Path = Field(Path("tools"), description="webhook tools, one YAML file each")
    tools_allow_private: bool = Field(
        False, description="let webhook tools reach private and loopback addresses"
    )
    tools_private_hosts: list[str] = Field(
        default_factory=list, description="hosts webhook tools may reach on private addresses"
    )

    @classmethod
    def from_env(cls, **overrides: object) -> ServerSettings:
        values: dict[str, object] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"CALLWRIGHT_{name.upper()}")
            if env is not None:
                values[name] = env.split(",") if name in _LISTS else env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'callwright.db').resolve()}"
