"""Tools: declared once, by name, with a JSON Schema for their arguments.

A `ToolDefinition` carries everything the platform needs to offer a tool to the LLM
(`spec()`) and to call it safely (`actions.gateway`): its schema is checked to be a
valid Draft 2020-12 schema when it is declared, so a typo in a schema fails at start-up
rather than as a confusing refusal mid-call. Handlers are never called directly by the
pipeline: every call goes through `ToolGateway`.

Tools are registered by name in a `ToolRegistry`, like engines in
`engines.registry`; the module-level functions use the process's default registry,
and tests build their own so registrations never leak between them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from callwright.engines.base import ToolSpec
from callwright.pipeline.context import CallControl

# What OpenAI-compatible APIs (and llama.cpp's grammar) accept as a function name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    """Who is calling: the handler scopes its work (and its tenant's data) by it."""

    tenant_id: str
    call_id: str
    agent_id: str
    turn: int


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A handler's result: `content` is what the LLM reads (short, speakable facts);
    `data` is the structured result, kept in the audit record, never shown to the LLM."""

    content: str
    data: dict[str, Any] = field(default_factory=dict)
    control: CallControl | None = None  # e.g. end the call once the reply is spoken


ToolHandler = Callable[[dict[str, Any], ToolCallContext], Awaitable[ToolOutcome]]


class ToolDefinitionError(ValueError):
    """A tool declared wrongly (bad name, invalid schema, unknown redacted argument)."""


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """One tool. `handler(args, call)` receives arguments already valid against
    `parameters` and runs under `timeout_secs`.

    `sensitive` marks tools that will need the caller's explicit confirmation before
    they run (bookings, payments): the gateway has it read back and runs it only after
    a clear yes in a later caller turn (`actions.confirm`). `redact` names
    top-level arguments whose values never reach the audit log (card numbers, dates
    of birth); each must be one of the schema's properties, so a misspelt name cannot
    silently leak the value it was meant to hide.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    handler: ToolHandler
    timeout_secs: float = 5.0
    sensitive: bool = False
    redact: tuple[str, ...] = ()
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ToolDefinitionError(
                f"tool name {self.name!r}: use 1-64 letters, digits, '_' or '-'"
            )
        if not self.description.strip():
            raise ToolDefinitionError(f"tool {self.name!r}: the description is empty")
        if self.timeout_secs <= 0:
            raise ToolDefinitionError(f"tool {self.name!r}: timeout_secs must be positive")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as exc:
            raise ToolDefinitionError(
                f"tool {self.name!r}: parameters is not a valid JSON Schema: {exc.message}"
            ) from None
        if self.parameters.get("type") != "object":
            raise ToolDefinitionError(
                f"tool {self.name!r}: parameters must be a schema of type 'object'"
            )
        properties = self.parameters.get("properties", {})
        unknown = [r for r in self.redact if r not in properties]
        if unknown:
            raise ToolDefinitionError(
                f"tool {self.name!r}: redact names arguments not in its schema: {unknown}"
            )
        # a private copy: the schema validated here is the one offered and enforced
        object.__setattr__(self, "parameters", copy.deepcopy(self.parameters))
        validator = Draft202012Validator(
            self.parameters, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        object.__setattr__(self, "validator", validator)

    def spec(self) -> ToolSpec:
        """What the LLM is offered: name, description and the argument schema."""
        return ToolSpec(self.name, self.description, copy.deepcopy(self.parameters))


class DuplicateToolError(ToolDefinitionError):
    """A second tool registered under a name already taken."""


class ToolRegistry:
    """Tools by name. One default instance serves the process; tests make their own."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolDefinition] = {}

    def register(self, definition: ToolDefinition) -> ToolDefinition:
        """Add a tool; a name already registered is an error, never a silent swap."""
        if definition.name in self._tools:
            raise DuplicateToolError(f"a tool named {definition.name!r} is already registered")
        self._tools[definition.name] = definition
        return definition

    def unregister(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> ToolDefinition:
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; known: {self.known()}") from None

    def copy(self) -> ToolRegistry:
        """A registry with the same tools, to add to without changing this one."""
        other = ToolRegistry()
        other._tools.update(self._tools)
        return other

    def known(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def tool(
        self,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        timeout_secs: float = 5.0,
        sensitive: bool = False,
        redact: tuple[str, ...] = (),
    ) -> Callable[[ToolHandler], ToolHandler]:
        """Decorator form of `register`: the handler is returned unchanged."""

        def deco(handler: ToolHandler) -> ToolHandler:
            self.register(
                ToolDefinition(
                    name=name,
                    description=description,
                    parameters=parameters,
                    handler=handler,
                    timeout_secs=timeout_secs,
                    sensitive=sensitive,
                    redact=redact,
                )
            )
            return handler

        return deco


DEFAULT_REGISTRY = ToolRegistry()

# The process's default registry, as module functions: `@tool(...)` in a tool module
# declares a handler there; `get_tool` raises a KeyError naming the known tools.
register_tool = DEFAULT_REGISTRY.register
get_tool = DEFAULT_REGISTRY.get
known_tools = DEFAULT_REGISTRY.known
tool = DEFAULT_REGISTRY.tool
