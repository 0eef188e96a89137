"""Idle re-prompt, idle hang-up and maximum call length, with numbers for time."""

from __future__ import annotations

from callwright.pipeline.settings import TurnTaking
from callwright.pipeline.timers import CallTimers, TimerAction


def timers(**params: object) -> CallTimers:
    return CallTimers(TurnTaking(**params))  # type: ignore[arg-type]


def test_silence_reprompts_once_then_hangs_up():
    t = timers(idle_reprompt_secs=8.0, idle_hangup_secs=20.0)
    t.quiet(1.0)
    assert t.check(8.9, replying=False) is None
    assert t.check(9.0, replying=False) is TimerAction.REPROMPT
    assert t.check(12.0, replying=False) is None  # said once per silence
    assert t.check(20.9, replying=False) is None
    assert t.check(21.0, replying=False) is TimerAction.IDLE_HANGUP
    assert t.ending and t.check(40.0, replying=False) is None


def test_speech_restarts_the_silence_and_the_reprompt():
    t = timers(idle_reprompt_secs=8.0, idle_hangup_secs=20.0)
    t.quiet(0.0)
    assert t.check(8.0, replying=False) is TimerAction.REPROMPT
    t.caller_spoke()
    assert t.check(30.0, replying=False) is None  # nobody is quiet while the caller speaks
    t.quiet(30.0)
    t.quiet(35.0)  # already counting: the first start holds
    assert t.check(38.0, replying=False) is TimerAction.REPROMPT


def test_no_idle_timer_while_a_reply_plays():
    t = timers(idle_reprompt_secs=1.0, idle_hangup_secs=2.0)
    t.quiet(0.0)
    assert t.check(5.0, replying=True) is None
    t.busy()
    assert t.check(6.0, replying=False) is None


def test_maximum_length_ends_the_call_whatever_is_happening():
    t = timers(max_call_secs=60.0, idle_reprompt_secs=None, idle_hangup_secs=None)
    assert t.check(59.9, replying=True) is None
    assert t.check(60.0, replying=True) is TimerAction.MAX_DURATION
    assert t.check(61.0, replying=False) is None
