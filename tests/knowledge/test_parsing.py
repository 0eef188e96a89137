"""Document parsing: real Markdown, HTML, text, DOCX and PDF bytes through the real libraries."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from callwright.knowledge.parsing import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    SUPPORTED_SUFFIXES,
    Block,
    DocumentError,
    ParseError,
    UnsupportedFormat,
    detect_mime,
    parse_document,
)


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A minimal valid PDF written by hand: Helvetica text lines, xref offsets computed."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(len(pages)))}]"
            f" /Count {len(pages)} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "16 TL", "72 720 Td"]
        ops += [f"({_esc(line)}) Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
                f" /Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>"
            ).encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info = ""
    if title is not None:
        objects.append(f"<< /Title ({_esc(title)}) >>".encode())
        info = f" /Info {len(objects)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def texts(blocks: list[Block]) -> list[str]:
    return [b.text for b in blocks]


# ---------------------------------------------------------------------------------------
# Type detection


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


# ---------------------------------------------------------------------------------------
# Markdown

MARKDOWN_DOC = """---
title: Acme help centre
access_tags: [staff, billing]
updated: 2024-05-01
---
# Billing

How we bill
our customers.

## Payment plans

We offer *monthly* and [yearly](https://example.com) plans.

- Monthly: pay as you go
- Yearly: two months free
  1. paid upfront
  2. renews automatically

### Card details

| Plan | Price |
|------|-------|
| Basic | 10 |
| Pro | 20 |

## Refunds

Refunds take 5 days.

```
refund --order 42
```

# Shipping

We ship worldwide.
"""


def test_markdown_heading_paths_pop_levels() -> None:
    doc = parse_document(MARKDOWN_DOC.encode(), filename="help.md")
    assert doc.mime_type == MARKDOWN
    by_text = {b.text: b.headings for b in doc.blocks}
    assert by_text["How we bill our customers."] == ("Billing",)
    assert by_text["We offer monthly and yearly plans."] == ("Billing", "Payment plans")
    assert by_text["Plan | Price\nBasic | 10\nPro | 20"] == (
        "Billing",
        "Payment plans",
        "Card details",
    )
    # ## after ### pops back to the second level; # after ## to the first.
    assert by_text["Refunds take 5 days."] == ("Billing", "Refunds")
    assert by_text["refund --order 42"] == ("Billing", "Refunds")
    assert by_text["We ship worldwide."] == ("Shipping",)


def test_markdown_list_is_one_block_and_front_matter_is_metadata() -> None:
    doc = parse_document(MARKDOWN_DOC.encode(), filename="help.md")
    assert (
        "- Monthly: pay as you go\n- Yearly: two months free\n  1. paid upfront\n"
        "  2. renews automatically"
    ) in texts(doc.blocks)
    assert doc.metadata == {
        "title": "Acme help centre",
        "access_tags": ["staff", "billing"],
        "updated": "2024-05-01",  # a YAML date, made JSON-safe
    }
    assert doc.title == "Acme help centre"
    assert not any("access_tags" in t or "---" in t for t in texts(doc.blocks))


def test_markdown_title_falls_back_to_first_h1() -> None:
    doc = parse_document(
        b"Intro line.\n\n# Real title\n\nBody.\n\n# Second\n\nMore.", filename="a.md"
    )
    assert doc.title == "Real title"
    assert doc.metadata == {}
    assert parse_document(b"## Only h2\n\ntext", filename="a.md").title is None


def test_markdown_front_matter_errors_and_non_mappings() -> None:
    with pytest.raises(ParseError, match="front matter"):
        parse_document(b"---\naccess_tags: [staff\n---\nBody", filename="a.md")
    # A rule and a setext heading are not front matter: the text stays.
    doc = parse_document(b"---\nJust a line\n---\nBody text.", filename="a.md")
    assert doc.metadata == {}
    assert "Body text." in texts(doc.blocks)


def test_markdown_heading_without_content_is_kept() -> None:
    doc = parse_document(b"# Contact\n\n## Opening hours\n\n## Phone\n\n555 0100", filename="a.md")
    assert doc.blocks == [
        Block("Opening hours", ("Contact", "Opening hours")),
        Block("555 0100", ("Contact", "Phone")),
    ]


# ---------------------------------------------------------------------------------------
# HTML

HTML_DOC = """<!DOCTYPE html>
<html><head><title>Acme | Returns</title>
<style>.x { color: red }</style><script>var tracking = "SECRET";</script></head>
<body>
<header><div class="logo">Acme Shop</div>
<nav><a href="/">Home</a> <a href="/faq">FAQ</a></nav></header>
<main>
<h1>Returns</h1>
<p>You can return   any item
   within <strong>30 days</strong>.</p>
<div>Loose text in a div <em>with emphasis</em><p>A paragraph inside it.</p>tail text</div>
<h2>How to return</h2>
<ol><li>Pack the item</li><li>Print the label<ul><li>A4 or letter</li></ul></li></ol>
<h3>Costs</h3>
<table><tr><th>Region</th><th>Cost</th></tr><tr><td>EU</td><td>Free</td></tr>
<tr><td>US</td><td>5 USD</td></tr></table>
<h2>Questions</h2>
<dl><dt>Can I exchange?</dt><dd>Yes, once.</dd></dl>
<blockquote><p>Best returns ever.</p></blockquote>
<pre>code   stays
  here</pre>
<form><label>Email</label><input name="e"></form>
<noscript>Enable JavaScript</noscript>
</main>
<aside>Buy our newsletter</aside>
<footer>Copyright Acme</footer>
</body></html>
"""


def test_html_blocks_headings_and_dropped_chrome() -> None:
    doc = parse_document(HTML_DOC.encode(), content_type="text/html")
    assert doc.mime_type == HTML
    assert doc.title == "Acme | Returns"
    assert doc.blocks == [
        Block("You can return any item within 30 days.", ("Returns",)),
        Block("Loose text in a div with emphasis", ("Returns",)),
        Block("A paragraph inside it.", ("Returns",)),
        Block("tail text", ("Returns",)),
        Block(
            "1. Pack the item\n2. Print the label\n  - A4 or letter", ("Returns", "How to return")
        ),
        Block("Region | Cost\nEU | Free\nUS | 5 USD", ("Returns", "How to return", "Costs")),
        Block("Can I exchange?", ("Returns", "Questions")),
        Block("Yes, once.", ("Returns", "Questions")),
        Block("Best returns ever.", ("Returns", "Questions")),
        Block("code stays\nhere", ("Returns", "Questions")),
    ]
    everything = " ".join(texts(doc.blocks))
    dropped = ["SECRET", "color", "Home", "FAQ", "Shop", "newsletter", "Copyright"]
    for word in [*dropped, "Email", "JavaScript"]:
        assert word not in everything


def test_html_no_text_is_duplicated_from_nested_elements() -> None:
    html = (
        b"<div><section><div><p>Once <b>only</b></p></div></section>"
        b"<span>and <i>this</i></span></div>"
    )
    doc = parse_document(html, filename="a.html")
    assert texts(doc.blocks) == ["Once only", "and this"]


def test_html_title_falls_back_to_h1_and_article_header_is_kept() -> None:
    html = (
        b"<html><body><header><h1>Site name</h1></header><article><header><h1>Post title</h1>"
        b"</header><p>Body.</p></article></body></html>"
    )
    doc = parse_document(html, filename="a.html")
    assert doc.title == "Post title"
    assert doc.blocks == [Block("Body.", ("Post title",))]


def test_html_charsets() -> None:
    body = "<html><body><p>Café – crème brûlée</p></body></html>"
    # Declared by the content type.
    latin_bytes = body.replace("–", "-").encode("latin-1")
    latin = parse_document(latin_bytes, content_type="text/html; charset=ISO-8859-1")
    assert texts(latin.blocks) == ["Café - crème brûlée"]
    # Declared by <meta charset>.
    meta = '<html><head><meta charset="windows-1252"></head>' + body[6:]
    assert texts(parse_document(meta.encode("cp1252"), filename="a.html").blocks) == [
        "Café – crème brûlée"
    ]
    # Declared nowhere: UTF-8, with replacement for bytes that are not.
    assert texts(parse_document(body.encode(), filename="a.html").blocks) == ["Café – crème brûlée"]
    broken = parse_document(b"<p>caf\xe9 ok</p>", filename="a.html")
    assert texts(broken.blocks) == ["caf\ufffd ok"]


# ---------------------------------------------------------------------------------------
# Plain text


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


def test_empty_documents_raise() -> None:
    empty = [(b"", "a.txt"), (b"  \n\n\t", "a.md"), (b"<html><body> </body></html>", "a.html")]
    for data, name in empty:
        with pytest.raises(ParseError, match="document has no text"):
            parse_document(data, filename=name)
    with pytest.raises(ParseError, match="document has no text"):
        parse_document(b"<script>x()</script><nav>Home</nav>", filename="a.html")


# ---------------------------------------------------------------------------------------
# DOCX


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


# ---------------------------------------------------------------------------------------
# PDF

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
