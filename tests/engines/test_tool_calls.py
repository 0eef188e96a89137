"""Tool-call plumbing shared by the LLM engines (no model needed)."""

from __future__ import annotations

import json

from callwright.engines.tool_calls import (
    TextToolCallParser,
    ToolCallAccumulator,
    parse_bare_calls,
)


def test_accumulator_joins_fragments_by_index_in_order() -> None:
    acc = ToolCallAccumulator()
    acc.add([{"index": 1, "id": "b", "function": {"name": "lookup", "arguments": ""}}])
    acc.add([{"index": 0, "id": "a", "function": {"name": "book", "arguments": '{"day":'}}])
    acc.add([{"index": 1, "function": {"arguments": '{"q": "x"}'}}])
    acc.add([{"index": 0, "function": {"arguments": ' "Mon"}'}}])
    calls = acc.finish()
    assert [(c.id, c.name) for c in calls] == [("a", "book"), ("b", "lookup")]
    assert json.loads(calls[0].arguments) == {"day": "Mon"}
    assert json.loads(calls[1].arguments) == {"q": "x"}
    assert not acc


def test_accumulator_invents_ids_and_defaults_empty_arguments() -> None:
    acc = ToolCallAccumulator()
    acc.add([{"index": 0, "function": {"name": "hang_up"}}])
    (call,) = acc.finish()
    assert call.id.startswith("call_") and call.arguments == "{}"


def feed_all(parser: TextToolCallParser, pieces: list[str]) -> str:
    return "".join(parser.feed(p) for p in pieces) + parser.flush()


def test_tagged_call_is_lifted_out_of_text_split_anywhere() -> None:
    text = 'Sure.<tool_call>\n{"name": "book", "arguments": {"day": "Mon"}}\n</tool_call> Done.'
    for step in (1, 3, 7):
        parser = TextToolCallParser(["book"])
        spoken = feed_all(parser, [text[i : i + step] for i in range(0, len(text), step)])
        assert spoken == "Sure. Done."
        assert [c.name for c in parser.calls] == ["book"]
        assert json.loads(parser.calls[0].arguments) == {"day": "Mon"}


def test_text_that_only_looks_like_a_tag_prefix_is_released() -> None:
    parser = TextToolCallParser(["book"])
    assert parser.feed("a <tool") == "a "
    assert parser.feed("s are fine") == "<tools are fine"
    assert parser.flush() == "" and parser.calls == []


def test_bare_json_reply_becomes_calls() -> None:
    # Qwen's <tool_call> tags are special tokens that llama-cpp-python drops from text.
    parser = TextToolCallParser(["book", "lookup"])
    body = '{"name": "book", "arguments": {"day": "Mon"}}\n{"name": "lookup", "arguments": {}}'
    assert feed_all(parser, [body[:10], body[10:]]) == ""
    assert [c.name for c in parser.calls] == ["book", "lookup"]


def test_bare_json_naming_an_unknown_tool_is_spoken_as_text() -> None:
    parser = TextToolCallParser(["book"])
    body = '{"name": "format_disk", "arguments": {}}'
    assert feed_all(parser, [body]) == body
    assert parser.calls == []


def test_plain_reply_passes_through_untouched() -> None:
    parser = TextToolCallParser(["book"])
    assert feed_all(parser, ["We open ", "at 9 {sharp}."]) == "We open at 9 {sharp}."


def test_parse_bare_calls_rejects_trailing_prose() -> None:
    assert parse_bare_calls('{"name": "book", "arguments": {}} and then', None) is None
    calls = parse_bare_calls(' {"name": "book", "arguments": "{\\"a\\": 1}"} ', None)
    assert calls is not None and calls[0].arguments == '{"a": 1}'


def test_fenced_json_call_becomes_a_call() -> None:
    # What Qwen2.5-Coder-0.5B often writes through llama_cpp.server when given tools.
    body = '```json\n{\n  "name": "book",\n  "arguments": {"day": "Monday"}\n}\n```'
    parser = TextToolCallParser(["book"])
    assert feed_all(parser, [body[i : i + 4] for i in range(0, len(body), 4)]) == ""
    assert [c.name for c in parser.calls] == ["book"]
    assert json.loads(parser.calls[0].arguments) == {"day": "Monday"}


def test_fenced_code_that_is_not_a_call_is_given_back() -> None:
    parser = TextToolCallParser(["book"])
    body = "```python\nprint('hi')\n```"
    assert feed_all(parser, [body]) == body
    assert parser.calls == []
    short = TextToolCallParser(["book"])
    assert feed_all(short, ["`", "`ok"]) == "``ok"
