"""Sends agent audio at the pace it is heard, and knows exactly what has been heard.

Audio goes out in 20 ms frames, at most `lead_secs` ahead of the caller's playback
clock: enough to ride out network jitter, little enough that an interruption wastes
almost nothing. Every frame belongs to a `Segment` (one spoken clause); on barge-in
the pacer drops what is queued and reports, per segment, how much was played, which
is what the conversation history keeps. `pause()` holds the queue (the caller may be
interrupting; the words decide) and `resume()` plays on from the same frame.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from callwright.audio.pcm import SAMPLE_WIDTH
from callwright.pipeline.clock import Clock, LoopClock


@dataclass(eq=False, slots=True)
class Segment:
    text: str
    turn: int
    queued_frames: int = 0
    sent_frames: int = 0
    played_frames: int = 0
    closed: bool = False
    first_sent_at: float | None = None
    # where the TTS says each spoken word ends, in frames from the segment's start
    word_end_frames: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _tail: bytes = b""

    def heard_text(self) -> str:
        """The words heard: by the TTS's word timings when it gave them, else assuming
        speech spreads evenly over the segment's audio."""
        if self.queued_frames == 0 or self.played_frames >= self.queued_frames:
            return self.text if self.played_frames else ""
        words = self.text.split()
        ends = self.word_end_frames
        if ends:
            spoken = sum(1 for e in ends if e <= self.played_frames)
            if len(ends) == len(words):
                return " ".join(words[:spoken])
            # the TTS spoke the text in other words ("9am" as "nine a m"): same share
            return " ".join(words[: math.floor(len(words) * spoken / len(ends))])
        n = math.floor(len(words) * self.played_frames / self.queued_frames)
        return " ".join(words[:n])


@dataclass(slots=True)
class PacerStats:
    frames_sent: int = 0
    late_frames: int = 0  # frame slots the caller's playback ran dry with audio waiting
    max_lateness_secs: float = 0.0  # the longest such gap


FrameSink = Callable[[bytes], Awaitable[None]]


