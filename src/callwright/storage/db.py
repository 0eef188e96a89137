"""The database handle: one async engine and session factory per process.

Embedded mode needs no server: a SQLite file in the data directory, in WAL mode so the
API can read call history while live calls write to it. Hosted mode points the same code
at PostgreSQL through asyncpg. The schema is brought up to date by Alembic, driven from
code, so an installed package migrates itself with no alembic.ini on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DB_FILENAME = "callwright.db"
# Any constant works; it only has to be the same in every process migrating one database.
_MIGRATION_LOCK_KEY = 0x43414C4C  # "CALL"


def default_data_dir() -> Path:
    """$CALLWRIGHT_DATA_DIR, else $XDG_DATA_HOME/callwright, else ~/.local/share/callwright."""
    if env := os.environ.get("CALLWRIGHT_DATA_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "callwright"


def default_database_url(data_dir: str | Path | None = None) -> str:
    """The embedded SQLite database inside the data directory."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return f"sqlite+aiosqlite:///{root.expanduser().resolve() / DB_FILENAME}"


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`, `sqlite:///`) and
    select the async drivers this package ships with."""
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql") and driver in ("", "psycopg2", "asyncpg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite" and driver in ("", "pysqlite", "aiosqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # foreign_keys is per connection and off by default: without it ON DELETE CASCADE and
    # the tenant foreign keys are silently ignored. WAL lets readers run beside a writer;
    # busy_timeout makes a second writer wait instead of failing with "database is locked".
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic settings built in code, pointing at the migrations inside the package.

    With `connection`, migrations run on it (inside the caller's transaction); with only
    `url`, env.py opens its own engine.
    """
    cfg = Config()
    # configparser interpolation: a literal % in a path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


class Database:
    """Async engine + session factory for one database URL.

    `url=None` means the embedded SQLite file under `data_dir` (default:
    `default_data_dir()`). Sessions come from `db.sessions()`; they do not expire
    objects on commit, so values read before a commit stay usable after it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        data_dir: str | Path | None = None,
        echo: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        self.url = normalize_url(url) if url else default_database_url(data_dir)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, **engine_kwargs}
        if self.dialect == "sqlite":
            database = parsed.database
            if database in (None, "", ":memory:"):
                # One shared connection, or every pooled connection sees its own empty db.
                kwargs.setdefault("poolclass", StaticPool)
            else:
                if not database.startswith("file:"):
                    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                # SQLite has one writer at a time, and a transaction that reads then
                # writes fails at once ("database is locked", busy_timeout or not) when
                # another connection wrote in between. Measured at 100 calls with the
                # default pool: 58 lost writes in a minute. One connection, taken in
                # turn, serialises the writes instead; they are small.
                kwargs.setdefault("pool_size", 1)
                kwargs.setdefault("max_overflow", 0)
                kwargs.setdefault("pool_timeout", 60)
        else:
            # Drop connections the server closed while idle (restarts, proxies).
            kwargs.setdefault("pool_pre_ping", True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to `revision` (idempotent; safe to call at every start)."""
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Several workers starting at once must not run the same DDL twice; the
                # lock is released when this transaction ends.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))

    async def downgrade(self, revision: str = "base") -> None:
        """Downgrade the schema (tests and operators undoing a release); destroys data."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))

    async def current_revision(self) -> str | None:
        """The revision the database is at; None before the first migration."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def aclose(self) -> None:
        """Close pooled connections (SQLite: checkpoints the WAL on the last close)."""
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Database({make_url(self.url)!r})"
