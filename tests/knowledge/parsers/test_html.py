"""HTML parsing: blocks under headings, site chrome dropped, charsets, through BeautifulSoup."""

from __future__ import annotations

from callwright.knowledge.parsers import HTML, Block, parse_document
from tests.knowledge.parsers.samples import texts

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
