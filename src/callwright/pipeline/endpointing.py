"""End-of-turn decisions: how much more silence to wait after the VAD stop.

VAD silence alone cuts off callers who pause mid-sentence. `EndOfTurnPolicy` is the
seam where a semantic end-of-turn model plugs in; the default reads the transcript:
Whisper punctuates, so a final that ends a sentence is answered at once, one that
trails off ("for the...", "and", a number being dictated) earns extra patience.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_TRAILING_CONNECTIVES = {
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "so",
    "to",
    "for",
    "of",
    "in",
    "on",
    "at",
    "with",
    "my",
    "your",
    "is",
    "are",
    "was",
    "um",
    "uh",
    "because",
    "if",
    "that",
    "like",
    "about",
    "from",
    "by",
    "then",
    "next",
    "this",
    "it's",
    "i'm",
    "i",
}


class EndOfTurnPolicy(Protocol):
    def extra_wait_secs(self, transcript: str) -> float:
        """Seconds of further silence to require after the VAD stop, given the transcript."""
        ...


@dataclass(slots=True)
class TranscriptEndpointing:
    complete_delay_secs: float = 0.0
    incomplete_delay_secs: float = 0.6

    def looks_complete(self, transcript: str) -> bool:
        text = transcript.strip()
        if not text:
            return True
        if text.endswith(("...", "…", ",", "-", "—")):
            return False
        last = re.sub(r"[^\w']", "", text.split()[-1].lower())
        if last in _TRAILING_CONNECTIVES:
            return False
        # dictating a number, a date, a phone number
        return not (last.isdigit() and not text.endswith((".", "?", "!")))

    def extra_wait_secs(self, transcript: str) -> float:
        return (
            self.complete_delay_secs
            if self.looks_complete(transcript)
            else self.incomplete_delay_secs
        )
