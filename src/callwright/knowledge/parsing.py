"""Uploaded files to structured text: paragraphs, lists and tables under their heading path.

Retrieval quality starts here: a chunk that knows it sits under "Billing > Payment plans"
answers "can I pay monthly?" far better than one that lost its section. Every format ends
as the same `ParsedDocument`, and every failure as a `DocumentError` whose message can go
straight back to the person who uploaded the file.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import docx
import yaml
from bs4 import BeautifulSoup, CData, FeatureNotFound, NavigableString, Tag
from bs4.element import PreformattedString
from docx.table import Table
from docx.text.paragraph import Paragraph
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
PLAIN = "text/plain"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

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
# A .docx is a zip; refuse one that would inflate past this (a zip bomb), whatever its size.
_MAX_DOCX_UNPACKED = 256 * 1024 * 1024


class DocumentError(ValueError):
    """A document that cannot be turned into text; the message says why, for the uploader."""


class UnsupportedFormat(DocumentError):
    pass


class ParseError(DocumentError):
    pass


@dataclass(slots=True)
class Block:
    text: str
    headings: tuple[str, ...] = ()


@dataclass(slots=True)
class ParsedDocument:
    title: str | None
    blocks: list[Block]
    mime_type: str
    metadata: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Type detection


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


# ---------------------------------------------------------------------------------------
# Shared text helpers

_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
# NUL and friends break PostgreSQL text columns and mean nothing to a reader.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[^\S\n]+")
_LIST_LINE = re.compile(r"^\s*(?:[-*+•◦▪●‣–]\s+|\d{1,3}[.)]\s+|[a-zA-Z][.)]\s+)")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(" ", _INVISIBLE.sub("", text))


def _normalise(text: str) -> str:
    """Collapse spaces inside lines but keep line breaks: lists and tables are made of them."""
    lines: list[str] = []
    for raw in _clean(text).split("\n"):
        line = _SPACES.sub(" ", raw).strip()
        if not line:
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if indent and _LIST_LINE.match(line):
            line = " " * min(indent, 12) + line  # a nested list item keeps its depth
        lines.append(line)
    return "\n".join(lines)


def _flat(text: str) -> str:
    return " ".join(_clean(text).split())


def _join_wrapped(lines: Iterable[str]) -> str:
    """Re-flow hard-wrapped prose into one line, but keep each list item on its own."""
    out: list[str] = []
    for raw in lines:
        line = _flat(raw)
        if not line:
            continue
        if out and not _LIST_LINE.match(raw):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


class _Outline:
    """The heading path as a document is read, and the blocks found under it.

    A heading with nothing under it (say the last one, or a run of headings) is kept as a
    block of its own, so its words stay findable.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._waiting = False  # the deepest heading has no content or subheading yet
        self.blocks: list[Block] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def heading(self, level: int, text: str) -> None:
        text = _flat(text)
        if not text:
            return
        if self._waiting and level <= self._stack[-1][0]:
            self._keep_bare_heading()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._waiting = True

    def add(self, text: str) -> None:
        if text.strip():
            self.blocks.append(Block(text, self.path))
            self._waiting = False

    def finish(self) -> list[Block]:
        if self._waiting:
            self._keep_bare_heading()
        return self.blocks

    def _keep_bare_heading(self) -> None:
        self.blocks.append(Block(self._stack[-1][1], self.path))
        self._waiting = False


def _finish(
    title: str | None, blocks: list[Block], mime: str, metadata: dict[str, Any]
) -> ParsedDocument:
    kept: list[Block] = []
    for block in blocks:
        text = _normalise(block.text)
        if text:
            headings = tuple(h for h in (_flat(h) for h in block.headings) if h)
            kept.append(Block(text, headings))
    if not kept:
        raise ParseError("document has no text")
    clean_title = _flat(title) if title else ""
    return ParsedDocument(clean_title or None, kept, mime, metadata)


def _decode_text(data: bytes, charset: str | None) -> str:
    """Declared charset, else UTF-8 (BOM or not), else Windows-1252: what old files use."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if charset and _known_codec(charset):
        return data.decode(charset, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _known_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _json_safe(value: Any) -> Any:
    """Front matter goes into a JSON column: YAML dates and the like become strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# ---------------------------------------------------------------------------------------
