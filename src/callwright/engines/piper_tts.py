"""Piper text-to-speech, run in worker processes (Piper is GPL-3.0; this module never
imports it).

Each worker is a long-lived `python -m callwright.engines.piper_worker` that loads the
voice once and streams one audio frame per sentence (see that module for the
protocol). Here a reader thread per worker turns frames back into per-request
queues; a request's frames go to whichever event loop asked for it, so one engine
serves any loop. A request abandoned mid-utterance (barge-in) sends a cancel and
forgets its id: the worker stops at the next sentence and the frames it still sends
for that id are dropped, so the next request starts clean. A worker that dies fails
its pending requests with `EngineError` and is restarted for the next one.

Options: `model`/`config` (default: the packaged en_US-joe-medium voice, verified),
`workers` (processes; each synthesises one request at a time), `threads` (ONNX
threads per worker; 1 leaves the other core to ASR and the LLM), `length_scale`.
`synthesize(voice=...)` names a speaker of a multi-speaker voice (ignored otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from callwright.engines.base import EngineError, TimedAudio

# The frame reader is shared with the worker; that module imports Piper only inside
# its `main()`, so importing it here pulls in nothing GPL.
from callwright.engines.piper_worker import read_frame
from callwright.engines.registry import register

_END = object()


class _Pending:
    __slots__ = ("loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()

    def put(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the request is long gone
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class _Worker:
    """One worker process and the thread that reads its frames."""

    def __init__(self, argv: list[str], ready_timeout: float) -> None:
        self.argv = argv
        self.ready_timeout = ready_timeout
        self._lock = threading.Lock()  # guards _pending and _running
        self._wlock = threading.Lock()  # one writer on the worker's stdin at a time
        self._start_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._running = False
        self._closing = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.sample_rate: int | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def load(self) -> int:
        with self._lock:
            return len(self._pending)

    def ensure_started(self) -> None:
        with self._start_lock:
            if not self.alive and not self._closing:
                self._start()

    def _start(self) -> None:
        """Spawn the process and block until it has loaded the voice (or failed)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        stdout = proc.stdout
        stderr_tail: list[bytes] = []
        threading.Thread(
            target=self._drain_stderr, args=(proc.stderr, stderr_tail), daemon=True
        ).start()
        result: list[tuple[dict[str, Any], bytes] | None] = []
        reader = threading.Thread(target=lambda: result.append(read_frame(stdout)), daemon=True)
        reader.start()
        reader.join(self.ready_timeout)
        frame = result[0] if result else None
        if frame is None or frame[0].get("kind") != "ready":
            proc.kill()
            proc.wait()
            detail = b"".join(stderr_tail).decode("utf-8", "replace").strip()[-2000:]
            raise EngineError(f"piper worker failed to start: {detail or 'no ready frame'}")
        self.sample_rate = int(frame[0]["sample_rate"])
        with self._lock:
            self.proc = proc
            self._running = True
        self.starts += 1
        threading.Thread(
            target=self._read_loop, args=(proc,), daemon=True, name="piper-reader"
        ).start()

    @staticmethod
    def _drain_stderr(stream: IO[bytes], tail: list[bytes]) -> None:
        for line in stream:
            tail.append(line)
            del tail[:-50]

    def _read_loop(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while (frame := read_frame(proc.stdout)) is not None:
            header, payload = frame
            with self._lock:
                pending = self._pending.get(str(header.get("id")))
            if pending is None:
                continue  # an abandoned request's leftovers
            kind = header.get("kind")
            if kind == "audio":
                pending.put(TimedAudio(payload, tuple(int(x) for x in header.get("word_ends", ()))))
            elif kind == "end":
                pending.put(_END)
            elif kind == "error":
                pending.put(EngineError(f"piper: {header.get('message', 'synthesis failed')}"))
        proc.wait()
        with self._lock:
            self._running = False
            dead, self._pending = self._pending, {}
        for pending in dead.values():
            pending.put(EngineError(f"piper worker died (exit {proc.returncode})"))
        if not self._closing:
            # Restart now so the next request does not pay the voice load; if this
            # fails, the next request tries again and reports it.
            with contextlib.suppress(EngineError):
                self.ensure_started()

    def submit(
        self, req_id: str, text: str, speaker: str | None, loop: asyncio.AbstractEventLoop
    ) -> _Pending:
        pending = _Pending(loop)
        with self._lock:
            if not self._running:
                raise EngineError("piper worker is not running")
            self._pending[req_id] = pending
        try:
            self._send({"id": req_id, "text": text, "speaker": speaker})
        except EngineError:
            self.forget(req_id)
            raise
        return pending

    def forget(self, req_id: str) -> None:
        with self._lock:
            self._pending.pop(req_id, None)

    def cancel(self, req_id: str) -> None:
        self.forget(req_id)
        with contextlib.suppress(EngineError):  # a dead worker has nothing left to cancel
            self._send({"cancel": req_id})

    def _send(self, msg: dict[str, Any]) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise EngineError("piper worker is not running")
        line = (json.dumps(msg) + "\n").encode()
        try:
            with self._wlock:  # a line or two, read promptly by the worker's stdin thread
                proc.stdin.write(line)
                proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise EngineError(f"piper worker is gone: {exc}") from exc

    def stop(self) -> None:
        self._closing = True
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PiperTTS:
    name = "piper"

    def __init__(
        self,
        model: str | None = None,
        config: str | None = None,
        *,
        workers: int = 1,
        threads: int = 1,
        length_scale: float | None = None,
        ready_timeout: float = 120.0,
        python: str | None = None,
    ) -> None:
        if model is None:
            from callwright.engines.model_files import piper_voice_paths

            model_path, config_path = piper_voice_paths()
        else:
            model_path = Path(model).expanduser()
            config_path = Path(config).expanduser() if config else Path(f"{model_path}.json")
        if not model_path.is_file() or not config_path.is_file():
            raise EngineError(f"piper voice {model_path} or its config {config_path} is missing")
        with config_path.open(encoding="utf-8") as fh:
            self.sample_rate = int(json.load(fh)["audio"]["sample_rate"])
        argv = [
            python or sys.executable,
            "-m",
            "callwright.engines.piper_worker",
            "--model",
            str(model_path),
            "--config",
            str(config_path),
            "--threads",
            str(threads),
        ]
        if length_scale is not None:
            argv += ["--length-scale", str(length_scale)]
        self._workers = [_Worker(argv, ready_timeout) for _ in range(max(1, workers))]
        self._ids = itertools.count(1)
        try:
            for w in self._workers:
                w.ensure_started()
        except Exception:
            self.close()
            raise
        if any(w.sample_rate != self.sample_rate for w in self._workers):
            self.close()
            raise EngineError("piper worker reports a different sample rate than its config")

    @property
    def worker_pids(self) -> list[int | None]:
        return [w.proc.pid if w.proc else None for w in self._workers]

    async def _pick(self) -> _Worker:
        worker = min(self._workers, key=lambda w: (not w.alive, w.load))
        if not worker.alive:
            await asyncio.to_thread(worker.ensure_started)
        return worker

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        pieces = self.synthesize_timed(text, voice=voice)
        try:
            async for piece in pieces:
                yield piece.pcm
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]  # an async generator

    async def synthesize_timed(
        self, text: str, *, voice: str | None = None
    ) -> AsyncIterator[TimedAudio]:
        """Audio per sentence with its word end offsets (empty without alignments)."""
        if not text.strip():
            return
        worker = await self._pick()
        req_id = f"r{next(self._ids)}"
        pending = worker.submit(req_id, text, voice, asyncio.get_running_loop())
        finished = False
        try:
            while True:
                item = await pending.queue.get()
                if item is _END:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                assert isinstance(item, TimedAudio)
                yield item
        finally:
            if finished:
                worker.forget(req_id)
            else:
                worker.cancel(req_id)

    def close(self) -> None:
        for w in self._workers:
            w.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


@register("tts", "piper")
def create(**options: Any) -> PiperTTS:
    return PiperTTS(**options)
