"""HTML to blocks: the page's own text under its headings, site chrome dropped.

Its own room because HTML is the messiest input: browsers repair what pages get wrong,
so the reader walks lxml's repaired tree, drops navigation, headers, footers and
scripts, and keeps text a sloppy page puts straight in lists or between blocks.
"""

from __future__ import annotations

import re
from typing import Any

from bs4 import BeautifulSoup, CData, FeatureNotFound, NavigableString, Tag
from bs4.element import PreformattedString

from callwright.knowledge.parsers.common import Outline, Parsed, decode, flat, normalise

_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "nav",
    "footer",
    "header",
    "aside",
    "form",
    "template",
    "svg",
    "iframe",
    "object",
    "embed",
    "canvas",
)
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LIST_TAGS = ("ul", "ol", "menu")
# Elements read as one flat block each.
_FLAT_TAGS = ("p", "blockquote", "dt", "dd", "figcaption", "caption", "summary", "address")
_BLOCK_TAGS = frozenset(
    {
        *_HEADING_TAGS,
        *_LIST_TAGS,
        *_FLAT_TAGS,
        *_DROP_TAGS,
        "html",
        "body",
        "main",
        "article",
        "section",
        "div",
        "center",
        "details",
        "dialog",
        "dl",
        "fieldset",
        "figure",
        "hgroup",
        "hr",
        "li",
        "pre",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "td",
        "th",
    }
)
_BLOCK_NAMES = sorted(_BLOCK_TAGS)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def _meta_charset(data: bytes) -> str | None:
    """The charset a page names in its <meta> tag, if any."""
    meta = _META_CHARSET.search(data[:4096])
    return meta.group(1).decode("ascii", errors="ignore") if meta else None


def _soup(markup: str) -> Any:
    try:
        return BeautifulSoup(markup, "lxml")  # repairs unclosed <p> and <li> like browsers
    except FeatureNotFound:
        return BeautifulSoup(markup, "html.parser")


def _is_text(node: Any) -> bool:
    if not isinstance(node, NavigableString):
        return False
    return not isinstance(node, PreformattedString) or isinstance(node, CData)


def _inline(node: Any) -> str:
    """Text of an element as a reader sees it: <br> breaks, nested blocks spaced apart."""
    parts: list[str] = []
    for child in node.children:
        if _is_text(child):
            parts.append(re.sub(r"\s+", " ", str(child)))
        elif isinstance(child, Tag):
            if child.name == "br":
                parts.append("\n")
            elif child.name in _BLOCK_TAGS:
                parts.append(f" {_inline(child)} ")
            else:
                parts.append(_inline(child))
    return "".join(parts)


def html_fragment_text(markup: str) -> str:
    soup = _soup(markup)
    for tag in soup.find_all(["script", "style", "template"]):
        tag.decompose()
    return flat(_inline(soup))


class _HtmlReader:
    def __init__(self) -> None:
        self.outline = Outline()

    def walk(self, element: Any) -> None:
        buffer: list[str] = []
        for child in element.children:
            if _is_text(child):
                buffer.append(re.sub(r"\s+", " ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name == "br":
                buffer.append("\n")
            elif name in _BLOCK_TAGS or child.find(_BLOCK_NAMES) is not None:
                self._flush(buffer)
                self._block(child)
            else:
                buffer.append(_inline(child))
        self._flush(buffer)

    def _flush(self, buffer: list[str]) -> None:
        if buffer:
            self.outline.add(normalise("".join(buffer)))
            buffer.clear()

    def _block(self, tag: Any) -> None:
        name = tag.name
        if name in _HEADING_TAGS:
            self.outline.heading(_HEADING_TAGS[name], _inline(tag))
        elif name in _LIST_TAGS:
            self.outline.add("\n".join(self._list(tag, 0)))
        elif name == "table":
            self.outline.add(self._table(tag))
        elif name == "pre":
            self.outline.add(tag.get_text())
        elif name in _FLAT_TAGS:
            self.outline.add(flat(_inline(tag)))
        else:
            self.walk(tag)

    def _list(self, tag: Any, depth: int) -> list[str]:
        lines: list[str] = []
        number = 1
        if tag.name == "ol":
            try:
                number = int(tag.get("start", 1))
            except (TypeError, ValueError):
                number = 1
        for child in tag.children:
            if isinstance(child, Tag) and child.name == "li":
                words: list[str] = []
                nested: list[str] = []
                for part in child.children:
                    if isinstance(part, Tag) and part.name in _LIST_TAGS:
                        nested.extend(self._list(part, depth + 1))
                    elif isinstance(part, Tag):
                        words.append(f" {_inline(part)} ")
                    elif _is_text(part):
                        words.append(str(part))
                marker = f"{number}." if tag.name == "ol" else "-"
                text = flat("".join(words))
                if text:
                    lines.append(f"{'  ' * depth}{marker} {text}")
                lines.extend(nested)
                number += 1
            elif isinstance(child, Tag) and child.name in _LIST_TAGS:
                lines.extend(self._list(child, depth + 1))
            elif isinstance(child, Tag) or _is_text(child):
                stray = flat(_inline(child) if isinstance(child, Tag) else str(child))
                if stray:  # text a sloppy page put straight in the list: keep it
                    lines.append(f"{'  ' * depth}{stray}")
        return lines

    def _table(self, table: Any) -> str:
        lines: list[str] = []
        caption = table.find("caption")
        if caption is not None and caption.find_parent("table") is table:
            lines.append(flat(_inline(caption)))
        for row in table.find_all("tr"):
            if row.find_parent("table") is not table:
                continue  # a nested table's row: read with its cell's text
            cells = [flat(_inline(cell)) for cell in row.find_all(["td", "th"], recursive=False)]
            if any(cells):
                lines.append(" | ".join(cells))
        return "\n".join(lines)


def parse_html(data: bytes, charset: str | None) -> Parsed:
    soup = _soup(decode(data, charset, named=_meta_charset(data)))
    title_tag = soup.find("title")
    title = flat(title_tag.get_text()) if title_tag is not None else ""
    for tag in soup.find_all(list(_DROP_TAGS)):
        if getattr(tag, "decomposed", False):
            continue
        # An article's own <header> holds its title and byline, not site chrome.
        if tag.name == "header" and tag.find_parent(["article", "main"]) is not None:
            continue
        tag.decompose()
    if title_tag is not None and not getattr(title_tag, "decomposed", False):
        title_tag.decompose()
    if not title:
        h1 = soup.find("h1")
        title = flat(_inline(h1)) if h1 is not None else ""
    reader = _HtmlReader()
    reader.walk(soup.body if soup.body is not None else soup)
    return title or None, reader.outline.finish(), {}
