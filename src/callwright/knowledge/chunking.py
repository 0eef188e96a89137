"""Parsed blocks to retrieval chunks: short, inside one section, cut where sentences end.

A voice agent hands a few chunks to a small LLM on every turn, so chunks stay short and
each one stays inside its section: a chunk that mixes "Refunds" with "Shipping" retrieves
for both and answers neither. The overlap carries a sentence or two across a cut so an
answer that straddles it is still found whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callwright.knowledge.parsers import Block, ParsedDocument


@dataclass(slots=True, frozen=True)
class ChunkSpec:
    max_chars: int = 600
    overlap_chars: int = 80
    min_chars: int = 1  # shorter chunks are dropped: a lone "Menu" only retrieves noise

    def __post_init__(self) -> None:
        if self.max_chars < 100:
            raise ValueError(f"max_chars must be at least 100, got {self.max_chars}")
        if not 0 <= self.overlap_chars < self.max_chars:
            raise ValueError(
                f"overlap_chars must be >= 0 and below max_chars ({self.max_chars}), "
                f"got {self.overlap_chars}"
            )
        if not 1 <= self.min_chars <= self.max_chars:
            raise ValueError(
                f"min_chars must be between 1 and max_chars ({self.max_chars}), "
                f"got {self.min_chars}"
            )


@dataclass(slots=True)
class TextChunk:
    index: int
    text: str
    headings: tuple[str, ...]

    def contextual_text(self, title: str | None = None) -> str:
        """What gets embedded and keyword-indexed: 'Title > H1 > H2\\n' + body, so a chunk
        knows its section. The title is left out where it is already the first heading."""
        parts = list(self.headings)
        title = (title or "").strip()
        if title and (not parts or parts[0] != title):
            parts.insert(0, title)
        return f"{' > '.join(parts)}\n{self.text}" if parts else self.text


# Where a sentence ends: ., ! or ? (maybe closing a quote or bracket), then a space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*[ \t]+")
_SPACE = re.compile(r"\s+")


@dataclass(slots=True)
class _Unit:
    sep: str  # what joins it to the unit before: "\n" between blocks and lines, else " "
    text: str


def chunk_document(doc: ParsedDocument, spec: ChunkSpec = ChunkSpec()) -> list[TextChunk]:
    chunks: list[TextChunk] = []
    for headings, blocks in _sections(doc.blocks):
        for body in _pack(_units(blocks, spec.max_chars), spec):
            if len(body) < spec.min_chars:
                continue
            if chunks and chunks[-1].text == body and chunks[-1].headings == headings:
                continue
            chunks.append(TextChunk(len(chunks), body, headings))
    return chunks


def _sections(blocks: list[Block]) -> list[tuple[tuple[str, ...], list[Block]]]:
    sections: list[tuple[tuple[str, ...], list[Block]]] = []
    for block in blocks:
        if not block.text.strip():
            continue
        if sections and sections[-1][0] == block.headings:
            sections[-1][1].append(block)
        else:
            sections.append((block.headings, [block]))
    return sections


def _units(blocks: list[Block], limit: int) -> list[_Unit]:
    """Blocks that fit stay whole; longer ones split by line, sentence, word, then letters."""
    units: list[_Unit] = []
    for block in blocks:
        text = block.text.strip()
        if len(text) <= limit:
            units.append(_Unit("\n", text))
            continue
        for line in text.split("\n"):
            line = line.rstrip()  # leading spaces mark a nested list item
            if len(line) <= limit:
                if line.strip():
                    units.append(_Unit("\n", line))
                continue
            sep = "\n"
            for sentence in _sentences(line):
                if len(sentence) <= limit:
                    units.append(_Unit(sep, sentence))
                else:
                    for word in sentence.split():
                        # Only a single word past the limit is ever cut inside.
                        pieces = [word[i : i + limit] for i in range(0, len(word), limit)]
                        units.append(_Unit(sep, pieces[0]))
                        units.extend(_Unit("", piece) for piece in pieces[1:])
                        sep = " "
                sep = " "
    return units


def _sentences(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group(0).rstrip(" \t"))
        pieces.append(text[start:end])
        start = match.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def _pack(units: list[_Unit], spec: ChunkSpec) -> list[str]:
    """Greedy packing of one section; each further chunk opens with the last one's tail."""
    bodies: list[str] = []
    current = ""
    for unit in units:
        if not current:
            current = unit.text
            continue
        joined = f"{current}{unit.sep}{unit.text}"
        if len(joined) <= spec.max_chars:
            current = joined
            continue
        bodies.append(current)
        room = spec.max_chars - len(unit.sep) - len(unit.text)
        overlap = _tail(current, min(spec.overlap_chars, room))
        current = f"{overlap}{unit.sep}{unit.text}" if overlap else unit.text
    if current:
        bodies.append(current)
    return bodies


def _tail(text: str, budget: int) -> str:
    """The last whole sentences within budget; failing that, the last whole words."""
    if budget <= 0:
        return ""
    starts = [m.end() for m in _SENTENCE_END.finditer(text)]
    starts += [i + 1 for i, char in enumerate(text) if char == "\n"]
    tail = _longest_suffix(text, starts, budget)
    if tail:
        return tail
    return _longest_suffix(text, [m.end() for m in _SPACE.finditer(text)], budget)


def _longest_suffix(text: str, starts: list[int], budget: int) -> str:
    """The longest text[start:] within budget, never the whole text (that is no tail)."""
    for start in sorted(set(starts)):
        if 0 < start < len(text) and len(text) - start <= budget:
            return text[start:].strip()
    return ""
