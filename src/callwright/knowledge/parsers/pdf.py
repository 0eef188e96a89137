"""PDF text to paragraphs, page by page.

Its own room because a PDF has no paragraphs, only positioned lines: they are rebuilt
from line lengths and hyphenation, and encrypted or scanned files are refused with a
message the uploader can act on.
"""

from __future__ import annotations

import io
import re

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from callwright.knowledge.parsers.common import (
    LIST_LINE,
    Block,
    Parsed,
    ParseError,
    clean,
    flat,
    join_wrapped,
)


def _pdf_paragraphs(text: str) -> list[str]:
    """Paragraphs of one page's text, which has line breaks but seldom blank lines.

    Wrapped prose runs close to the full width, so a line well short of the page's usual
    length ends its paragraph (or is a heading or label: its own block either way).
    """
    lines = [flat(line) for line in clean(text).split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return []
    short = 0.75 * lengths[int(0.9 * (len(lengths) - 1))]
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            paragraphs.append(join_wrapped(current))
            current.clear()

    closed = False  # the line before was short: a new paragraph starts, or the list goes on
    for line in lines:
        if not line:
            flush()
            closed = False
            continue
        is_item = LIST_LINE.match(line) is not None
        in_list = bool(current) and LIST_LINE.match(current[0]) is not None
        if current and (closed or is_item) and not (in_list and is_item):
            flush()
        # "exam-" + "ple" is one word broken by the line; "well-known" seldom starts lower.
        if current and re.search(r"\w-$", current[-1]) and line[:1].islower():
            current[-1] = current[-1][:-1] + line
        else:
            current.append(line)
        closed = len(line) < short
    flush()
    return [p for p in paragraphs if p]


def parse_pdf(data: bytes, charset: str | None) -> Parsed:
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as exc:
            raise ParseError(f"could not read PDF: it is encrypted and {exc}") from exc
        if opened == PasswordType.NOT_DECRYPTED:
            raise ParseError(
                "could not read PDF: it is encrypted with a password; upload an unprotected copy"
            )
    blocks: list[Block] = []
    try:
        pages = list(reader.pages)
        for page in pages:
            blocks.extend(Block(p) for p in _pdf_paragraphs(page.extract_text() or ""))
    except FileNotDecryptedError as exc:
        raise ParseError("could not read PDF: it is encrypted with a password") from exc
    if not blocks:
        raise ParseError("could not read PDF: no extractable text: scanned PDFs need OCR")
    info = reader.metadata
    title = info.title if info is not None else None
    return (title if isinstance(title, str) else None), blocks, {"pages": len(pages)}
