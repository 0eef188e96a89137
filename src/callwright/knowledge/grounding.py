"""A cheap grounding check: are the answer's facts in what the agent was given?

Small LLMs answer fluently from nowhere ("we open at 7" when the passage says 8).
After each answer that used knowledge, the checkable facts in it (numbers, times,
prices, weekdays, months, names) are looked up in the evidence: the passages, the
system prompt and the caller's own words. A fact found in none of them flags the
turn for review. It is deliberately literal (no model): it costs microseconds, and a
flag is a prompt for a human to look, not a verdict. The result is the pipeline's
`GroundingResult`, the record every layer above reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from callwright.pipeline.context import GroundingResult

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
}  # fmt: skip
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
)  # fmt: skip
# words that start with a capital without being names
_NOT_NAMES_TEXT = """i i'm i'll i've i'd ok okay yes no sure hello hi thanks thank please
sorry great well so and but or the a an our we you your it this that there here they he
she dr mr mrs ms"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
_CITATION = re.compile(r"\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")
_NUM = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?![\w])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
# a sentence ends at . ! ? and a space, but not after a title ("Dr. Patel")
_SENTENCE_END = re.compile(r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bSt\.)(?<=[.!?])\s+")


def _numbers(text: str) -> set[str]:
    found = set()
    for m in _NUM.finditer(text):
        digits = m.group(0).replace(",", "")
        # "8:30" stays a time; "3.50" a price; "3.0" and "3" are the same number
        if ":" not in digits and "." in digits:
            digits = digits.rstrip("0").rstrip(".")
        found.add(digits)
    words = [w.lower() for w in _WORD.findall(text)]
    i = 0
    while i < len(words):
        w = words[i]
        if w in _NUMBER_WORDS:
            value = _NUMBER_WORDS[w]
            # "twenty five" -> 25, "two hundred" -> 200
            if i + 1 < len(words) and words[i + 1] in _NUMBER_WORDS:
                nxt = _NUMBER_WORDS[words[i + 1]]
                if nxt == 100:
                    value *= 100
                    i += 1
                elif value >= 20 and value % 10 == 0 and nxt < 10:
                    value += nxt
                    i += 1
            found.add(str(value))
        i += 1
    return found


def _names(text: str) -> set[str]:
    names = set()
    for sentence in _SENTENCE_END.split(text):
        words = _WORD.findall(sentence)
        for pos, word in enumerate(words):
            low = word.lower()
            if pos == 0 or not word[0].isupper() or low in _NOT_NAMES:
                continue
            if low in _DAYS or low in _MONTHS or low in _NUMBER_WORDS:
                continue
            names.add(low)
    return names


def _terms(text: str, vocab: Iterable[str]) -> set[str]:
    low = text.lower()
    return {t for t in vocab if re.search(rf"\b{t}\b", low)}


def check_grounding(answer: str, evidence: Iterable[str]) -> GroundingResult:
    """Flag facts in `answer` that appear in none of the `evidence` texts."""
    cited = tuple(
        sorted({int(n) for m in _CITATION.finditer(answer) for n in re.findall(r"\d+", m.group(0))})
    )
    answer = _CITATION.sub(" ", answer)
    source = "\n".join(evidence)
    source_low = source.lower()
    have_numbers = _numbers(source)
    unsupported: list[str] = []
    checked = 0
    for number in sorted(_numbers(answer)):
        checked += 1
        if number not in have_numbers:
            unsupported.append(number)
    for term in sorted(_terms(answer, (*_DAYS, *_MONTHS))):
        checked += 1
        # "weekdays" and ranges ("Monday to Friday") make literal day checks too strict:
        # only a day the evidence never mentions counts as unsupported
        if term not in source_low and not (term in _DAYS and "daily" in source_low):
            unsupported.append(term)
    for name in sorted(_names(answer)):
        checked += 1
        if not re.search(rf"\b{re.escape(name)}\b", source_low):
            unsupported.append(name)
    return GroundingResult(
        flagged=bool(unsupported), unsupported=tuple(unsupported), checked=checked, cited=cited
    )
