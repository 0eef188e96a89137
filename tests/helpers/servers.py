"""`callwright serve` in a subprocess, for tests that talk to it like a client does."""

from __future__ import annotations

from pathlib import Path

from callwright.client import server_process
from callwright.client.server_process import free_port

from .system import REPO

__all__ = ["ServerProcess", "free_port"]


class ServerProcess(server_process.ServerProcess):
    """Started from the repository root, as the tests' agents and data paths expect."""

    def __init__(
        self,
        agents_dir: Path,
        data_dir: Path,
        *,
        default_agent: str | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        super().__init__(
            agents_dir,
            data_dir,
            default_agent=default_agent,
            startup_timeout=startup_timeout,
            cwd=REPO,
        )
