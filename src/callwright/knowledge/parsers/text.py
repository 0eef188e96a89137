"""Plain text to blocks, with headings guessed: Markdown-style marks, underlines, short lines.

Its own room because plain text carries no structure, so the heading path comes from
heuristics that the other formats do not need.
"""

from __future__ import annotations

import re

from callwright.knowledge.parsers.common import (
    LIST_LINE,
    Outline,
    Parsed,
    clean,
    decode,
    flat,
    join_wrapped,
)

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^(={3,}|-{3,})\s*$")
_NOT_A_HEADING_END = (".", "!", "?", ",", ";")


def parse_plain(data: bytes, charset: str | None) -> Parsed:
    text = clean(decode(data, charset, legacy="cp1252"))
    paragraphs = [
        [line for line in chunk.split("\n") if line.strip()]
        for chunk in re.split(r"\n[ \t]*\n", text)
    ]
    paragraphs = [p for p in paragraphs if p]
    outline = Outline()
    title: str | None = None
    # Short-line headings sit below any marked (#, ===) heading, and replace each other.
    guessed_level = 7

    def is_short_line(paragraph: list[str]) -> bool:
        line = paragraph[0].strip()
        return (
            len(paragraph) == 1
            and len(line) <= 80
            and not line.endswith(_NOT_A_HEADING_END)
            and not LIST_LINE.match(line)
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
                title = flat(paragraph[0])
            continue
        body: list[str] = []
        for j, line in enumerate(paragraph):
            marked = _MD_HEADING.match(line.strip())
            below = paragraph[j + 1] if j + 1 < len(paragraph) else ""
            underlined = bool(below) and _UNDERLINE.match(below.strip()) is not None
            if (marked or underlined) and not _UNDERLINE.match(line.strip()):
                outline.add(join_wrapped(body))
                body = []
                if marked:
                    level, heading = len(marked.group(1)), marked.group(2)
                else:
                    level, heading = (1 if below.strip().startswith("=") else 2), line
                outline.heading(level, heading)
                if i == 0 and j == 0:
                    title = flat(heading)
            elif _UNDERLINE.match(line.strip()):
                continue  # an underline already used, or a horizontal rule
            else:
                body.append(line)
        outline.add(join_wrapped(body))
    return title, outline.finish(), {}
