"""Choosing the format (declared type, suffix, bytes) and what every parse ends with."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest

from callwright.knowledge.parsers import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    SUPPORTED_SUFFIXES,
    DocumentError,
    ParseError,
    UnsupportedFormat,
    detect_mime,
    parse_document,
)
from tests.knowledge.parsers.samples import make_pdf


def test_content_type_wins_and_ignores_parameters() -> None:
    assert detect_mime("notes.txt", "text/markdown; charset=utf-8", b"x") == MARKDOWN
    assert detect_mime(None, "TEXT/HTML;charset=ISO-8859-1", b"x") == HTML


def test_suffix_used_when_content_type_is_generic_or_missing() -> None:
    assert detect_mime("Guide.PDF", "application/octet-stream", b"x") == PDF
    assert detect_mime("a.markdown", None, b"x") == MARKDOWN
    assert detect_mime("a.htm", None, b"x") == HTML
    assert detect_mime("a.docx", None, b"x") == DOCX
    assert detect_mime("a.text", None, b"x") == PLAIN
    # Servers label every text file text/plain; the suffix knows better.
    assert detect_mime("readme.md", "text/plain", b"x") == MARKDOWN
    suffixes = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf", ".docx"}
    assert set(SUPPORTED_SUFFIXES) == suffixes


def test_sniffing_without_name_or_type(tmp_path: Path) -> None:
    assert detect_mime(None, None, make_pdf([["hi"]])) == PDF
    assert detect_mime("upload", None, b"  <!DOCTYPE html><p>x</p>") == HTML
    assert detect_mime(None, None, b"<html><body>x</body></html>") == HTML
    path = tmp_path / "d.docx"
    document = docx.Document()
    document.add_paragraph("hello")
    document.save(str(path))
    assert detect_mime(None, None, path.read_bytes()) == DOCX


def test_unsupported_type_lists_supported_ones() -> None:
    with pytest.raises(UnsupportedFormat) as info:
        parse_document(b"\x89PNG\r\n", filename="logo.png", content_type="image/png")
    message = str(info.value)
    assert "logo.png" in message and "image/png" in message
    for suffix in (".md", ".pdf", ".docx", ".html", ".txt"):
        assert suffix in message
    assert isinstance(info.value, DocumentError) and isinstance(info.value, ValueError)
    # A zip that is not a Word document is not sniffed as one.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(UnsupportedFormat):
        detect_mime(None, None, buffer.getvalue())


def test_empty_documents_raise() -> None:
    empty = [(b"", "a.txt"), (b"  \n\n\t", "a.md"), (b"<html><body> </body></html>", "a.html")]
    for data, name in empty:
        with pytest.raises(ParseError, match="document has no text"):
            parse_document(data, filename=name)
    with pytest.raises(ParseError, match="document has no text"):
        parse_document(b"<script>x()</script><nav>Home</nav>", filename="a.html")
