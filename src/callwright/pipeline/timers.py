"""The call's clocks that end or nudge it: idle re-prompt, idle hang-up, maximum length.

Plain decisions in audio time (seconds of caller audio, as `pipeline/turns.py`), so a
test can drive them with numbers. Silence starts counting when nobody is speaking and
no reply is playing; a re-prompt is said once per silence; the session says the
goodbye and hangs up when a timer ends the call.
"""

from __future__ import annotations

import enum

from callwright.pipeline.settings import TurnTaking


class TimerAction(enum.Enum):
    REPROMPT = "reprompt"  # "Are you still there?"
    IDLE_HANGUP = "idle_hangup"  # silent too long: goodbye
    MAX_DURATION = "max_duration"  # the call is over its length: goodbye


class CallTimers:
    def __init__(self, params: TurnTaking) -> None:
        self.params = params
        self.quiet_since: float | None = None  # audio time the silence began
        self.reprompted = False
        self.ending = False  # a goodbye is being said

    def caller_spoke(self) -> None:
        self.quiet_since = None
        self.reprompted = False

    def busy(self) -> None:
        """A reply (not a re-prompt) is playing, or the caller's turn is being handled."""
        self.quiet_since = None

    def quiet(self, now: float) -> None:
        """Nobody speaks from `now` (unless a silence is already being counted)."""
        if self.quiet_since is None:
            self.quiet_since = now

    def check(self, now: float, *, replying: bool) -> TimerAction | None:
        p = self.params
        if p.max_call_secs is not None and now >= p.max_call_secs and not self.ending:
            self.ending = True
            return TimerAction.MAX_DURATION
        if self.quiet_since is None or replying or self.ending:
            return None
        idle = now - self.quiet_since
        if p.idle_hangup_secs is not None and idle >= p.idle_hangup_secs:
            self.ending = True
            return TimerAction.IDLE_HANGUP
        if (
            p.idle_reprompt_secs is not None
            and idle >= p.idle_reprompt_secs
            and not self.reprompted
        ):
            self.reprompted = True
            return TimerAction.REPROMPT
        return None
