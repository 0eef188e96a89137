"""A lightweight fleet of simulated callers for bench/capacity.py.

Why not `callwright.client.caller.SimulatedCaller`: it runs one asyncio task and one
timer per caller and goes through the `websockets` client library for every 20 ms frame.
At 200 callers that is 10,000 library sends a second plus the replies, enough to make
the load generator, not the server, the bottleneck. Here:

* one ticker drives every caller: callers are spread over `SLOTS` phases of the 20 ms
  frame period (so the server sees frames spread in time, as from real phone lines,
  not in one burst), and the ticker sends each caller's frame at its absolute due time
  (`t0 + k * 20 ms`, never drifting; a late tick catches up, it does not shift);
* the WebSocket protocol is spoken directly on an asyncio `Protocol`: every frame the
  caller can send is pre-built once (header, a zero masking key, payload), so a send is
  one `transport.write` of a ready `bytes` object. A zero key is legal on the wire
  (RFC 6455 asks clients for a random key against proxy cache poisoning, irrelevant on
  loopback) and the server unmasks it with exactly the same work as any other key;
* received audio frames are only counted and timed, never decoded.

Timing is read with `loop.time()` (CLOCK_MONOTONIC) when a frame is written and when a
read returns; the generator reports how late its own ticks ran, so a saturated
generator shows up in the results instead of being blamed on the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RATE = 16000
FRAME_SECS = 0.02
FRAME_SAMPLES = int(RATE * FRAME_SECS)  # 320
FRAME_BYTES = FRAME_SAMPLES * 2
SLOTS = 10  # phases per 20 ms frame period: ticks every 2 ms
WINDOW_SAMPLES = 512  # Silero's 32 ms window at 16 kHz
ALIGNMENTS = 8  # 8 frames of 320 samples = 5 windows of 512: the grid repeats every 8 frames

# Short caller lines, ~1.7-2.0 s each once trimmed. No commas: a pause inside a line
# longer than the VAD's stop time would end the turn early.
UTTERANCE_TEXTS = (
    "I need an appointment on Tuesday",
    "What are your opening hours this week",
    "Can I speak to the doctor tomorrow morning",
)


# ------------------------------------------------------------------ test speech
def make_utterances(directory: Path) -> list[tuple[str, bytes]]:
    """Speak UTTERANCE_TEXTS with espeak-ng, convert to 16 kHz mono PCM16 with sox,
    trim leading and trailing silence; return (text, pcm) pairs."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed to make the test speech (apt-get install {tool})")
    directory.mkdir(parents=True, exist_ok=True)
    out: list[tuple[str, bytes]] = []
    for i, text in enumerate(UTTERANCE_TEXTS):
        raw = directory / f"raw{i}.wav"
        wav = directory / f"utterance{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", str(raw), text], check=True)
        trim = ["silence", "1", "0.01", "0.1%"]
        sox = ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)]
        subprocess.run([*sox, *trim, "reverse", *trim, "reverse"], check=True)
        with wave.open(str(wav)) as w:
            assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
            out.append((text, w.readframes(w.getnframes())))
    return out


def pad_to_frames(pcm: bytes) -> bytes:
    return pcm + bytes(-len(pcm) % FRAME_BYTES)


