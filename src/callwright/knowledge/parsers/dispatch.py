"""Which format a document is (declared type, suffix, bytes) and the parser that reads it.

Its own room because it is the one place that knows every format: the format modules
know only their own, and everything that ends a parse (normalised text, an error that
names the format) happens here the same way for all of them.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from callwright.knowledge.parsers.common import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    Block,
    DocumentError,
    Parsed,
    ParsedDocument,
    ParseError,
    UnsupportedFormat,
    flat,
    normalise,
)
from callwright.knowledge.parsers.docx import parse_docx
from callwright.knowledge.parsers.html import parse_html
from callwright.knowledge.parsers.markdown import parse_markdown
from callwright.knowledge.parsers.pdf import parse_pdf
from callwright.knowledge.parsers.text import parse_plain

SUPPORTED_SUFFIXES: dict[str, str] = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": PLAIN,
    ".text": PLAIN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
}
SUPPORTED_TYPES: frozenset[str] = frozenset(SUPPORTED_SUFFIXES.values())
# Other names clients send for the same formats.
_TYPE_ALIASES = {
    "text/x-markdown": MARKDOWN,
    "application/xhtml+xml": HTML,
    "application/x-pdf": PDF,
}
_PARSERS: dict[str, Callable[[bytes, str | None], Parsed]] = {
    MARKDOWN: parse_markdown,
    HTML: parse_html,
    PDF: parse_pdf,
    DOCX: parse_docx,
    PLAIN: parse_plain,
}
_FORMAT_NAMES = {MARKDOWN: "Markdown", HTML: "HTML", PDF: "PDF", DOCX: "DOCX", PLAIN: "text"}


def _supported_list() -> str:
    suffixes = ", ".join(SUPPORTED_SUFFIXES)
    types = ", ".join(sorted(SUPPORTED_TYPES))
    return f"supported: {suffixes} ({types})"


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    return _TYPE_ALIASES.get(base, base) or None


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = re.search(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def _sniff(data: bytes) -> str | None:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return DOCX
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        return None
    lowered = head.lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return HTML
    return None


def detect_mime(filename: str | None, content_type: str | None, data: bytes) -> str:
    """The declared type when we support it, else the file suffix, else the bytes.

    `text/plain` is the one declared type a suffix may refine: static servers (GitHub raw
    among them) send it for every text file, Markdown and HTML included.
    """
    declared = _media_type(content_type)
    suffix = PurePath(filename).suffix.lower() if filename else ""
    by_suffix = SUPPORTED_SUFFIXES.get(suffix)
    if declared in SUPPORTED_TYPES:
        if declared == PLAIN and by_suffix in (MARKDOWN, HTML):
            return by_suffix
        return declared
    if by_suffix:
        return by_suffix
    sniffed = _sniff(data)
    if sniffed:
        return sniffed
    described = ", ".join(
        part
        for part in (
            f"file name {filename!r}" if filename else "",
            f"content type {content_type!r}" if content_type else "",
        )
        if part
    )
    raise UnsupportedFormat(
        f"unsupported document type ({described or 'no file name or content type'}); "
        f"{_supported_list()}"
    )


def parse_document(
    data: bytes, *, filename: str | None = None, content_type: str | None = None
) -> ParsedDocument:
    data = bytes(data)
    mime = detect_mime(filename, content_type, data)
    if not data.strip():
        raise ParseError("document has no text")
    charset = _charset(content_type)
    parser = _PARSERS[mime]
    try:
        title, blocks, metadata = parser(data, charset)
    except (DocumentError, ImportError):
        raise  # ours already say what is wrong; a missing library is the server's fault
    except Exception as exc:  # a library's own error for bad bytes: say which format failed
        raise ParseError(f"could not read {_FORMAT_NAMES[mime]}: {_describe(exc)}") from exc
    return _finish(title, blocks, mime, metadata)


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _finish(
    title: str | None, blocks: list[Block], mime: str, metadata: dict[str, Any]
) -> ParsedDocument:
    kept: list[Block] = []
    for block in blocks:
        text = normalise(block.text)
        if text:
            headings = tuple(h for h in (flat(h) for h in block.headings) if h)
            kept.append(Block(text, headings))
    if not kept:
        raise ParseError("document has no text")
    clean_title = flat(title) if title else ""
    return ParsedDocument(clean_title or None, kept, mime, metadata)
