"""Call recordings: a two-track recorder on the audio path and where the WAVs are kept.

`CallRecorder` sits on the event loop and sees every 20-32 ms frame of both sides, so it
only appends to buffered files; the stereo WAV is assembled once, at the end, in chunks,
so an hour-long call costs the same memory as a short one. Stores hand out opaque URIs
that the calls table keeps; `LocalRecordingStore` is the embedded default and an object
store can implement the same protocol.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import uuid
import wave
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import numpy as np

from callwright.audio.pcm import PIPELINE_RATE, SAMPLE_WIDTH
from callwright.audio.resample import StreamResampler


@runtime_checkable
class RecordingStore(Protocol):
    """Where finished recordings live, addressed by the URI that `put` returns."""

    async def put(self, tenant_id: str, call_id: str, data: str | os.PathLike[str] | bytes) -> str:
        """Store a WAV (a file path, or its bytes) for the call; return its URI."""
        ...

    async def open(self, uri: str) -> bytes:
        """The WAV bytes; FileNotFoundError if there is none."""
        ...

    async def delete(self, uri: str) -> None:
        """Remove the recording; deleting a missing one is not an error."""
        ...


# Tenant and call ids become path components: letters, digits, '.', '_', '-', starting
# with a letter or digit (so never '.', '..' or a hidden file).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
LOCAL_SCHEME = "local:"


class LocalRecordingStore:
    """Recordings as files: `<root>/<tenant_id>/<call_id>.wav`, URI `local:<tenant>/<call>.wav`.

    URIs are relative to `root`, so the data directory can move. Anything resolving
    outside `root` (`..`, absolute paths, symlinks pointing out) is refused.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    @staticmethod
    def _check(kind: str, value: str) -> str:
        if not _SAFE_NAME.fullmatch(value):
            raise ValueError(f"unsafe {kind} {value!r} for a recording path")
        return value

    def uri_for(self, tenant_id: str, call_id: str) -> str:
        tenant = self._check("tenant_id", tenant_id)
        call = self._check("call_id", call_id)
        return f"{LOCAL_SCHEME}{tenant}/{call}.wav"

    def path_for(self, uri: str) -> Path:
        """The file behind a URI (for streaming responses); ValueError if it escapes root."""
        if not uri.startswith(LOCAL_SCHEME):
            raise ValueError(f"not a local recording URI: {uri!r}")
        parts = uri[len(LOCAL_SCHEME) :].split("/")
        if len(parts) != 2 or not parts[1].endswith(".wav"):
            raise ValueError(f"malformed recording URI: {uri!r}")
        self._check("tenant_id", parts[0])
        self._check("call_id", parts[1][: -len(".wav")])
        path = (self.root / parts[0] / parts[1]).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"recording URI escapes the store: {uri!r}")
        return path

    async def put(self, tenant_id: str, call_id: str, data: str | os.PathLike[str] | bytes) -> str:
        uri = self.uri_for(tenant_id, call_id)
        target = self.path_for(uri)
        await asyncio.to_thread(self._write, target, data)
        return uri

    @staticmethod
    def _write(target: Path, data: str | os.PathLike[str] | bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target, then rename: a reader never sees half a file.
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                tmp.write_bytes(data)
            else:
                shutil.copyfile(data, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    async def open(self, uri: str) -> bytes:
        return await asyncio.to_thread(self.path_for(uri).read_bytes)

    async def delete(self, uri: str) -> None:
        await asyncio.to_thread(self.path_for(uri).unlink, missing_ok=True)


# 1 s of 16 kHz silence, sliced (never copied) to fill gaps in the agent track.
_SILENCE = memoryview(bytes(PIPELINE_RATE * SAMPLE_WIDTH))
_CHUNK_SAMPLES = PIPELINE_RATE * 4  # interleaving block in finish(): 4 s, 256 KiB of stereo


class CallRecorder:
    """Records both sides of a call, aligned in time, as a stereo 16 kHz WAV.

    The caller's audio is the clock: `agent()` places agent audio at the caller's current
    position, filling the gap with silence; agent audio that arrives while earlier agent
    audio is still "playing" (the pacer sends a little ahead) continues right after it.
    Both tracks stream to raw files in `directory` (a private temporary directory by
    default); `finish()` interleaves them into `<name>.wav` (left caller, right agent).
    Conforms to `callwright.pipeline.settings.AudioTap`.
    """

    RATE = PIPELINE_RATE  # the caller's audio arrives at the pipeline's rate

    def __init__(
        self,
        agent_rate: int = 16000,
        *,
        directory: str | os.PathLike[str] | None = None,
        name: str | None = None,
        buffer_size: int = 1 << 16,
    ) -> None:
        # Fail now, not on the first agent frame mid-call.
        StreamResampler(agent_rate, self.RATE)
        self.agent_rate = agent_rate
        self._own_dir = directory is None
        if directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="callwright-rec-"))
        else:
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name or uuid.uuid4().hex
        self._caller_path = self.directory / f"{self.name}.caller.raw"
        self._agent_path = self.directory / f"{self.name}.agent.raw"
        self._caller_f: BinaryIO = open(self._caller_path, "wb", buffering=buffer_size)  # noqa: SIM115
        self._agent_f: BinaryIO = open(self._agent_path, "wb", buffering=buffer_size)  # noqa: SIM115
        self._caller_n = 0  # caller samples written
        self._agent_n = 0  # agent samples written (16 kHz, resampler output)
        # The current agent burst: where it started (16 kHz samples) and how many input
        # samples it has had. Its end is computed from the input, not the output, because
        # the resampler holds a few ms back until it sees more audio.
        self._resampler: StreamResampler | None = None
        self._burst_start = 0
        self._burst_in = 0
        self._wav_path: Path | None = None
        self._closed = False

    # ------------------------------------------------------------ audio path
    def caller(self, pcm16k: bytes) -> None:
        """Append caller audio (PCM16 mono 16 kHz)."""
        if self._closed:
            return
        if len(pcm16k) & 1:
            pcm16k = pcm16k[:-1]  # half a sample would shift the track into noise
        self._caller_f.write(pcm16k)
        self._caller_n += len(pcm16k) >> 1

    def agent(self, pcm: bytes) -> None:
        """Place agent audio (PCM16 mono at `agent_rate`) at the caller's position."""
        if self._closed:
            return
        n_in = len(pcm) >> 1
        if n_in == 0:
            return
        burst_end = self._burst_start + self._burst_in * self.RATE // self.agent_rate
        if self._resampler is None or burst_end < self._caller_n:
            # The agent was silent: end the previous burst and restart at the caller.
            self._end_burst()
            if self._agent_n < self._caller_n:
                self._write_silence(self._caller_n - self._agent_n)
            self._resampler = StreamResampler(self.agent_rate, self.RATE)
            self._burst_start = self._agent_n
            self._burst_in = 0
        if len(pcm) & 1:
            pcm = pcm[:-1]
        self._burst_in += n_in
        self._write_agent(self._resampler.process(pcm))

    def _write_agent(self, pcm: bytes) -> None:
        if pcm:
            self._agent_f.write(pcm)
            self._agent_n += len(pcm) >> 1

    def _write_silence(self, samples: int) -> None:
        remaining = samples * SAMPLE_WIDTH
        while remaining > 0:
            k = min(remaining, len(_SILENCE))
            self._agent_f.write(_SILENCE[:k])
            remaining -= k
        self._agent_n += samples

    def _end_burst(self) -> None:
        if self._resampler is not None:
            self._write_agent(self._resampler.process(b"", last=True))
            self._resampler = None

    # ------------------------------------------------------------ state
    @property
    def caller_samples(self) -> int:
        return self._caller_n

    @property
    def agent_samples(self) -> int:
        return self._agent_n

    @property
    def duration_secs(self) -> float:
        return max(self._caller_n, self._agent_n) / self.RATE

    # ------------------------------------------------------------ end
    def finish(self) -> Path:
        """Write the stereo WAV and return its path; idempotent.

        Blocking file work proportional to the call's length: from async code, use
        `await asyncio.to_thread(recorder.finish)`. The raw track files are removed; the
        WAV stays until `discard()` (or until the caller moves it into a store).
        """
        if self._wav_path is not None:
            return self._wav_path
        if self._closed:
            raise RuntimeError("recorder was discarded")
        self._end_burst()
        self._closed = True
        self._caller_f.close()
        self._agent_f.close()
        total = max(self._caller_n, self._agent_n)
        out = self.directory / f"{self.name}.wav"
        block = _CHUNK_SAMPLES * SAMPLE_WIDTH
        frames = np.zeros((_CHUNK_SAMPLES, 2), dtype="<i2")
        with (
            open(self._caller_path, "rb") as left,
            open(self._agent_path, "rb") as right,
            wave.open(str(out), "wb") as w,
        ):
            w.setnchannels(2)
            w.setsampwidth(SAMPLE_WIDTH)
            w.setframerate(self.RATE)
            done = 0
            while done < total:
                n = min(_CHUNK_SAMPLES, total - done)
                frames[:n] = 0
                for channel, f in ((0, left), (1, right)):
                    data = f.read(block)
                    k = len(data) >> 1
                    if k:
                        frames[:k, channel] = np.frombuffer(data, dtype="<i2", count=k)
                w.writeframes(frames[:n].tobytes())
                done += n
        self._caller_path.unlink(missing_ok=True)
        self._agent_path.unlink(missing_ok=True)
        self._wav_path = out
        return out

    async def finish_async(self) -> Path:
        """`finish()` in a worker thread, keeping the event loop free."""
        return await asyncio.to_thread(self.finish)

    def discard(self) -> None:
        """Stop recording and delete everything this recorder wrote (WAV included)."""
        self._closed = True
        self._resampler = None
        self._caller_f.close()
        self._agent_f.close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            for path in (self._caller_path, self._agent_path, self.directory / f"{self.name}.wav"):
                path.unlink(missing_ok=True)
        self._wav_path = None
