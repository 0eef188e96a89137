"""What the latency benchmark needs around the product: a `callwright serve` process
and spoken questions. The benchmarks are scripts run from a checkout, so this lives
beside them: the benchmarks import nothing from the test suite."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def make_speech(text: str, path: Path, *, voice: str = "en-us", speed: int = 150) -> Path:
    """`text` spoken by espeak-ng, as a 16 kHz mono PCM16 WAV with 0.3 s of silence after."""
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (Debian packages)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path), "pad", "0", "0.3"],
        check=True,
    )
    raw.unlink()
    return path


def free_port() -> int:
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
    ) -> None:
        self.port = free_port()
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/voice"
        cmd = [sys.executable, "-m", "callwright.cli", "serve", "--port", str(self.port)]
        cmd += ["--agents-dir", str(agents_dir), "--data-dir", str(data_dir)]
        if default_agent:
            cmd += ["--default-agent", default_agent]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "server.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited during start-up:\n{self.log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
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
