"""Did the caller say yes? A deterministic reading of a short answer, for actions
that need the caller's confirmation before they run (`sensitive` tools).

Plain word lists, not the LLM: the decision to book or to send must not rest on a
0.5B model's judgement of "yes, but not Tuesday". Anything with a negation or a
hesitation in it is not a yes; the agent asks again.
"""

from __future__ import annotations

import re

_YES = frozenset(
    {
        "yes",
        "yeah",
        "yep",
        "yup",
        "correct",
        "right",
        "sure",
        "ok",
        "okay",
        "confirm",
        "confirmed",
        "absolutely",
        "definitely",
        "please",
        "perfect",
        "great",
        "fine",
        "exactly",
    }
)
_YES_PHRASES = ("go ahead", "do it", "sounds good", "that's right", "that is right")
_NOT_YES = frozenset(
    {
        "no",
        "nope",
        "not",
        "don't",
        "dont",
        "wait",
        "cancel",
        "stop",
        "wrong",
        "change",
        "actually",
        "but",
        "hold",
        "never",
        "isn't",
        "hmm",
    }
)
_WORD = re.compile(r"[a-z']+")


def is_affirmative(text: str) -> bool:
    """True for a clear yes ("Yes please", "That's right, go ahead"); False for a no,
    a hedge ("yes, but ...", "wait") or anything else."""
    low = text.lower().replace("’", "'")
    words = _WORD.findall(low)
    if not words or any(w in _NOT_YES for w in words):
        return False
    return any(w in _YES for w in words) or any(p in low for p in _YES_PHRASES)
