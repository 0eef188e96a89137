"""The literal grounding check."""

from __future__ import annotations

from callwright.knowledge.grounding import check_grounding

EVIDENCE = [
    "Opening hours: Monday to Friday 8 am to 6 pm; Saturday 9 am to 1 pm.",
    "Dr. Patel works on Mondays. A visit costs 80 dollars.",
]


def test_supported_answer_passes() -> None:
    g = check_grounding("Dr. Patel sees patients on Monday, from eight am; it costs $80.", EVIDENCE)
    assert not g.flagged, g.unsupported
    assert g.checked >= 3


def test_number_words_and_digits_match() -> None:
    assert not check_grounding("We close at one on Saturday.", EVIDENCE).flagged
    assert check_grounding("We close at two on Saturday.", EVIDENCE).unsupported == ("2",)


def test_invented_facts_are_flagged() -> None:
    g = check_grounding("Dr. Smith is in on Sunday for 95 dollars.", EVIDENCE)
    assert g.flagged
    assert set(g.unsupported) == {"smith", "sunday", "95"}


def test_citations_are_read_not_checked() -> None:
    g = check_grounding("A visit costs 80 dollars [2].", EVIDENCE)
    assert g.cited == (2,) and not g.flagged


def test_nothing_checkable_is_not_flagged() -> None:
    g = check_grounding("Sure, I can help you with that.", EVIDENCE)
    assert not g.flagged and g.checked == 0
