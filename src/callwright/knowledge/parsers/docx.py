"""Word (.docx) documents to blocks: heading styles, list styles, tables.

Its own room because a .docx is a zip of XML: it is checked for a zip bomb before it is
opened, and headings and lists are recognised by style (localised names included).
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from callwright.knowledge.parsers.common import Outline, Parsed, ParseError, flat

# A .docx is a zip; refuse one that would inflate past this (a zip bomb), whatever its size.
_MAX_DOCX_UNPACKED = 256 * 1024 * 1024

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


def parse_docx(data: bytes, charset: str | None) -> Parsed:
    _check_zip(data)
    document = docx.Document(io.BytesIO(data))
    outline = Outline()
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
            text = flat(item.text)
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
            cells.append(flat(cell.text))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
