"""Plain text parsing: guessed headings, list lines, encodings, whitespace."""

from __future__ import annotations

from callwright.knowledge.parsers import PLAIN, Block, parse_document
from tests.knowledge.parsers.samples import texts


def test_text_heading_heuristics() -> None:
    text = (
        "Getting started\n\n"
        "Install the app and sign in. It takes a minute.\n\n"
        "Billing\n=======\n\n"
        "We bill monthly.\n\n"
        "Invoices\n--------\n"
        "Invoices are emailed.\n\n"
        "Late fees\n\n"
        "There are no late fees.\n"
        "Really, none at\nall.\n\n"
        "# Contact\n\n"
        "Phone: 555 0100\n\n"
        "Email: help@example.com\n"
    )
    doc = parse_document(text.encode(), filename="guide.txt")
    assert doc.mime_type == PLAIN
    assert doc.title == "Getting started"
    assert doc.blocks == [
        Block("Install the app and sign in. It takes a minute.", ("Getting started",)),
        Block("We bill monthly.", ("Billing",)),
        Block("Invoices are emailed.", ("Billing", "Invoices")),
        Block("There are no late fees. Really, none at all.", ("Billing", "Invoices", "Late fees")),
        # Two short lines in a row are a list of facts, not a heading and its body.
        Block("Phone: 555 0100", ("Contact",)),
        Block("Email: help@example.com", ("Contact",)),
    ]


def test_text_keeps_list_lines_and_a_final_short_line_is_body() -> None:
    doc = parse_document(b"Bring:\n- a passport\n- a ticket\n\nSee you", filename="a.txt")
    assert texts(doc.blocks) == ["Bring:\n- a passport\n- a ticket", "See you"]
    assert all(b.headings == () for b in doc.blocks)


def test_text_encodings() -> None:
    assert texts(parse_document("\ufeffnaïve café".encode(), filename="a.txt").blocks) == [
        "naïve café"
    ]
    assert texts(parse_document("naïve – café".encode("cp1252"), filename="a.txt").blocks) == [
        "naïve – café"
    ]
    utf16 = parse_document("\ufeffhello wörld".encode("utf-16"), filename="a.txt")
    assert texts(utf16.blocks) == ["hello wörld"]


def test_whitespace_and_control_characters_are_normalised() -> None:
    doc = parse_document(b"  lots   of\t\tspace \x00here\r\n\r\n\r\n   \n", filename="a.txt")
    assert texts(doc.blocks) == ["lots of space here"]
