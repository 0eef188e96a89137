"""espeak-ng text-to-speech: robotic but instant (8-22 ms to first audio), the fallback.

espeak-ng is GPL-3, so it runs as a separate program (`espeak-ng --stdout`), one
process per request: it starts in milliseconds and a request is abandoned by
killing its process. The text goes through stdin, never the command line, so text
that starts with `-` is spoken rather than parsed as an option.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
from collections.abc import AsyncIterator
from typing import Any

from callwright.audio.resample import StreamResampler
from callwright.engines.base import EngineError
from callwright.engines.registry import register

_READ = 4096


class WavStreamParser:
    """Incremental RIFF/WAVE parser: `feed()` bytes, get PCM data bytes once past the header.

    espeak-ng streams its WAV with placeholder sizes, so the `data` chunk is taken
    to run to the end of the stream. Only 16-bit PCM is accepted.
    """

    def __init__(self) -> None:
        self._buf = b""
        self.in_data = False
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self._odd = b""

    def feed(self, data: bytes) -> bytes:
        if self.in_data:
            return self._even(data)
        self._buf += data
        if len(self._buf) < 12:
            return b""
        if self._buf[:4] != b"RIFF" or self._buf[8:12] != b"WAVE":
            raise EngineError("espeak-ng did not produce a WAV stream")
        pos = 12
        while len(self._buf) >= pos + 8:
            cid = self._buf[pos : pos + 4]
            (size,) = struct.unpack("<I", self._buf[pos + 4 : pos + 8])
            if cid == b"data":
                self.in_data = True
                rest, self._buf = self._buf[pos + 8 :], b""
                if self.sample_rate is None:
                    raise EngineError("WAV stream has no fmt chunk before its data")
                return self._even(rest)
            if len(self._buf) < pos + 8 + size:
                return b""
            if cid == b"fmt ":
                fmt, channels, rate, _, _, bits = struct.unpack(
                    "<HHIIHH", self._buf[pos + 8 : pos + 24]
                )
                if fmt != 1 or bits != 16 or channels != 1:
                    raise EngineError(
                        f"unsupported WAV: format {fmt}, {bits} bits, {channels} channels"
                    )
                self.sample_rate, self.channels = rate, channels
            pos += 8 + size + (size & 1)
        return b""

    def _even(self, data: bytes) -> bytes:
        data = self._odd + data
        cut = len(data) - (len(data) % 2)
        self._odd = data[cut:]
        return data[:cut]


class EspeakTTS:
    name = "espeak"

    def __init__(
        self,
        voice: str = "en-us",
        rate: int = 165,
        sample_rate: int = 22050,
        executable: str = "espeak-ng",
    ) -> None:
        exe = shutil.which(executable)
        if exe is None:
            raise EngineError(
                f"{executable} is not installed; install the Debian/Ubuntu package "
                "'espeak-ng' (apt-get install espeak-ng)"
            )
        self.executable = exe
        self.voice = voice
        self.rate = int(rate)
        self.sample_rate = sample_rate

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        proc = await asyncio.create_subprocess_exec(
            self.executable,
            "--stdout",
            "-v",
            voice or self.voice,
            "-s",
            str(self.rate),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        resampler: StreamResampler | None = None
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
            parser = WavStreamParser()
            while chunk := await proc.stdout.read(_READ):
                pcm = parser.feed(chunk)
                if not pcm:
                    continue
                rate = parser.sample_rate
                if rate is not None and rate != self.sample_rate and resampler is None:
                    resampler = StreamResampler(rate, self.sample_rate)
                if resampler is not None:
                    pcm = resampler.process(pcm)
                if pcm:
                    yield pcm
            if resampler is not None and (tail := resampler.process(b"", last=True)):
                yield tail
            err = (await proc.stderr.read()).decode("utf-8", "replace").strip()
            rc = await proc.wait()
            if rc != 0 or not parser.in_data:
                raise EngineError(f"espeak-ng failed (exit {rc}): {err or 'no audio'}")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


@register("tts", "espeak")
def create(**options: Any) -> EspeakTTS:
    return EspeakTTS(**options)
