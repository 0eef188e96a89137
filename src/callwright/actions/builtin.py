"""Tools every installation has; an agent uses one only if it lists it in `tools`.

`end_call` lets the agent hang up when the conversation is over: the tool itself
does nothing but ask for it (`CallControl.END_CALL`); the session hangs up once the
reply (the goodbye) has been spoken in full, and not if the caller talks over it.
"""

from __future__ import annotations

from typing import Any

from callwright.actions.calendar import CALENDAR_TOOL_NAMES
from callwright.actions.sms import SEND_SMS, sms_configured
from callwright.actions.tools import (
    DEFAULT_REGISTRY,
    ToolCallContext,
    ToolDefinition,
    ToolOutcome,
    ToolRegistry,
)
from callwright.pipeline.context import CallControl


async def _end_call(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
    return ToolOutcome(
        "The call will end after your reply: say a short goodbye now.",
        {"reason": args.get("reason", "")},
        control=CallControl.END_CALL,
    )


END_CALL = ToolDefinition(
    name="end_call",
    description="End the call, once the caller has nothing more to ask or has said "
    "goodbye. Say a short goodbye in the same reply.",
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "why, in a few words"}},
        "additionalProperties": False,
    },
    handler=_end_call,
    timeout_secs=1.0,
)

BUILTIN_TOOLS = (END_CALL,)


def server_tool_names(registry: ToolRegistry = DEFAULT_REGISTRY) -> list[str]:
    """The tools an agent may list on `callwright serve`: the registry's, the
    calendar tools every server adds on its database, and `send_sms` when the
    environment configures an SMS provider (both added by `CallRuntime.start`)."""
    sms = [SEND_SMS] if sms_configured() else []
    return sorted({*registry.known(), *CALENDAR_TOOL_NAMES, *sms})


def register_builtin_tools(registry: ToolRegistry) -> None:
    for definition in BUILTIN_TOOLS:
        if definition.name not in registry:
            registry.register(definition)


register_builtin_tools(DEFAULT_REGISTRY)