def vad_stop_delays(
    utterances: list[tuple[str, bytes]], gate_dbfs: float | None
) -> list[list[int]]:
    """The endpointing delay of each utterance, in frames, for each of the 8 alignments of
    its first frame to the VAD's 32 ms window grid.

    Runs the server's own Silero VAD and segmenter (same weights, same parameters) on
    1 s of digital silence, the utterance and silence, exactly as the caller streams
    them. The delay is the number of 20 ms frames from the utterance's last frame to
    the frame that completes the window on which the VAD declares STOP: the earliest
    moment any server could know the turn ended. Raises if an utterance does not give
    exactly one START and one STOP (the VAD must hear each line as one turn).
    """
    from callwright.audio.pcm import pcm16_to_float
    from callwright.engines.silero_vad import SileroVADEngine
    from callwright.pipeline.vad import VadEvent, VadParams, VadSegmenter

    engine = SileroVADEngine(gate_dbfs=gate_dbfs)
    table: list[list[int]] = []
    for text, pcm in utterances:
        speech = pad_to_frames(pcm)
        n_frames = len(speech) // FRAME_BYTES
        row = []
        for align in range(ALIGNMENTS):
            lead = 50 + ((align - 50) % ALIGNMENTS)  # ~1 s, and lead % 8 == align
            stream = bytes(lead * FRAME_BYTES) + speech + bytes(100 * FRAME_BYTES)
            vad = engine.open_stream()
            seg = VadSegmenter(VadParams(threshold=0.5, start_secs=0.1, stop_secs=0.3), 0.032)
            events: list[tuple[VadEvent, int]] = []
            wb = WINDOW_SAMPLES * 2
            for w in range(len(stream) // wb):
                prob = vad.probability(pcm16_to_float(stream[w * wb : (w + 1) * wb]))
                ev = seg.process(w, prob)
                if ev in (VadEvent.START, VadEvent.STOP):
                    events.append((ev, w))
            kinds = [e for e, _ in events]
            if kinds != [VadEvent.START, VadEvent.STOP]:
                raise SystemExit(f"the VAD does not hear {text!r} as one turn: {events}")
            stop_window = events[1][1]
            completing_frame = ((stop_window + 1) * WINDOW_SAMPLES - 1) // FRAME_SAMPLES
            last_frame = lead + n_frames - 1
            row.append(completing_frame - last_frame)
        table.append(row)
    return table


def replay_caller(caller: Caller, gate_dbfs: float | None) -> int:
    from callwright.audio.pcm import pcm16_to_float
    from callwright.engines.silero_vad import SileroVADEngine
    from callwright.pipeline.vad import VadEvent, VadParams, VadSegmenter

    engine = _replay_engines.get(gate_dbfs)
    if engine is None:
        engine = _replay_engines[gate_dbfs] = SileroVADEngine(gate_dbfs=gate_dbfs)
    pcms = [pad_to_frames(p) for p in caller.fleet.utterance_pcm]
    stream = bytearray()
    ends: list[int] = []  # last frame of each line
    for start, u in caller.spoken:
        stream += bytes(start * FRAME_BYTES - len(stream))
        stream += pcms[u]
        ends.append(start + len(pcms[u]) // FRAME_BYTES - 1)
    stream += bytes(60 * FRAME_BYTES)  # enough silence for the last STOP
    vad = engine.open_stream()
    seg = VadSegmenter(VadParams(threshold=0.5, start_secs=0.1, stop_secs=0.3), 0.032)
    starts: list[int] = []
    stops: list[int] = []
    wb = WINDOW_SAMPLES * 2
    data = bytes(stream)
    for w in range(len(data) // wb):
        ev = seg.process(w, vad.probability(pcm16_to_float(data[w * wb : (w + 1) * wb])))
        if ev is VadEvent.START:
            starts.append(w)
        elif ev is VadEvent.STOP:
            stops.append(((w + 1) * WINDOW_SAMPLES - 1) // FRAME_SAMPLES)  # completing frame
    bad = 0
    by_end: dict[int, int] = {}
    for (start, _), end in zip(caller.spoken, ends, strict=True):
        inside = [f for f in stops if start <= f <= end]  # the line was cut in two
        after = [f for f in stops if end < f <= end + 50]
        lo, hi = start * FRAME_SAMPLES, (end + 1) * FRAME_SAMPLES
        n_start = sum(1 for w in starts if lo <= w * WINDOW_SAMPLES <= hi)
        if inside or len(after) != 1 or n_start != 1:
            bad += 1
            continue
        by_end[end] = after[0] - end
    for t in caller.turns:
        end = t.end_frame
        if end in by_end:
            t.table_delay_frames = t.vad_delay_frames
            t.vad_delay_frames = by_end[end]
            t.vad_exact = True
    return bad


_replay_engines: dict[float | None, Any] = {}


# ------------------------------------------------------------------ WebSocket bits
def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (FIN set, masked with a zero key, so the payload is unchanged)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


SILENCE_FRAME = ws_frame(0x2, bytes(FRAME_BYTES))


def speech_frames(pcm: bytes) -> list[bytes]:
    pcm = pad_to_frames(pcm)
    return [ws_frame(0x2, pcm[i : i + FRAME_BYTES]) for i in range(0, len(pcm), FRAME_BYTES)]


# ------------------------------------------------------------------ records
@dataclass(slots=True)
class Turn:
    caller: int
    utterance: int
    align: int
    vad_delay_frames: int
    speech_end: float  # loop time the utterance's last frame was written
    first_reply: float | None = None  # loop time the reply's first audio frame was read
    ended: float | None = None  # agent_speech_ended read
    frames: int = 0
    late_frames: int = 0
    max_late: float = 0.0
    server: dict[str, Any] | None = None  # the turn_metrics event
    vad_started: bool = False  # user_speech_started seen for this utterance
    end_frame: int = -1  # the caller's frame number of the line's last frame
    vad_exact: bool = False  # vad_delay_frames from replaying the whole call (else: table)
    table_delay_frames: int | None = None  # the table's estimate, when replaced
    timed_out: bool = False


@dataclass
class FleetStats:
    tick_lateness: list[float] = field(default_factory=list)  # in the window only
    connect_failures: int = 0
    errors: list[str] = field(default_factory=list)
    interruptions: int = 0
    clears: int = 0
    stray_frames: int = 0  # audio outside any reply
    closed_early: int = 0


# ------------------------------------------------------------------ one caller
class Caller(asyncio.Protocol):
    def __init__(self, fleet: Fleet, index: int) -> None:
        self.fleet = fleet
        self.index = index
        self.loop = fleet.loop
        self.rng = random.Random(index)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.started = self.loop.create_future()
        self.closed = self.loop.create_future()
        self.active = False  # streaming audio
        self.frame_no = 0
        self.speaking: list[bytes] | None = None
        self.pos = 0
        self.utt_index = index % len(fleet.utterance_frames)
        self.speak_at = 0  # frame number at which to start the next utterance
        self.turn: Turn | None = None  # awaiting or receiving a reply
        self.turns: list[Turn] = []
        self.speech_start_frame = 0
        self.spoken: list[tuple[int, int]] = []  # (first frame, utterance) of each line spoken
        self.vad_heard = False  # user_speech_started seen during the current utterance

    # -- connection
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        f = self.fleet
        transport.write(
            (
                f"GET {f.path} HTTP/1.1\r\nHost: {f.host}:{f.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.active:
            self.fleet.stats.closed_early += 1
        self.active = False
        if not self.started.done():
            self.started.set_exception(ConnectionError("closed before 'started'"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_json(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ws_frame(0x1, json.dumps(message).encode()))

    def hang_up(self) -> None:
        self.active = False
        self.send_json({"type": "stop"})

    # -- sending (called by the fleet's ticker)
    def tick(self, now: float) -> None:
        k = self.frame_no
        self.frame_no = k + 1
        frames = self.speaking
        if frames is None and k >= self.speak_at and self.turn is None:
            frames = self.speaking = self.fleet.utterance_frames[self.utt_index]
            self.pos = 0
            self.speech_start_frame = k
            self.vad_heard = False
            self.spoken.append((k, self.utt_index))
        if frames is None:
            self.transport.write(SILENCE_FRAME)  # type: ignore[union-attr]
            return
        self.transport.write(frames[self.pos])  # type: ignore[union-attr]
        self.pos += 1
        if self.pos == len(frames):
            u = self.utt_index
            align = self.speech_start_frame % ALIGNMENTS
            self.turn = Turn(
                caller=self.index,
                utterance=u,
                align=align,
                vad_delay_frames=self.fleet.vad_delays[u][align],
                speech_end=now,
                vad_started=self.vad_heard,
                end_frame=k,
            )
            self.turns.append(self.turn)
            self.speaking = None
            self.utt_index = (u + 1) % len(self.fleet.utterance_frames)
            # if no reply comes, speak again after reply_timeout
            self.speak_at = k + 1 + round(self.fleet.reply_timeout / FRAME_SECS)

    def check_timeout(self, k: int) -> None:
        t = self.turn
        if t is not None and k >= self.speak_at:
            t.timed_out = True
            self.turn = None

    # -- receiving
    def data_received(self, data: bytes) -> None:
        now = self.loop.time()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            if b" 101 " not in status:
                self.started.set_exception(ConnectionError(status.decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            del buf[: end + 4]
            self.upgraded = True
            self.send_json(self.fleet.start_message)
        pos = 0
        n_buf = len(buf)
        while n_buf - pos >= 2:
            b0 = buf[pos]
            n = buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if n_buf - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif n == 127:
                if n_buf - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if n_buf - pos < head + n:
                break
            opcode = b0 & 0x0F
            start = pos + head
            pos = start + n
            if opcode == 0x2:
                self.on_audio(now)
            elif opcode == 0x1:
                self.on_event(json.loads(bytes(buf[start:pos])), now)
            elif opcode == 0x9:  # ping: answer with the same payload
                self.transport.write(ws_frame(0xA, bytes(buf[start:pos])))  # type: ignore[union-attr]
            elif opcode == 0x8 and self.transport is not None and not self.transport.is_closing():
                self.transport.write(ws_frame(0x8, bytes(buf[start : start + 2])))
                self.transport.close()
        if pos:
            del buf[:pos]

    def on_audio(self, now: float) -> None:
        t = self.turn
        if t is None or t.ended is not None:
            self.fleet.stats.stray_frames += 1
            return
        if t.first_reply is None:
            t.first_reply = now
            t.frames = 1
            return
        due = t.first_reply + t.frames * FRAME_SECS  # when this frame should start playing
        t.frames += 1
        if now > due:
            t.late_frames += 1
            t.max_late = max(t.max_late, now - due)

    def on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        t = self.turn
        if kind == "agent_speech_ended":
            if t is not None:
                t.ended = now
                self.turn = None
                pause = self.fleet.pause_secs + self.rng.uniform(0.0, self.fleet.pause_jitter)
                self.speak_at = self.frame_no + round(pause / FRAME_SECS)
        elif kind == "turn_metrics":
            # the metrics of the reply just finished: attach to the latest turn
            if self.turns:
                self.turns[-1].server = event
        elif kind == "user_speech_started":
            if self.speaking is not None:
                self.vad_heard = True
            elif t is not None:
                t.vad_started = True
        elif kind == "started":
            first = self.fleet.first_speak_secs + self.rng.uniform(0.0, self.fleet.first_jitter)
            self.speak_at = round(first / FRAME_SECS)
            if not self.started.done():
                self.started.set_result(event)
        elif kind == "interruption":
            self.fleet.stats.interruptions += 1
        elif kind == "clear":
            self.fleet.stats.clears += 1
        elif kind == "error":
            self.fleet.stats.errors.append(f"{event.get('code')}: {event.get('message')}")
        elif kind == "end":
            self.active = False


# ------------------------------------------------------------------ the fleet
class Fleet:
    """N callers against one server, all driven by a single ticker."""

    def __init__(
        self,
        host: str,
        port: int,
        agent_id: str,
        utterances: list[tuple[str, bytes]],
        vad_delays: list[list[int]],
        *,
        path: str = "/v1/voice",
        pause_secs: float = 1.0,
        pause_jitter: float = 0.3,
        first_speak_secs: float = 0.5,
        first_jitter: float = 3.0,
        reply_timeout: float = 10.0,
        consent: str = "granted",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.path = host, port, path
        self.utterance_pcm = [pcm for _, pcm in utterances]
        self.utterance_frames = [speech_frames(pcm) for _, pcm in utterances]
        self.vad_delays = vad_delays
        self.pause_secs, self.pause_jitter = pause_secs, pause_jitter
        self.first_speak_secs, self.first_jitter = first_speak_secs, first_jitter
        self.reply_timeout = reply_timeout
        self.start_message = {
            "type": "start",
            "agent_id": agent_id,
            "channel": "sim",
            "consent": consent,
            "audio": {"encoding": "pcm16", "sample_rate": RATE},
        }
        self.callers: list[Caller] = []
        self.slots: list[list[Caller]] = [[] for _ in range(SLOTS)]
        self.stats = FleetStats()
        self.window: tuple[float, float] | None = None
        self._base = self.loop.time()
        self._tick = 0
        self._ticker: asyncio.Task[None] | None = None

    def _tick_time(self, j: int) -> float:
        return self._base + j * FRAME_SECS / SLOTS

    async def _run_ticker(self) -> None:
        loop = self.loop
        slots = self.slots
        while True:
            now = loop.time()
            while self._tick_time(self._tick) <= now:
                j = self._tick
                self._tick = j + 1
                due = self._tick_time(j)
                w = self.window
                if w is not None and w[0] <= due < w[1]:
                    self.stats.tick_lateness.append(now - due)
                for caller in slots[j % SLOTS]:
                    if caller.active:
                        caller.tick(now)
                        if caller.turn is not None and caller.frame_no >= caller.speak_at:
                            caller.check_timeout(caller.frame_no)
                now = loop.time()
            await asyncio.sleep(max(0.0, self._tick_time(self._tick) - loop.time()))

    def start(self) -> None:
        self._ticker = asyncio.ensure_future(self._run_ticker())

    async def add_caller(self) -> Caller:
        index = len(self.callers)
        caller = Caller(self, index)
        self.callers.append(caller)
        try:
            await self.loop.create_connection(lambda: caller, self.host, self.port)
            await asyncio.wait_for(caller.started, 30)
        except Exception as exc:
            self.stats.connect_failures += 1
            self.stats.errors.append(f"connect {index}: {type(exc).__name__}: {exc}")
            return caller
        # join the slot whose next tick comes first after now; frame 0 is due then
        slot = index % SLOTS
        caller.frame_no = 0
        caller.active = True
        self.slots[slot].append(caller)
        return caller

    async def ramp(self, n: int, secs: float, on_each: Callable[[int], None] | None = None) -> None:
        """Start n calls, evenly spread over `secs` seconds."""
        t0 = self.loop.time()
        pending = []
        for i in range(n):
            delay = t0 + (secs * i / n if n else 0) - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.ensure_future(self.add_caller()))
            if on_each:
                on_each(i)
        await asyncio.gather(*pending)

    async def hang_up_all(self, wait: float = 15.0) -> None:
        for c in self.callers:
            if c.active:
                c.hang_up()
        closing = [c.closed for c in self.callers if c.transport is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*closing), wait)
        for c in self.callers:
            if c.transport is not None and not c.transport.is_closing():
                c.transport.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    def replay_vad(self, gate_dbfs: float | None) -> int:
        """Set each turn's endpointing delay from the server's own VAD run offline on
        exactly what this caller sent (every frame since frame 0, the same 32 ms window
        grid, one recurrent state for the whole call, as in the server), instead of the
        per-alignment table. Returns the number of lines that did not give exactly one
        START and one STOP."""
        return sum(replay_caller(c, gate_dbfs) for c in self.callers if c.spoken)

    def turns_in_window(self) -> list[Turn]:
        assert self.window is not None
        w0, w1 = self.window
        return [t for c in self.callers for t in c.turns if w0 <= t.speech_end < w1]