class OutputPacer:
    def __init__(
        self,
        sample_rate: int,
        send: FrameSink,
        *,
        frame_secs: float = 0.02,
        lead_secs: float = 0.08,
        on_frame: Callable[[bytes, Segment], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_secs = frame_secs
        self.frame_samples = int(sample_rate * frame_secs)
        self.frame_bytes = self.frame_samples * SAMPLE_WIDTH
        self.lead_secs = lead_secs
        self._send = send
        self._on_frame = on_frame
        self._queue: deque[tuple[bytes, Segment]] = deque()
        self._log: deque[tuple[float, Segment]] = deque()  # (play end time, segment) of sent frames
        self._wakeup = asyncio.Event()
        self._t0 = 0.0  # playback clock origin of the current burst
        self._burst_frames = 0
        self._play_end = 0.0
        self._paused = False
        self._ready_since = 0.0  # since when the queue's head could have been sent
        self.stats = PacerStats()
        self._clock: Clock = clock or LoopClock()

    # ------------------------------------------------------------------ producers
    def begin_segment(self, text: str, turn: int) -> Segment:
        return Segment(text=text, turn=turn)

    def add(self, segment: Segment, pcm: bytes) -> None:
        data = segment._tail + pcm
        fb = self.frame_bytes
        whole = len(data) - len(data) % fb
        if whole and not self._queue:
            self._ready_since = self._clock.now()
        for i in range(0, whole, fb):
            self._queue.append((data[i : i + fb], segment))
            segment.queued_frames += 1
        segment._tail = data[whole:]
        if whole:
            self._wakeup.set()

    def end_segment(self, segment: Segment) -> None:
        if segment._tail:
            if not self._queue:
                self._ready_since = self._clock.now()
            self._queue.append(
                (segment._tail + bytes(self.frame_bytes - len(segment._tail)), segment)
            )
            segment.queued_frames += 1
            segment._tail = b""
        segment.closed = True
        self._wakeup.set()
        self._check_done(segment)

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> bool:
        """True while agent audio is queued or still playing at the caller."""
        return bool(self._queue) or self._clock.now() < self._play_end

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop sending; what is queued stays. Frames already sent still play out (at
        most `lead_secs`), and count as heard."""
        self._paused = True

    def resume(self) -> None:
        """Send on from where `pause` stopped: a new burst if the caller's playback ran
        dry meanwhile, so the pause itself never counts as late frames."""
        if self._paused:
            self._paused = False
            self._ready_since = self._clock.now()
            self._wakeup.set()

    def interrupt(self) -> list[Segment]:
        """Drop everything not yet played; return the segments touched, with their
        `played_frames` settled to what the caller heard."""
        now = self._clock.now()
        touched: dict[int, Segment] = {}
        for _, seg in self._log:
            touched[id(seg)] = seg
        for _, seg in self._queue:
            touched[id(seg)] = seg
        # a frame counts as heard once half of it has played
        self._settle(now + self.frame_secs / 2)
        self._log.clear()
        self._queue.clear()
        self._play_end = now
        self._paused = False
        for seg in touched.values():
            seg.queued_frames = max(seg.queued_frames, seg.sent_frames)
            seg.closed = True
            seg.done.set()
        return list(touched.values())

    # ------------------------------------------------------------------ the loop
    def _settle(self, now: float) -> None:
        while self._log and self._log[0][0] <= now:
            _, seg = self._log.popleft()
            seg.played_frames += 1
            self._check_done(seg)

    @staticmethod
    def _check_done(seg: Segment) -> None:
        if seg.closed and seg.played_frames >= seg.queued_frames:
            seg.done.set()

    async def _wait_for_audio(self, secs: float) -> None:
        """Wait until audio is added or `secs` seconds pass on the clock."""
        waiter = asyncio.ensure_future(self._wakeup.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(secs))
        try:
            await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    def _count_late(self, now: float) -> None:
        """The caller's playback ran dry while audio was waiting to be sent: the loop
        was too slow. Every frame slot of the gap is a late frame. (A gap because no
        audio was ready, the TTS being slow, is not lateness of the pacer.)"""
        if self._burst_frames > 0 and now > self._play_end and self._ready_since < self._play_end:
            missed = now - self._play_end
            self.stats.late_frames += max(1, math.ceil(missed / self.frame_secs - 1e-9))
            self.stats.max_lateness_secs = max(self.stats.max_lateness_secs, missed)

    async def run(self) -> None:
        clock = self._clock
        while True:
            if not self._queue or self._paused:
                # wait for audio, settling playback of what was sent in the meantime
                while not self._queue or self._paused:
                    self._wakeup.clear()
                    if self._log:
                        await self._wait_for_audio(max(0.0, self._log[0][0] - clock.now()))
                        self._settle(clock.now())
                    else:
                        await self._wakeup.wait()
            now = clock.now()
            if now >= self._play_end:  # caller has played everything: a new burst starts now
                self._count_late(now)
                self._t0 = now
                self._burst_frames = 0
            deadline = self._t0 + self._burst_frames * self.frame_secs - self.lead_secs
            if deadline > now:
                await clock.sleep(deadline - now)
                now = clock.now()
                if not self._queue or self._paused:  # interrupted or paused while waiting
                    continue
            frame, seg = self._queue.popleft()
            if seg.first_sent_at is None:
                seg.first_sent_at = now
            seg.sent_frames += 1
            self._burst_frames += 1
            play_end = self._t0 + self._burst_frames * self.frame_secs
            self._play_end = play_end
            self._log.append((play_end, seg))
            self.stats.frames_sent += 1
            if self._on_frame is not None:
                self._on_frame(frame, seg)
            await self._send(frame)
            self._settle(now)
