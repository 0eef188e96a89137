"""The real server (uvicorn, FastAPI, storage) in the test's event loop, on zero-cost engines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers.app_server import ECHO_AGENT, Server, run_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with run_server(tmp_path, {"echo": ECHO_AGENT}, "echo") as srv:
        yield srv
