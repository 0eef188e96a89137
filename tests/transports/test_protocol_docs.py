"""docs/protocol.md's tables say what the code does: every message and its fields, the
error codes and the end reasons, both ways."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from callwright.pipeline.events import EndReason, ErrorCode
from callwright.transports.protocol import (
    GroundingMsg,
    KnowledgeHitMsg,
    KnowledgeUseMsg,
    PingMessage,
    ServerMessage,
    ServerMsg,
    StartMessage,
    StopMessage,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_NAME = re.compile(r"`([a-z_]+)`")


def _tables() -> dict[str, list[list[str]]]:
    """The first table under each `## ` heading: its rows (header and rule left out)."""
    tables: dict[str, list[list[str]]] = {}
    section = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("|") and not re.fullmatch(r"\|[-| ]+\|", line):
            rows = tables.setdefault(section, [])
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append(cells)
    return {name: rows[1:] for name, rows in tables.items()}  # rows[0] is the header


def _strip_nested(text: str) -> str:
    """What a cell says at the top level: parentheses and braces (details) removed."""
    while True:
        shorter = re.sub(r"\([^()]*\)|\{[^{}]*\}", "", text)
        if shorter == text:
            return text
        text = shorter


def _detail(cell: str, field: str) -> str:
    """The parenthesised details after `field` in a cell, nested parentheses included."""
    start = cell.index(f"`{field}` (") + len(f"`{field}` (")
    depth = 1
    for i in range(start, len(cell)):
        depth += {"(": 1, ")": -1}.get(cell[i], 0)
        if depth == 0:
            return cell[start:i]
    raise AssertionError(f"unbalanced parentheses after {field!r}")


def _names(text: str) -> set[str]:
    return set(_NAME.findall(text))


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields) - {"type"}


def _messages(section: str) -> dict[str, str]:
    """Message type -> its fields cell; one row may name several types."""
    out: dict[str, str] = {}
    for cells in _tables()[section]:
        for name in _names(cells[0]):
            assert name not in out, f"{name} is in the {section!r} table twice"
            out[name] = cells[1]
    return out


def _server_models() -> dict[str, type[BaseModel]]:
    union = typing.get_args(ServerMessage)[0]  # Annotated[Union[...], discriminator]
    members: tuple[type[ServerMsg], ...] = typing.get_args(union)
    assert set(members) == set(ServerMsg.__subclasses__()), "a server model is not sent"
    return {m.model_fields["type"].default: m for m in members}


def test_client_table_matches_the_client_models() -> None:
    models: dict[str, type[BaseModel]] = {
        "start": StartMessage,
        "stop": StopMessage,
        "ping": PingMessage,
    }
    documented = _messages("Client → server")
    assert set(documented) == set(models)
    for name, cell in documented.items():
        assert _names(_strip_nested(cell)) == _fields(models[name]), name


def test_server_table_matches_the_server_models() -> None:
    models = _server_models()
    documented = _messages("Server → client")
    assert set(documented) == set(models)
    for name, cell in documented.items():
        assert _names(_strip_nested(cell)) == _fields(models[name]), name


def test_knowledge_row_lists_the_record_fields() -> None:
    cell = _messages("Server → client")["knowledge"]
    used = _names(_strip_nested(_detail(cell, "used")))
    assert used == _fields(KnowledgeUseMsg) | _fields(KnowledgeHitMsg)
    assert _names(_detail(cell, "grounding")) == _fields(GroundingMsg)


def test_end_reasons_are_documented() -> None:
    [end] = [cells for cells in _tables()["Server → client"] if cells[0] == "`end`"]
    assert _names(end[2]) == {r.value for r in EndReason}


def test_error_table_matches_the_error_codes() -> None:
    documented: list[str] = []
    for cells in _tables()["Errors"]:
        documented += _NAME.findall(cells[0])
    assert len(documented) == len(set(documented)), "a code is in the table twice"
    assert set(documented) == {c.value for c in ErrorCode}
