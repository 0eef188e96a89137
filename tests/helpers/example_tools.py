"""A tool module as an installation writes one (docs/tools-and-flows.md): imported by
`--tool-module tests.helpers.example_tools`, it registers its tools by name."""

from __future__ import annotations

from typing import Any

from callwright.actions.tools import ToolCallContext, ToolOutcome, tool

ORDERS = {"A12": "ships tomorrow", "B7": "was delivered on Monday"}


@tool(
    name="order_status",
    description="Where a customer's order is, by its order number.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string", "pattern": "^[A-Z][0-9]{1,6}$"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
)
async def order_status(args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
    status = ORDERS.get(args["order_id"])
    if status is None:
        return ToolOutcome(f"There is no order {args['order_id']}.", {"found": False})
    return ToolOutcome(f"Order {args['order_id']} {status}.", {"found": True})
