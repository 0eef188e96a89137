"""What the latency benchmark needs around the product: a `callwright serve` process
(`callwright.client.server_process`) and spoken questions. The benchmarks import
nothing from the test suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from callwright.client.server_process import ServerProcess, free_port

__all__ = ["REPO", "ServerProcess", "free_port", "make_speech"]

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
