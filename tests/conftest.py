"""Shared test helpers: test speech made with espeak-ng and sox, free ports, a server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages; `make test` installs them)")


def make_speech(
    text: str,
    path: Path,
    *,
    voice: str = "en-us",
    speed: int = 150,
    rate: int = 16000,
    phone: bool = False,
    pad_secs: float = 0.3,
) -> Path:
    """Speak `text` with espeak-ng into a mono PCM16 WAV at `rate`, trailing silence added.

    `phone=True` band-limits it like a phone line (300-3400 Hz) so tests do not pass
    only on clean wideband audio.
    """
    need_tools("espeak-ng", "sox")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    effects = ["sinc", "300-3400"] if phone else []
    subprocess.run(
        [
            "sox",
            str(raw),
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            *effects,
            "pad",
            "0",
            str(pad_secs),
        ],
        check=True,
    )
    raw.unlink()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`callwright serve` in a subprocess, for tests that talk to it like a client."""

    def __init__(
        self,
        agents_dir: Path,
        data_dir: Path,
        *,
        default_agent: str | None = None,
        startup_timeout: float = 180.0,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/voice"
        cmd = [
            sys.executable,
            "-m",
            "callwright.cli",
            "serve",
            "--port",
            str(self.port),
            "--agents-dir",
            str(agents_dir),
            "--data-dir",
            str(data_dir),
        ]
        if default_agent:
            cmd += ["--default-agent", default_agent]
        self.log = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + startup_timeout
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
        raise RuntimeError(f"server not ready after {startup_timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def serve(agents_dir: Path, data_dir: Path, **kwargs: object) -> Iterator[ServerProcess]:
    server = ServerProcess(agents_dir, data_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
