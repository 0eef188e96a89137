"""Turn-taking as plain decisions: who speaks now, and when the caller's turn ends.

`TurnDetector` takes what happens (a VAD window's speech probability, a partial or
final transcript, whether the agent is audible) and returns what to do about it as
small typed decisions: speech started, decode now, pause or resume the agent,
interrupt it, start a speculative reply, end of turn. It has no event loop, no tasks
and reads no clock: time is audio time (windows counted), so the same audio always
gives the same decisions whatever the network or the machine does, and tests feed it
plain arrays. The session (`pipeline/session.py`) carries the decisions out.

The rules, as measured in earlier sessions (docs/benchmarks.md, docs/NOTES.md):
- a decode starts at the VAD's first silent window, so the final is usually ready at
  the VAD stop; the reply may start then, held until the end of turn is confirmed
  (the end-of-turn policy may want more silence after "for..." or a number);
- speech over audible agent audio is a barge-in candidate: at `interruption_min_secs`
  the agent pauses while the words are decoded; real words interrupt it, a
  backchannel ("mhm") or noise resumes it from the paused frame.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from callwright.pipeline.settings import TurnTaking
from callwright.pipeline.vad import VadEvent, VadSegmenter


class Agent(enum.Enum):
    """The agent's side, as the detector needs to know it."""

    SILENT = "silent"  # no reply
    PREPARING = "preparing"  # a reply exists, nothing audible yet (or held for the end of turn)
    AUDIBLE = "audible"  # the caller hears agent audio


@dataclass(eq=False, slots=True)
class Utterance:
    """One stretch of caller speech (it may span VAD stops until its turn ends)."""

    start_time: float  # audio time of the VAD start
    over_agent: bool  # began while agent audio was audible: a barge-in candidate
    decided: bool = False  # the agent was interrupted (or another reply cut it off)
    backchannel: bool = False  # only backchannel words so far
    evaluating: bool = False  # a decode that decides the barge-in is in flight
    paused_agent: bool = False  # the agent's audio is held while this speech is decided


@dataclass(eq=False, slots=True)
class PendingTurn:
    """Between the VAD stop and the end of turn: waiting for the final and the policy."""

    stop_time: float
    transcript: str | None = None
    deadline: float | None = None  # audio time the turn ends at, once the final is known


# ------------------------------------------------------------------ decisions
@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking. `continued`: after a VAD stop whose turn had not
    ended, so the same utterance goes on (and a speculative reply is dropped).
    `agent_audible`: the agent was audible when it started."""

    continued: bool
    agent_audible: bool


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Silence confirmed. `dropped`: it was noise or a backchannel over the agent, not
    a turn (forget its audio); otherwise a `DecodeFinal` follows."""

    dropped: bool


@dataclass(frozen=True, slots=True)
class DecodeAtPause:
    """First silent window: start decoding what was said, the likely final."""


@dataclass(frozen=True, slots=True)
class DecodePartial:
    """Decode the utterance so far; report with `on_partial(utterance, text)`."""

    utterance: Utterance


@dataclass(frozen=True, slots=True)
class DecodeFinal:
    """Decode the whole utterance; report with `on_final(pending, text)`."""

    pending: PendingTurn


@dataclass(frozen=True, slots=True)
class PauseAgent:
    """Caller speech over the agent long enough to be an interruption: fall silent."""


@dataclass(frozen=True, slots=True)
class ResumeAgent:
    """It was not an interruption: play on from the paused frame."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A real interruption: stop the agent, keep what was heard."""


@dataclass(frozen=True, slots=True)
class PartialText:
    """A partial transcript to show; `prefetch`: the caller is taking a turn, so its
    context may be looked up ahead of the end of turn."""

    text: str
    prefetch: bool


@dataclass(frozen=True, slots=True)
class SpeculativeReply:
    """The final is known and the turn will likely end: start the reply, held."""

    text: str


@dataclass(frozen=True, slots=True)
class EndOfTurn:
    """The caller's turn is over; `text` may be empty (nothing recognised)."""

    text: str


@dataclass(frozen=True, slots=True)
class FinalFailed:
    """The final decode failed; the utterance is forgotten."""

    error: str


Decision = (
    SpeechStarted
    | SpeechStopped
    | DecodeAtPause
    | DecodePartial
    | DecodeFinal
    | PauseAgent
    | ResumeAgent
    | Interrupt
    | PartialText
    | SpeculativeReply
    | EndOfTurn
    | FinalFailed
)

_NONE: tuple[Decision, ...] = ()


@dataclass(slots=True)
class DecoderState:
    """What the detector needs to know of the transcriber, per window."""

    busy: bool = False  # a decode is in flight
    partial_due: bool = False  # enough new audio for the next partial


