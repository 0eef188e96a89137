"""What every parser shares: the formats, the result and error types, the text helpers.

Its own room so that each format's module depends only on this one and its library,
never on another format (Markdown's embedded HTML blocks being the one exception).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
PLAIN = "text/plain"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class DocumentError(ValueError):
    """A document that cannot be turned into text; the message says why, for the uploader."""


class UnsupportedFormat(DocumentError):
    pass


class ParseError(DocumentError):
    pass


@dataclass(slots=True)
class Block:
    text: str
    headings: tuple[str, ...] = ()


@dataclass(slots=True)
class ParsedDocument:
    title: str | None
    blocks: list[Block]
    mime_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


# What one format's parser returns: title, blocks, metadata (normalised by the dispatch).
Parsed = tuple[str | None, list[Block], dict[str, Any]]

_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
# NUL and friends break PostgreSQL text columns and mean nothing to a reader.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\n]+")
LIST_LINE = re.compile(r"^\s*(?:[-*+•◦▪●‣–]\s+|\d{1,3}[.)]\s+|[a-zA-Z][.)]\s+)")


def clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", _INVISIBLE.sub("", text))


def normalise(text: str) -> str:
    """Collapse spaces inside lines but keep line breaks: lists and tables are made of them."""
    lines: list[str] = []
    for raw in clean(text).split("\n"):
        line = _SPACES.sub(" ", raw).strip()
        if not line:
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if indent and LIST_LINE.match(line):
            line = " " * min(indent, 12) + line  # a nested list item keeps its depth
        lines.append(line)
    return "\n".join(lines)


def flat(text: str) -> str:
    return " ".join(clean(text).split())


def join_wrapped(lines: Iterable[str]) -> str:
    """Re-flow hard-wrapped prose into one line, but keep each list item on its own."""
    out: list[str] = []
    for raw in lines:
        line = flat(raw)
        if not line:
            continue
        if out and not LIST_LINE.match(raw):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


class Outline:
    """The heading path as a document is read, and the blocks found under it.

    A heading with nothing under it (say the last one, or a run of headings) is kept as a
    block of its own, so its words stay findable.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._waiting = False  # the deepest heading has no content or subheading yet
        self.blocks: list[Block] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def heading(self, level: int, text: str) -> None:
        text = flat(text)
        if not text:
            return
        if self._waiting and level <= self._stack[-1][0]:
            self._keep_bare_heading()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._waiting = True

    def add(self, text: str) -> None:
        if text.strip():
            self.blocks.append(Block(text, self.path))
            self._waiting = False

    def finish(self) -> list[Block]:
        if self._waiting:
            self._keep_bare_heading()
        return self.blocks

    def _keep_bare_heading(self) -> None:
        self.blocks.append(Block(self._stack[-1][1], self.path))
        self._waiting = False


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(
    data: bytes, charset: str | None, *, named: str | None = None, legacy: str | None = None
) -> str:
    """Bytes to text by one cascade for every text format.

    A byte-order mark, then the charset the upload declared, then one the bytes name
    themselves (`named`: HTML's <meta charset>), then UTF-8. Bytes that are not UTF-8 are
    read as `legacy` when given (text and Markdown pass Windows-1252: what old files use),
    else as UTF-8 with replacement characters (HTML).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    for name in (charset, named):
        if name and _known_codec(name):
            return data.decode(name, errors="replace")
    if legacy is None:
        return data.decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(legacy, errors="replace")


def _known_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True