# Markdown

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)

_Parsed = tuple[str | None, list[Block], dict[str, Any]]


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        loaded = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        # Raise rather than guess: front matter can carry access tags, and a typo there
        # must not quietly publish a staff-only document.
        raise ParseError(f"could not read Markdown front matter (YAML): {exc}") from exc
    if not isinstance(loaded, dict):
        return {}, text  # a rule and a setext heading, not front matter
    return _json_safe(loaded), text[match.end() :]


def _parse_markdown(data: bytes, charset: str | None) -> _Parsed:
    text = _decode_text(data, charset).replace("\r\n", "\n").replace("\r", "\n")
    metadata, body = _split_front_matter(text)
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tree = SyntaxTreeNode(md.parse(body))
    outline = _Outline()
    first_h1: list[str] = []
    _md_walk(tree, outline, first_h1)
    front_title = metadata.get("title")
    title = front_title if isinstance(front_title, str) and front_title.strip() else None
    return title or (first_h1[0] if first_h1 else None), outline.finish(), metadata


def _md_inline(node: Any) -> str:
    """Visible text of an inline run: links keep their words, images their alt text."""
    token = node.token
    parts: list[str] = []
    for child in (token.children or []) if token is not None else []:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _md_text(node: Any) -> str:
    if node.type == "inline":
        return _md_inline(node)
    if node.type in ("fence", "code_block"):
        return str(node.content)
    if node.type == "html_block":
        return _html_fragment_text(str(node.content))
    return " ".join(_md_text(child) for child in node.children)


def _md_list(node: Any, depth: int) -> list[str]:
    lines: list[str] = []
    number = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else 0
    for item in node.children:
        words: list[str] = []
        nested: list[str] = []
        for child in item.children:
            if child.type in ("bullet_list", "ordered_list"):
                nested.extend(_md_list(child, depth + 1))
            else:
                words.append(_md_text(child))
        marker = f"{number}." if node.type == "ordered_list" else "-"
        text = _flat(" ".join(words))
        if text:
            lines.append(f"{'  ' * depth}{marker} {text}")
        lines.extend(nested)
        number += 1
    return lines


def _md_walk(node: Any, outline: _Outline, first_h1: list[str]) -> None:
    for child in node.children:
        kind = child.type
        if kind == "heading":
            text = _md_text(child)
            level = int(child.tag[1])
            if level == 1 and not first_h1 and _flat(text):
                first_h1.append(_flat(text))
            outline.heading(level, text)
        elif kind == "paragraph":
            outline.add(_flat(_md_text(child)))
        elif kind in ("bullet_list", "ordered_list"):
            outline.add("\n".join(_md_list(child, 0)))
        elif kind == "table":
            rows = [
                " | ".join(_flat(_md_text(cell)) for cell in row.children)
                for section in child.children
                for row in section.children
            ]
            outline.add("\n".join(row for row in rows if row.strip(" |")))
        elif kind in ("fence", "code_block", "html_block"):
            outline.add(_md_text(child))
        elif kind == "blockquote":
            _md_walk(child, outline, first_h1)
        elif kind != "hr":
            outline.add(_flat(_md_text(child)))


# ---------------------------------------------------------------------------------------
# HTML

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


