"""Turn streamed tool-call fragments into finished `ToolCall`s.

Two shapes reach us. OpenAI-compatible servers stream `delta.tool_calls` fragments
keyed by index (the name first, the JSON arguments in pieces); `ToolCallAccumulator`
joins them. Small local models (Qwen2.5 and friends, through a chat template) write
the call as text, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, which
a server without a tool parser passes through as content. In Qwen2.5 the two tags
are special tokens, and llama-cpp-python (library and server) drops special tokens
from the text, so what arrives is the bare JSON object. `TextToolCallParser` lifts
both forms out of the text stream so the caller never speaks them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from callwright.engines.base import ToolCall


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(slots=True)
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Joins OpenAI `delta.tool_calls` fragments by index; `finish()` returns them in order."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def add(self, fragments: list[dict[str, Any]] | None) -> None:
        for pos, frag in enumerate(fragments or []):
            index = frag.get("index")
            if not isinstance(index, int):
                index = pos
            part = self._calls.setdefault(index, _Partial())
            if frag.get("id"):
                part.id = str(frag["id"])
            fn = frag.get("function") or {}
            if fn.get("name"):
                # Some servers repeat the full name in every fragment, others send it once.
                name = str(fn["name"])
                part.name = name if name.startswith(part.name) else part.name + name
            args = fn.get("arguments")
            if args:
                part.arguments.append(args if isinstance(args, str) else json.dumps(args))

    def __bool__(self) -> bool:
        return bool(self._calls)

    def finish(self) -> list[ToolCall]:
        calls = [
            ToolCall(id=p.id or new_call_id(), name=p.name, arguments="".join(p.arguments) or "{}")
            for _, p in sorted(self._calls.items())
            if p.name
        ]
        self._calls.clear()
        return calls


_OPEN = "<tool_call>"
_CLOSE = "</tool_call>"


def _call_from_obj(obj: object, names: frozenset[str] | None) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    if names is not None and obj["name"] not in names:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return ToolCall(id=new_call_id(), name=obj["name"], arguments=arguments)


def _parse_block(body: str, names: frozenset[str] | None = None) -> ToolCall | None:
    try:
        obj = json.loads(body.strip())
    except ValueError:
        return None
    return _call_from_obj(obj, names)


def _strip_fence(text: str) -> str:
    """The JSON inside a Markdown code fence (```json ... ```), or `text` unchanged."""
    body = text.strip()
    if not body.startswith("```"):
        return text
    tag, _, rest = body[3:].partition("\n")
    if tag.strip() and not tag.strip().isalpha():
        rest = body[3:]  # no language tag: the JSON starts on the fence line
    rest = rest.rstrip()
    return rest[:-3] if rest.endswith("```") else rest


def parse_bare_calls(text: str, names: frozenset[str] | None = None) -> list[ToolCall] | None:
    """Calls from text that is nothing but JSON call objects (maybe in a code fence)."""
    text = _strip_fence(text)
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos == end:
            return calls or None
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return None
        call = _call_from_obj(obj, names)
        if call is None:
            return None
        calls.append(call)


class TextToolCallParser:
    """Streams text through, holding back tool calls written as text.

    `feed()` returns the text that is safe to speak now; finished calls collect in
    `calls`. `<tool_call>…</tool_call>` blocks are lifted out wherever they appear (a
    suffix that might start a tag is held until the next piece decides it). A reply
    whose first visible character is `{` is held whole, and at `flush()` it becomes
    calls if it is only JSON call objects naming known tools, else it is given back
    as text; so is one opening a Markdown code fence (the 0.5B model often fences
    its call as ```json). A block that does not parse as a call is given back as text too.
    """

    def __init__(self, tool_names: Sequence[str] | None = None) -> None:
        self._names = frozenset(tool_names) if tool_names is not None else None
        self._buf = ""
        self._in_call = False
        self._bare: bool | None = None  # undecided until the first visible character
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> str:
        self._buf += text
        if self._bare is None:
            visible = self._buf.lstrip()
            if not visible:
                return ""
            if len(visible) < 3 and "```".startswith(visible):
                return ""  # might be the start of a code fence
            self._bare = visible.startswith(("{", "```"))
        if self._bare:
            return ""
        out: list[str] = []
        while True:
            if self._in_call:
                end = self._buf.find(_CLOSE)
                if end < 0:
                    return "".join(out)
                body = self._buf[:end]
                self._buf = self._buf[end + len(_CLOSE) :]
                self._in_call = False
                call = _parse_block(body, self._names)
                if call is not None:
                    self.calls.append(call)
                else:
                    out.append(_OPEN + body + _CLOSE)
                continue
            start = self._buf.find(_OPEN)
            if start >= 0:
                out.append(self._buf[:start])
                self._buf = self._buf[start + len(_OPEN) :]
                self._in_call = True
                continue
            keep = _partial_suffix(self._buf, _OPEN)
            cut = len(self._buf) - keep
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]
            return "".join(out)

    def flush(self) -> str:
        """End of stream: parse an unterminated block if possible, return leftover text."""
        rest, self._buf = self._buf, ""
        if self._bare:
            calls = parse_bare_calls(rest, self._names)
            if calls is not None:
                self.calls.extend(calls)
                return ""
            return rest
        if self._in_call:
            self._in_call = False
            call = _parse_block(rest, self._names)
            if call is not None:
                self.calls.append(call)
                return ""
            return _OPEN + rest
        return rest


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
