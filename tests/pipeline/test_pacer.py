"""The output pacer in virtual time: exact send times, what was heard, late frames."""

from __future__ import annotations

import asyncio

import pytest

from callwright.pipeline.pacer import OutputPacer
from tests.helpers.virtual_time import VirtualTimeLoop

FRAME = 640  # 20 ms of PCM16 at 16 kHz


async def _pacer(lead: float = 0.04) -> tuple[OutputPacer, list[float], asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def send(frame: bytes) -> None:
        sent.append(loop.time())

    pacer = OutputPacer(16000, send, lead_secs=lead)
    return pacer, sent, asyncio.create_task(pacer.run())


async def test_frames_go_out_at_play_time_minus_the_lead_and_heard_text_follows():
    pacer, sent, task = await _pacer(lead=0.04)
    seg1 = pacer.begin_segment("one two three four", turn=1)
    pacer.add(seg1, bytes(FRAME * 25))  # 0.5 s
    pacer.end_segment(seg1)
    seg2 = pacer.begin_segment("five six seven eight", turn=1)
    pacer.add(seg2, bytes(FRAME * 25))
    pacer.end_segment(seg2)
    await asyncio.sleep(0.745)
    assert pacer.active
    touched = pacer.interrupt()
    await asyncio.sleep(0.05)
    task.cancel()
    # frame k plays from k * 20 ms and is sent 40 ms before: the first three at once
    assert sent == pytest.approx([max(0.0, (k - 2) * 0.02) for k in range(40)])
    # a frame counts as heard once half of it has played: 37 frames by 0.755 s
    assert (seg1.played_frames, seg2.played_frames) == (25, 12)
    assert seg1.heard_text() == "one two three four"
    assert seg2.heard_text() == "five"  # 12 of 25 frames: 1 of 4 words, evenly spread
    assert seg2 in touched and seg1.done.is_set() and seg2.done.is_set()
    assert not pacer.active
    assert pacer.stats.late_frames == 0


async def test_a_stalled_loop_makes_late_frames():
    pacer, sent, task = await _pacer(lead=0.04)
    seg = pacer.begin_segment("a long sentence", turn=1)
    pacer.add(seg, bytes(FRAME * 50))
    pacer.end_segment(seg)
    await asyncio.sleep(0.1)  # frames 0-7 sent; the caller has audio until 0.16 s
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    loop.advance(0.15)  # the loop stalls until 0.25 s
    await seg.done.wait()
    task.cancel()
    # playback ran dry at 0.16 s with audio waiting: 0.09 s = 5 frame slots missed
    assert pacer.stats.late_frames == 5
    assert pacer.stats.max_lateness_secs == pytest.approx(0.09)
    assert sent[8] == pytest.approx(0.25)  # sent the moment the loop came back


async def test_audio_that_arrives_after_a_gap_is_not_late():
    pacer, sent, task = await _pacer()
    first = pacer.begin_segment("first", turn=1)
    pacer.add(first, bytes(FRAME * 5))
    pacer.end_segment(first)
    await asyncio.sleep(0.5)  # the TTS is slow: nothing to send for a while
    second = pacer.begin_segment("second", turn=1)
    pacer.add(second, bytes(FRAME * 5))
    pacer.end_segment(second)
    await second.done.wait()
    task.cancel()
    assert pacer.stats.late_frames == 0
    assert sent[5] == pytest.approx(0.5)  # a new burst at once


async def test_pause_holds_the_queue_and_resume_plays_on_from_the_same_frame():
    pacer, sent, task = await _pacer(lead=0.04)
    seg = pacer.begin_segment("one two three four five", turn=1)
    pacer.add(seg, bytes(FRAME * 20))
    pacer.end_segment(seg)
    await asyncio.sleep(0.09)
    pacer.pause()
    await asyncio.sleep(0.5)
    assert len(sent) == 7  # frames 0-6 went out before the pause; none while paused
    pacer.resume()
    await seg.done.wait()
    task.cancel()
    assert len(sent) == 20 and sent[7] == pytest.approx(0.59)
    assert seg.heard_text() == "one two three four five"
    assert pacer.stats.late_frames == 0  # a pause is not lateness
