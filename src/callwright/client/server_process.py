"""A local `callwright serve` in a subprocess, for simulated callers that need a server
of their own: the test suite's end-to-end and browser tests, and the benchmarks.

It is started exactly as an operator would start it (the CLI), and is ready when the
constructor returns (`/readyz` answers 200), so callers never race the start-up.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A loopback port free right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`callwright serve` in a subprocess, ready (`/readyz`) when the constructor returns."""

    def __init__(
        self,
        agents_dir: Path,
        data_dir: Path,
        *,
        default_agent: str | None = None,
        startup_timeout: float = 180.0,
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/voice"
        cmd = [sys.executable, "-m", "callwright.cli", "serve", "--port", str(self.port)]
        cmd += ["--agents-dir", str(agents_dir), "--data-dir", str(data_dir)]
        if default_agent:
            cmd += ["--default-agent", default_agent]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "server.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd)
        self._wait_ready(startup_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited during start-up:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
