"""Tool declaration and the registry."""

from __future__ import annotations

from typing import Any

import pytest

from callwright.actions import tools as tools_module
from callwright.actions.tools import (
    DuplicateToolError,
    ToolCallContext,
    ToolDefinition,
    ToolDefinitionError,
    ToolOutcome,
    ToolRegistry,
)
from callwright.engines.base import ToolSpec

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "pin": {"type": "string"}},
    "required": ["city"],
}


async def _weather(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
    return ToolOutcome(f"sunny in {args['city']}", {"city": args["city"]})


def _definition(name: str = "weather", **kw: Any) -> ToolDefinition:
    parameters = kw.pop("parameters", SCHEMA)
    return ToolDefinition(name, "The weather in a city.", parameters, _weather, **kw)


def test_register_and_get() -> None:
    registry = ToolRegistry()
    definition = registry.register(_definition())
    assert registry.get("weather") is definition
    assert "weather" in registry
    assert registry.known() == ["weather"]
    assert definition.timeout_secs == 5.0 and definition.sensitive is False


def test_duplicate_name_is_refused() -> None:
    registry = ToolRegistry()
    registry.register(_definition())
    with pytest.raises(DuplicateToolError, match="'weather' is already registered"):
        registry.register(_definition())


def test_unregister_frees_the_name() -> None:
    registry = ToolRegistry()
    registry.register(_definition())
    registry.unregister("weather")
    assert registry.known() == []
    registry.register(_definition())


def test_decorator_registers_and_returns_the_handler() -> None:
    registry = ToolRegistry()

    @registry.tool(name="echo", description="Echo.", parameters={"type": "object"}, redact=())
    async def echo(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        return ToolOutcome("echo")

    assert registry.get("echo").handler is echo
    assert registry.known() == ["echo"]


def test_unknown_tool_error_lists_known_names() -> None:
    registry = ToolRegistry()
    registry.register(_definition("weather"))
    registry.register(_definition("alpha"))
    with pytest.raises(KeyError, match=r"unknown tool 'nope'; known: \['alpha', 'weather'\]"):
        registry.get("nope")


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"type": "object", "properties": {"x": {"type": "strng"}}}, "not a valid JSON Schema"),
        ({"type": "object", "required": "city"}, "not a valid JSON Schema"),
        ({"type": "string"}, "must be a schema of type 'object'"),
        ({"properties": {}}, "must be a schema of type 'object'"),
    ],
)
def test_bad_schema_is_refused(parameters: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolDefinitionError, match=problem):
        _definition(parameters=parameters)


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="tool name"):
        _definition("book a table")
    with pytest.raises(ToolDefinitionError, match="timeout_secs"):
        _definition(timeout_secs=0)
    with pytest.raises(ToolDefinitionError, match="description is empty"):
        ToolDefinition("w", "  ", SCHEMA, _weather)


def test_redact_must_name_schema_arguments() -> None:
    assert _definition(redact=("pin",)).redact == ("pin",)
    with pytest.raises(ToolDefinitionError, match=r"not in its schema: \['pni'\]"):
        _definition(redact=("pni",))


def test_spec_is_what_the_llm_is_offered() -> None:
    spec = _definition().spec()
    assert spec == ToolSpec("weather", "The weather in a city.", SCHEMA)
    assert spec.to_openai()["function"]["parameters"]["required"] == ["city"]


def test_the_declared_schema_cannot_be_changed_afterwards() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    definition = _definition(parameters=schema)
    schema["properties"]["n"]["type"] = "string"
    definition.spec().parameters["properties"]["n"]["type"] = "string"
    assert definition.parameters["properties"]["n"] == {"type": "integer"}
    assert not definition.validator.is_valid({"n": "3"})


def test_module_functions_use_the_default_registry() -> None:
    default = tools_module.DEFAULT_REGISTRY
    try:

        @tools_module.tool(name="ping", description="Ping.", parameters={"type": "object"})
        async def ping(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
            return ToolOutcome("pong")

        tools_module.register_tool(_definition())
        assert {"ping", "weather"} <= set(tools_module.known_tools())
        assert tools_module.known_tools() == default.known()
        assert tools_module.get_tool("ping").handler is ping
        with pytest.raises(KeyError, match="unknown tool 'nope'"):
            tools_module.get_tool("nope")
    finally:
        for name in ("ping", "weather"):
            if name in default:
                default.unregister(name)
    assert "ping" not in tools_module.known_tools()
