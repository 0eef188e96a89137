"""Fixtures of the session runtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callwright.storage.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database of the test's own."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    await db.migrate()
    try:
        yield db
    finally:
        await db.aclose()
