"""Smoke tests of the session on the ordinary event loop, in real time.

The behaviour is tested exactly in virtual time (`test_session.py`); these check that
nothing in the pipeline depends on virtual time, with bounds loose enough for a busy
machine.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.voice_session import REPLY, silence, tone

pytestmark = pytest.mark.realtime


async def test_one_turn_in_real_time(make_session):
    h = await make_session()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_ended", within=15)
    assert " ".join(e.text for e in h.out.of("agent_text")) == REPLY
    times = [t for t, _ in h.out.audio]
    # paced, not dumped: the reply's ~4.9 s of audio took real time to send
    assert times[-1] - times[0] >= len(times) * 0.02 - 0.2
    assert loop.time() - t0 >= 1.2 + len(times) * 0.02 - 0.2
    assert await h.stop() == "caller_hangup"


async def test_barge_in_in_real_time(make_session):
    h = await make_session(interruption_min_secs=0.4)
    await h.feed(tone(1.0) + silence(0.2))
    await h.feed_until("agent_speech_started", within=15)
    await h.feed(silence(0.6))
    await h.feed(tone(1.2))
    event = await h.out.wait_for("interruption", within=5)
    assert event.heard_text and REPLY.startswith(event.heard_text)
    assert h.out.clears
