"""Database construction: URLs, the embedded SQLite settings, migrating from anywhere."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from callwright.storage.db import (
    MIGRATIONS_DIR,
    Database,
    alembic_config,
    default_data_dir,
    default_database_url,
    normalize_url,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////var/x.db", "sqlite+aiosqlite:////var/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_default_data_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLWRIGHT_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert default_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/callwright.db"


def test_migrations_ship_with_the_package() -> None:
    # pyproject's package-data globs must cover these for an installed package to migrate.
    for name in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert (MIGRATIONS_DIR / name).is_file(), name


async def test_embedded_sqlite_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from an unrelated directory: nothing may depend on the working directory.
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "nested" / "data"
    async with Database(data_dir=data_dir) as db:
        assert db.is_sqlite
        await db.migrate()
        assert (data_dir / "callwright.db").is_file()
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000


async def test_in_memory_sqlite_keeps_one_database() -> None:
    async with Database("sqlite+aiosqlite://") as db:
        await db.migrate()
        assert await db.current_revision() == "0003"


def test_repr_hides_password() -> None:
    db = Database("postgresql://user:secret@127.0.0.1/x")
    assert "secret" not in repr(db)
    assert db.dialect == "postgresql"


def test_alembic_commands_with_a_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Operators can drive Alembic themselves: SQL scripts offline, or upgrade by URL."""
    command.upgrade(alembic_config(url="postgresql://u@h/db"), "head", sql=True)
    assert "CREATE TABLE turns" in capsys.readouterr().out

    path = tmp_path / "sub" / "cli.db"
    command.upgrade(alembic_config(url=f"sqlite:///{path}"), "head")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]
        assert conn.execute("SELECT name FROM tenants").fetchall() == [("Default tenant",)]