class TurnDetector:
    """Decides turn-taking from VAD windows and transcripts, in audio time."""

    def __init__(self, params: TurnTaking, window_secs: float) -> None:
        self.params = params
        self.window_secs = window_secs
        self.segmenter = VadSegmenter(params.vad, window_secs)
        self.windows = 0
        self.audio_time = 0.0  # seconds of caller audio seen
        self.voiced = False  # the last window was speech
        self.utterance: Utterance | None = None
        self.pending: PendingTurn | None = None
        self._backchannels = params.backchannel_words

    @property
    def idle(self) -> bool:
        """No caller speech being heard or waiting for its end of turn."""
        return self.utterance is None and self.pending is None

    # ------------------------------------------------------------------ inputs
    def on_window(self, prob: float, agent: Agent, decoder: DecoderState) -> list[Decision]:
        """One VAD window of caller audio with its speech probability."""
        index = self.windows
        self.windows += 1
        self.audio_time = self.windows * self.window_secs
        seg = self.segmenter
        event = seg.process(index, prob)
        self.voiced = seg.last_voiced_index == index
        out: list[Decision] = []
        if event is VadEvent.START:
            out.append(self._speech_started(agent))
        elif event is VadEvent.PAUSE:
            utt = self.utterance
            if utt is not None and not (utt.over_agent and not utt.decided):
                out.append(DecodeAtPause())
        elif event is VadEvent.STOP:
            out.extend(self._speech_stopped())
        if seg.speaking and self.utterance is not None:
            self._while_speaking(self.utterance, agent, decoder, out)
        out.extend(self._check_deadline())
        return out

    def on_partial(self, utterance: Utterance, text: str | None) -> list[Decision]:
        """A partial decode of `utterance` finished (`None`: it failed)."""
        utterance.evaluating = False
        if text is None or self.utterance is not utterance:
            return list(self._resume(utterance))
        out: list[Decision] = []
        if text and not utterance.backchannel:
            out.append(PartialText(text, prefetch=not utterance.over_agent or utterance.decided))
        if self._needs_decision(utterance):
            words = [w.strip(".,!?;:").lower() for w in text.split()]
            real = [w for w in words if w and w not in self._backchannels]
            if len(real) >= self.params.interruption_min_words:
                utterance.backchannel = False
                out.extend(self._interrupt(utterance))
            elif words:  # only backchannel words: the agent plays on
                utterance.backchannel = True
                out.extend(self._resume(utterance))
            # nothing recognised yet: still undecided (and paused); the next decode
            # decides, and speech that stops undecided resumes the agent
        return out

    def on_final(
        self, pending: PendingTurn, text: str | None, agent: Agent, error: str = ""
    ) -> list[Decision]:
        """The final decode of `pending` finished (`None`: it failed with `error`)."""
        if self.pending is not pending:
            return []
        if text is None:
            self.pending = None
            self.utterance = None
            return [FinalFailed(error)]
        pending.transcript = text
        pending.deadline = pending.stop_time + self.params.endpointing.extra_wait_secs(text)
        out: list[Decision] = []
        if (
            text
            and self.params.speculative
            and agent is Agent.SILENT
            and pending.deadline > self.audio_time
        ):
            out.append(SpeculativeReply(text))
        out.extend(self._check_deadline())
        return out

    def mark_decided(self) -> None:
        """The agent's reply was cut off (by this caller, or replaced by the agent)."""
        if self.utterance is not None:
            self.utterance.decided = True

    def agent_finished(self) -> None:
        """The agent finished its reply while the caller may be talking over its end:
        that speech is simply the caller's turn now."""
        utt = self.utterance
        if utt is not None and utt.over_agent and not utt.decided:
            utt.over_agent = False
            utt.backchannel = False

    # ------------------------------------------------------------------ rules
    def _speech_started(self, agent: Agent) -> SpeechStarted:
        audible = agent is Agent.AUDIBLE
        if self.pending is not None:
            # the caller went on after a stop: same utterance, drop the speculative reply
            self.pending = None
            return SpeechStarted(continued=True, agent_audible=audible)
        allow = self.params.allow_interruptions
        self.utterance = Utterance(start_time=self.audio_time, over_agent=audible and allow)
        if audible and not allow:
            self.utterance.backchannel = True  # caller talks over an agent that won't yield
        return SpeechStarted(continued=False, agent_audible=audible)

    def _speech_stopped(self) -> Iterable[Decision]:
        utt = self.utterance
        if utt is None:
            return (SpeechStopped(dropped=False),)
        if (utt.over_agent and not utt.decided) or utt.backchannel:
            # noise, a cough or "mhm" over the agent: the agent carries on
            resumed = self._resume(utt)
            self.utterance = None
            return (SpeechStopped(dropped=True), *resumed)
        self.pending = PendingTurn(stop_time=self.audio_time)
        return (SpeechStopped(dropped=False), DecodeFinal(self.pending))

    def _elapsed(self, utt: Utterance) -> float:
        return self.audio_time - utt.start_time

    def _needs_decision(self, utt: Utterance) -> bool:
        return (
            utt.over_agent
            and not utt.decided
            and self._elapsed(utt) >= self.params.interruption_min_secs
        )

    def _while_speaking(
        self, utt: Utterance, agent: Agent, decoder: DecoderState, out: list[Decision]
    ) -> None:
        p = self.params
        needs_decision = self._needs_decision(utt)
        if (
            needs_decision
            and p.pause_while_deciding
            and p.interruption_min_words > 0
            and not utt.paused_agent
            and not utt.backchannel
            and agent is not Agent.SILENT
        ):
            # long enough to be an interruption: fall silent now, let the words decide
            utt.paused_agent = True
            out.append(PauseAgent())
        if decoder.busy or not (decoder.partial_due or (needs_decision and not utt.evaluating)):
            return
        if needs_decision and p.interruption_min_words <= 0:
            out.extend(self._interrupt(utt))
            return
        utt.evaluating = needs_decision
        out.append(DecodePartial(utt))

    def _interrupt(self, utt: Utterance) -> tuple[Decision, ...]:
        utt.decided = True
        return (Interrupt(),)

    def _resume(self, utt: Utterance) -> tuple[Decision, ...]:
        if utt.paused_agent and not utt.decided:
            utt.paused_agent = False
            return (ResumeAgent(),)
        return _NONE

    def _check_deadline(self) -> tuple[Decision, ...]:
        pending = self.pending
        if pending is None or pending.deadline is None or self.audio_time < pending.deadline:
            return _NONE
        self.pending = None
        self.utterance = None
        return (EndOfTurn(pending.transcript or ""),)
