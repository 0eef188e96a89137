"""The caller's yes, read deterministically."""

from __future__ import annotations

import pytest

from callwright.actions.confirm import is_affirmative


@pytest.mark.parametrize(
    "text",
    [
        "Yes.",
        "yeah",
        "Yep, go ahead.",
        "That's right.",
        "Correct.",
        "Sure, please do.",
        "Okay, sounds good.",
        "Yes please",
        "That’s right",  # a typographic apostrophe, as Whisper writes it
    ],
)
def test_a_clear_yes(text: str) -> None:
    assert is_affirmative(text)


@pytest.mark.parametrize(
    "text",
    [
        "No.",
        "Nope.",
        "Yes, but not Tuesday.",
        "Wait, actually, make it three.",
        "I don't think so.",
        "Cancel that.",
        "What time was it?",
        "Hmm.",
        "",
        "Not really, no.",
    ],
)
def test_anything_else_is_not_a_yes(text: str) -> None:
    assert not is_affirmative(text)
