"""PDF parsing: hand-written PDFs read by pypdf, encrypted and corrupt ones refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from callwright.knowledge.parsers import PDF, ParseError, parse_document
from tests.knowledge.parsers.samples import make_pdf, texts

PDF_PAGES = [
    [
        "Refund policy",
        "We refund every order within thirty days of purchase. An exam-",
        "ple of a word broken across lines is joined again, and this line",
        "wraps too.",
        "A second paragraph starts after that short line and is long",
        "enough to wrap.",
    ],
    ["Page two has its own text."],
]


def test_pdf_text_paragraphs_and_pages() -> None:
    data = make_pdf(PDF_PAGES, title="Refunds")
    # The hand-made file is a real PDF: pypdf reads its text.
    assert "Refund policy" in PdfReader(io.BytesIO(data)).pages[0].extract_text()
    doc = parse_document(data, filename="refunds.pdf")
    assert doc.mime_type == PDF
    assert doc.title == "Refunds"
    assert doc.metadata == {"pages": 2}
    assert texts(doc.blocks) == [
        "Refund policy",
        "We refund every order within thirty days of purchase. An example of a word broken "
        "across lines is joined again, and this line wraps too.",
        "A second paragraph starts after that short line and is long enough to wrap.",
        "Page two has its own text.",
    ]
    assert all(b.headings == () for b in doc.blocks)


def test_pdf_without_text_needs_ocr() -> None:
    with pytest.raises(ParseError, match="no extractable text: scanned PDFs need OCR"):
        parse_document(make_pdf([[]]), filename="scan.pdf")


def test_encrypted_pdf(tmp_path: Path) -> None:
    reader = PdfReader(io.BytesIO(make_pdf(PDF_PAGES)))
    locked = PdfWriter(clone_from=reader)
    locked.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    locked.write(buffer)
    with pytest.raises(ParseError, match="encrypted"):
        parse_document(buffer.getvalue(), filename="locked.pdf")
    # Encrypted with an empty user password (only editing is restricted): readable.
    restricted = PdfWriter(clone_from=reader)
    restricted.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    restricted.write(buffer)
    doc = parse_document(buffer.getvalue(), filename="restricted.pdf")
    assert texts(doc.blocks)[0] == "Refund policy"


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4\nnot really a pdf", bytes(range(256)) * 4, make_pdf(PDF_PAGES)[:200]],
)
def test_corrupt_pdf_raises_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match="PDF"):
        parse_document(data, filename="broken.pdf")
