"""Cuts streaming LLM text into speakable pieces as early as they are safe to speak.

The first piece is what the caller waits for, so it is released as soon as it can be
spoken naturally: at the first clause boundary ("Sure," counts), or, in a long
opening phrase without punctuation, before a word that starts a new phrase ("The
clinic is located | next to the library"). TTS then starts while the LLM is still
writing (Pipecat waits for a full sentence, ~0.5 s). Later pieces are whole
sentences, which TTS voices prosody better.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s+")
_CLAUSE_END = re.compile(r"[,;:—–]\s+")
# words that open a new phrase: cutting before one keeps both halves natural to speak
_PHRASE_STARTS = frozenset(
    {
        "and",
        "but",
        "or",
        "so",
        "because",
        "to",
        "for",
        "with",
        "at",
        "on",
        "in",
        "from",
        "next",
        "which",
        "that",
        "when",
        "if",
        "until",
        "after",
        "before",
        "about",
        "between",
    }
)
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "etc.", "vs.", "no.")


class SpeechChunker:
    def __init__(
        self, first_clause_min_words: int = 1, first_phrase_min_words: int = 4, max_chars: int = 220
    ) -> None:
        self.first_clause_min_words = first_clause_min_words
        self.first_phrase_min_words = first_phrase_min_words
        self.max_chars = max_chars
        self._buf = ""
        self._emitted = 0

    def push(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            piece = self._next_piece()
            if piece is None:
                break
            out.append(piece)
        return out

    def flush(self) -> list[str]:
        rest = self._buf.strip()
        self._buf = ""
        if rest:
            self._emitted += 1
            return [rest]
        return []

    def _cut(self, end: int) -> str:
        piece = self._buf[:end].strip()
        self._buf = self._buf[end:]
        self._emitted += 1
        return piece

    def _phrase_cut(self) -> int | None:
        """Offset before a phrase-opening word, once enough words precede it.

        Only complete words count: the last one may still be growing ("nex" -> "next").
        """
        words = list(re.finditer(r"\S+", self._buf))
        if self._buf and not self._buf[-1].isspace():
            words = words[:-1]
        for i, w in enumerate(words):
            if i >= self.first_phrase_min_words and w.group().lower() in _PHRASE_STARTS:
                return w.start()
        return None

    def _next_piece(self) -> str | None:
        for m in _SENTENCE_END.finditer(self._buf):
            # "Dr. Smith" is no sentence end ("3.5" never matches: no space after the dot)
            if self._buf[: m.start() + 1].lower().endswith(_ABBREVIATIONS):
                continue
            return self._cut(m.end())
        if self._emitted == 0:
            for m in _CLAUSE_END.finditer(self._buf):
                if len(self._buf[: m.start()].split()) >= self.first_clause_min_words:
                    return self._cut(m.end())
            cut = self._phrase_cut()
            if cut is not None:
                return self._cut(cut)
        if len(self._buf) > self.max_chars:
            cut = self._buf.rfind(" ", 0, self.max_chars)
            return self._cut(cut if cut > 0 else self.max_chars)
        return None
