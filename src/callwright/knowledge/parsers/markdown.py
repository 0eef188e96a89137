"""Markdown (CommonMark with tables) to blocks under their heading path, front matter to metadata.

Its own room because front matter is more than text: it can carry access tags, so a
YAML error there fails the upload instead of being guessed around.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from callwright.knowledge.parsers.common import Outline, Parsed, ParseError, decode, flat
from callwright.knowledge.parsers.html import html_fragment_text

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


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


def parse_markdown(data: bytes, charset: str | None) -> Parsed:
    text = decode(data, charset, legacy="cp1252").replace("\r\n", "\n").replace("\r", "\n")
    metadata, body = _split_front_matter(text)
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tree = SyntaxTreeNode(md.parse(body))
    outline = Outline()
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
        return html_fragment_text(str(node.content))
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
        text = flat(" ".join(words))
        if text:
            lines.append(f"{'  ' * depth}{marker} {text}")
        lines.extend(nested)
        number += 1
    return lines


def _md_walk(node: Any, outline: Outline, first_h1: list[str]) -> None:
    for child in node.children:
        kind = child.type
        if kind == "heading":
            text = _md_text(child)
            level = int(child.tag[1])
            if level == 1 and not first_h1 and flat(text):
                first_h1.append(flat(text))
            outline.heading(level, text)
        elif kind == "paragraph":
            outline.add(flat(_md_text(child)))
        elif kind in ("bullet_list", "ordered_list"):
            outline.add("\n".join(_md_list(child, 0)))
        elif kind == "table":
            rows = [
                " | ".join(flat(_md_text(cell)) for cell in row.children)
                for section in child.children
                for row in section.children
            ]
            outline.add("\n".join(row for row in rows if row.strip(" |")))
        elif kind in ("fence", "code_block", "html_block"):
            outline.add(_md_text(child))
        elif kind == "blockquote":
            _md_walk(child, outline, first_h1)
        elif kind != "hr":
            outline.add(flat(_md_text(child)))
