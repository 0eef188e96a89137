"""DOCX parsing: real Word files written by python-docx."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest

from callwright.knowledge.parsers import DOCX, Block, ParseError, parse_document


def make_docx(tmp_path: Path) -> bytes:
    document = docx.Document()
    document.core_properties.title = "Staff handbook"
    document.add_paragraph("Handbook", style="Title")
    document.add_heading("Holidays", level=1)
    document.add_paragraph("Everyone gets 25 days.")
    document.add_heading("Booking", level=2)
    document.add_paragraph("Ask your manager", style="List Bullet")
    document.add_paragraph("Log it in the portal", style="List Bullet")
    document.add_paragraph("Nested detail", style="List Bullet 2")
    document.add_paragraph("Then wait for approval.")
    document.add_heading("Sick leave", level=1)
    document.add_paragraph("First step", style="List Number")
    document.add_paragraph("Second step", style="List Number")
    table = document.add_table(rows=3, cols=2)
    values = [("Days", "Pay"), ("1-5", "Full"), ("6+", "Half")]
    for row, (a, b) in zip(table.rows, values, strict=True):
        row.cells[0].text = a
        row.cells[1].text = b
    merged = document.add_table(rows=1, cols=3)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "Wide"
    merged.cell(0, 2).text = "Narrow"
    path = tmp_path / "handbook.docx"
    document.save(str(path))
    return path.read_bytes()


def test_docx_headings_lists_tables_and_title(tmp_path: Path) -> None:
    doc = parse_document(make_docx(tmp_path), filename="handbook.docx")
    assert doc.mime_type == DOCX
    assert doc.title == "Staff handbook"
    assert doc.blocks == [
        Block("Everyone gets 25 days.", ("Handbook", "Holidays")),
        Block(
            "- Ask your manager\n- Log it in the portal\n  - Nested detail",
            ("Handbook", "Holidays", "Booking"),
        ),
        Block("Then wait for approval.", ("Handbook", "Holidays", "Booking")),
        Block("1. First step\n2. Second step", ("Handbook", "Sick leave")),
        Block("Days | Pay\n1-5 | Full\n6+ | Half", ("Handbook", "Sick leave")),
        Block("Wide | Narrow", ("Handbook", "Sick leave")),  # a merged cell read once
    ]


def test_docx_title_falls_back_to_title_style(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("Price list", style="Title")
    document.add_paragraph("Coffee 2 EUR.")
    path = tmp_path / "p.docx"
    document.save(str(path))
    doc = parse_document(path.read_bytes(), filename="p.docx")
    assert doc.title == "Price list"
    assert doc.blocks == [Block("Coffee 2 EUR.", ("Price list",))]


def test_corrupt_docx_raises_parse_error() -> None:
    with pytest.raises(ParseError, match="DOCX"):
        parse_document(b"this is not a zip at all", filename="broken.docx")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<not-xml")
        archive.writestr("[Content_Types].xml", "<also broken")
    with pytest.raises(ParseError, match="could not read DOCX"):
        parse_document(buffer.getvalue(), filename="broken.docx")