def _decode_html(data: bytes, charset: str | None) -> str:
    """BOM, then the declared charset, then <meta charset>, then UTF-8 with replacement."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if charset and _known_codec(charset):
        return data.decode(charset, errors="replace")
    meta = _META_CHARSET.search(data[:4096])
    if meta:
        name = meta.group(1).decode("ascii", errors="ignore")
        if _known_codec(name):
            return data.decode(name, errors="replace")
    return data.decode("utf-8", errors="replace")


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


def _html_fragment_text(markup: str) -> str:
    soup = _soup(markup)
    for tag in soup.find_all(["script", "style", "template"]):
        tag.decompose()
    return _flat(_inline(soup))


class _HtmlReader:
    def __init__(self) -> None:
        self.outline = _Outline()

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
            self.outline.add(_normalise("".join(buffer)))
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
            self.outline.add(_flat(_inline(tag)))
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
                text = _flat("".join(words))
                if text:
                    lines.append(f"{'  ' * depth}{marker} {text}")
                lines.extend(nested)
                number += 1
            elif isinstance(child, Tag) and child.name in _LIST_TAGS:
                lines.extend(self._list(child, depth + 1))
            elif isinstance(child, Tag) or _is_text(child):
                stray = _flat(_inline(child) if isinstance(child, Tag) else str(child))
                if stray:  # text a sloppy page put straight in the list: keep it
                    lines.append(f"{'  ' * depth}{stray}")
        return lines

    def _table(self, table: Any) -> str:
        lines: list[str] = []
        caption = table.find("caption")
        if caption is not None and caption.find_parent("table") is table:
            lines.append(_flat(_inline(caption)))
        for row in table.find_all("tr"):
            if row.find_parent("table") is not table:
                continue  # a nested table's row: read with its cell's text
            cells = [_flat(_inline(cell)) for cell in row.find_all(["td", "th"], recursive=False)]
            if any(cells):
                lines.append(" | ".join(cells))
        return "\n".join(lines)


def _parse_html(data: bytes, charset: str | None) -> _Parsed:
    soup = _soup(_decode_html(data, charset))
    title_tag = soup.find("title")
    title = _flat(title_tag.get_text()) if title_tag is not None else ""
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
        title = _flat(_inline(h1)) if h1 is not None else ""
    reader = _HtmlReader()
    reader.walk(soup.body if soup.body is not None else soup)
    return title or None, reader.outline.finish(), {}


# ---------------------------------------------------------------------------------------
# PDF


def _pdf_paragraphs(text: str) -> list[str]:
    """Paragraphs of one page's text, which has line breaks but seldom blank lines.

    Wrapped prose runs close to the full width, so a line well short of the page's usual
    length ends its paragraph (or is a heading or label: its own block either way).
    """
    lines = [_flat(line) for line in _clean(text).split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return []
    short = 0.75 * lengths[int(0.9 * (len(lengths) - 1))]
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            paragraphs.append(_join_wrapped(current))
            current.clear()

    closed = False  # the line before was short: a new paragraph starts, or the list goes on
    for line in lines:
        if not line:
            flush()
            closed = False
            continue
        is_item = _LIST_LINE.match(line) is not None
        in_list = bool(current) and _LIST_LINE.match(current[0]) is not None
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


def _parse_pdf(data: bytes, charset: str | None) -> _Parsed:
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


# ---------------------------------------------------------------------------------------
# DOCX

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_TRAILING_LEVEL = re.compile(r"\s([2-9])$")


def _docx_heading_level(paragraph: Any) -> int | None:
    """0 for Title, N for Heading N; else the outline level a localised style carries."""
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(name.strip())
    if match:
        return int(match.group(1))
    seen = 0
    while style is not None and seen < 10:  # "Überschrift 1" has no English name to match
        found = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        if found:
            level = int(found[0]) + 1
            return level if level <= 9 else None
        style = style.base_style
        seen += 1
    return None


def _docx_list_marker(paragraph: Any, number: int) -> tuple[str, int] | None:
    """The item marker and depth when the paragraph is a list item, else None."""
    name = (paragraph.style.name or "") if paragraph.style is not None else ""
    depth = 0
    level = _TRAILING_LEVEL.search(name)
    if level:
        depth = int(level.group(1)) - 1
    numbered = paragraph._p.xpath("./w:pPr/w:numPr")  # Google Docs lists: plain style
    if numbered:
        ilvl = paragraph._p.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
        if ilvl:
            depth = int(ilvl[0])
    if not (name.lower().startswith("list") or numbered):
        return None
    marker = f"{number}." if "number" in name.lower() else "-"
    return marker, depth


def _check_zip(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise ParseError("could not read DOCX: not a Word document (not a zip archive)") from exc
    if "word/document.xml" not in names:
        raise ParseError("could not read DOCX: not a Word document (no word/document.xml)")
    if unpacked > _MAX_DOCX_UNPACKED:
        raise ParseError(
            f"could not read DOCX: it unpacks to {unpacked // (1024 * 1024)} MiB, "
            f"over the {_MAX_DOCX_UNPACKED // (1024 * 1024)} MiB limit"
        )


def _parse_docx(data: bytes, charset: str | None) -> _Parsed:
    _check_zip(data)
    document = docx.Document(io.BytesIO(data))
    outline = _Outline()
    list_lines: list[str] = []
    number = 1
    style_title: str | None = None

    def end_list() -> None:
        nonlocal number
        if list_lines:
            outline.add("\n".join(list_lines))
            list_lines.clear()
        number = 1

    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = _flat(item.text)
            if not text:
                continue
            level = _docx_heading_level(item)
            if level is not None:
                end_list()
                if level == 0 and style_title is None:
                    style_title = text
                outline.heading(level, text)
                continue
            marker = _docx_list_marker(item, number)
            if marker is not None:
                list_lines.append(f"{'  ' * marker[1]}{marker[0]} {text}")
                number += 1
                continue
            end_list()
            outline.add(text)
        elif isinstance(item, Table):
            end_list()
            outline.add(_docx_table(item))
    end_list()
    core_title = document.core_properties.title
    return (core_title or "").strip() or style_title, outline.finish(), {}


def _docx_table(table: Any) -> str:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous: Any = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell comes back once per grid column
                continue
            previous = cell._tc
            cells.append(_flat(cell.text))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Plain text

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^(={3,}|-{3,})\s*$")
_NOT_A_HEADING_END = (".", "!", "?", ",", ";")


def _parse_plain(data: bytes, charset: str | None) -> _Parsed:
    text = _clean(_decode_text(data, charset))
    paragraphs = [
        [line for line in chunk.split("\n") if line.strip()]
        for chunk in re.split(r"\n[ \t]*\n", text)
    ]
    paragraphs = [p for p in paragraphs if p]
    outline = _Outline()
    title: str | None = None
    # Short-line headings sit below any marked (#, ===) heading, and replace each other.
    guessed_level = 7

    def is_short_line(paragraph: list[str]) -> bool:
        line = paragraph[0].strip()
        return (
            len(paragraph) == 1
            and len(line) <= 80
            and not line.endswith(_NOT_A_HEADING_END)
            and not _LIST_LINE.match(line)
        )

    for i, paragraph in enumerate(paragraphs):
        following = paragraphs[i + 1] if i + 1 < len(paragraphs) else None
        if (
            following is not None
            and is_short_line(paragraph)
            and not _MD_HEADING.match(paragraph[0])
            and not _MD_HEADING.match(following[0])
            and not (len(following) > 1 and _UNDERLINE.match(following[1]))
            and not is_short_line(following)
        ):
            outline.heading(guessed_level, paragraph[0])
            if i == 0:
                title = _flat(paragraph[0])
            continue
        body: list[str] = []
        for j, line in enumerate(paragraph):
            marked = _MD_HEADING.match(line.strip())
            below = paragraph[j + 1] if j + 1 < len(paragraph) else ""
            underlined = bool(below) and _UNDERLINE.match(below.strip()) is not None
            if (marked or underlined) and not _UNDERLINE.match(line.strip()):
                outline.add(_join_wrapped(body))
                body = []
                if marked:
                    level, heading = len(marked.group(1)), marked.group(2)
                else:
                    level, heading = (1 if below.strip().startswith("=") else 2), line
                outline.heading(level, heading)
                if i == 0 and j == 0:
                    title = _flat(heading)
            elif _UNDERLINE.match(line.strip()):
                continue  # an underline already used, or a horizontal rule
            else:
                body.append(line)
        outline.add(_join_wrapped(body))
    return title, outline.finish(), {}


_PARSERS: dict[str, Callable[[bytes, str | None], _Parsed]] = {
    MARKDOWN: _parse_markdown,
    HTML: _parse_html,
    PDF: _parse_pdf,
    DOCX: _parse_docx,
    PLAIN: _parse_plain,
}
_FORMAT_NAMES = {MARKDOWN: "Markdown", HTML: "HTML", PDF: "PDF", DOCX: "DOCX", PLAIN: "text"}
