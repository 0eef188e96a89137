"""Uploaded files to structured text: paragraphs, lists and tables under their heading path.

Retrieval quality starts here: a chunk that knows it sits under "Billing > Payment plans"
answers "can I pay monthly?" far better than one that lost its section. Every format ends
as the same `ParsedDocument`, and every failure as a `DocumentError` whose message can go
straight back to the person who uploaded the file.

One module per format (markdown, html, text, pdf, docx), the shared types and text
helpers in `common`, and the choice of format and parser in `dispatch`; this package
exports what the rest of the code uses.
"""

from callwright.knowledge.parsers.common import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    Block,
    DocumentError,
    ParsedDocument,
    ParseError,
    UnsupportedFormat,
)
from callwright.knowledge.parsers.dispatch import (
    SUPPORTED_SUFFIXES,
    SUPPORTED_TYPES,
    detect_mime,
    parse_document,
)

__all__ = [
    "DOCX",
    "HTML",
    "MARKDOWN",
    "PDF",
    "PLAIN",
    "SUPPORTED_SUFFIXES",
    "SUPPORTED_TYPES",
    "Block",
    "DocumentError",
    "ParseError",
    "ParsedDocument",
    "UnsupportedFormat",
    "detect_mime",
    "parse_document",
]
