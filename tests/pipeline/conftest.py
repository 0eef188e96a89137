"""Pipeline tests run in virtual time, except those marked `realtime` (smoke tests of
the same behaviour on the ordinary event loop)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pytest

from tests.helpers.virtual_time import VirtualTimeLoop
from tests.helpers.voice_session import Harness, build_session


def pytest_asyncio_loop_factories(config: Any, item: pytest.Item) -> Mapping[str, Any]:
    if item.get_closest_marker("realtime") is not None:
        return {"realtime": asyncio.new_event_loop}
    return {"virtual": VirtualTimeLoop}


@pytest.fixture
async def make_session():
    harnesses: list[Harness] = []

    async def factory(**options: Any) -> Harness:
        session, out = build_session(**options)
        h = Harness(session, out)
        await h.start()
        harnesses.append(h)
        return h

    yield factory
    for h in harnesses:
        if h.task and not h.task.done():
            h.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await h.task
