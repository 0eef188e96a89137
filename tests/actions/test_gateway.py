"""The policy gateway: each check in order, what the LLM reads, and the audit trail."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC
from typing import Any

import pytest

from callwright.actions.gateway import REDACTED, ToolAudit, ToolGateway, ToolStatus
from callwright.actions.tools import ToolCallContext, ToolDefinition, ToolOutcome, ToolRegistry

BOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "date": {"type": "string", "format": "date"},
        "party": {"type": "integer", "minimum": 1},
        "card": {"type": "string"},
    },
    "required": ["date", "party"],
    "additionalProperties": False,
}
SECRET = "db password=hunter2 at 10.0.0.5"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Tools:
    """A registry of test tools, and what their handlers saw."""

    def __init__(self) -> None:
        self.registry = ToolRegistry()
        self.seen: list[tuple[str, dict[str, Any], ToolCallContext]] = []
        self.cancelled = asyncio.Event()
        reg = self.registry.register
        reg(ToolDefinition("book", "Book a table.", BOOK_SCHEMA, self._book, redact=("card",)))
        reg(ToolDefinition("boom", "Always fails.", {"type": "object"}, self._boom))
        reg(ToolDefinition("slow", "Never ends.", {"type": "object"}, self._slow, 0.02))
        reg(ToolDefinition("own_timeout", "Its own timeout.", {"type": "object"}, self._own))
        reg(ToolDefinition("wrong_type", "Bad result.", {"type": "object"}, self._wrong))
        secret_schema = {"type": "object", "properties": {"pin": {"type": "string"}}}
        pin = ("pin",)
        unlisted = ToolDefinition("unlisted", "Not here.", secret_schema, self._book, redact=pin)
        reg(unlisted)

    async def _book(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        self.seen.append(("book", dict(args), call))
        args["card"] = "mutated by the handler"
        return ToolOutcome(f"booked for {args['party']} on {args['date']}", {"booking": "B-17"})

    async def _boom(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        self.seen.append(("boom", args, call))
        raise RuntimeError(SECRET)

    async def _slow(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        self.seen.append(("slow", args, call))
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return ToolOutcome("never")

    async def _own(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        raise TimeoutError("upstream said: read timeout on 10.0.0.5")

    async def _wrong(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        return "a plain string"  # type: ignore[return-value]


@pytest.fixture
def tools() -> Tools:
    return Tools()


@pytest.fixture
def audits() -> list[ToolAudit]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _gateway(tools: Tools, audits: list[ToolAudit], clock: Clock, **kw: Any) -> ToolGateway:
    allowed = kw.pop("allowed", ["book", "boom", "slow", "own_timeout", "wrong_type", "gone"])
    return ToolGateway(
        tenant_id="t1",
        call_id="c1",
        agent_id="dental",
        allowed=allowed,
        audit=audits.append,
        registry=tools.registry,
        now=clock,
        **kw,
    )


BOOKING = json.dumps({"date": "2025-03-14", "party": 2, "card": "4111111111111111"})


async def test_ok_runs_the_handler_and_returns_its_content(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    result = await _gateway(tools, audits, clock).call("book", BOOKING, turn=3)
    assert result.status is ToolStatus.OK
    assert result.content == "booked for 2 on 2025-03-14"
    [(_, args, call)] = tools.seen
    assert args == {"date": "2025-03-14", "party": 2, "card": "4111111111111111"}
    assert call == ToolCallContext("t1", "c1", "dental", 3)
    [record] = audits
    assert (record.status, record.error_type) == (ToolStatus.OK, None)
    assert record.data == {"booking": "B-17"}
    assert (record.tenant_id, record.call_id, record.agent_id) == ("t1", "c1", "dental")
    assert record.turn == 3 and record.tool == "book"
    # redacted before the record existed: the handler's own change to args is not seen
    assert record.arguments == {"date": "2025-03-14", "party": 2, "card": REDACTED}
    assert record.duration_ms == result.duration_ms >= 0


async def test_not_in_the_agents_list_is_not_allowed(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    result = await _gateway(tools, audits, clock).call("unlisted", '{"pin": "1234"}', turn=1)
    assert result.status is ToolStatus.NOT_ALLOWED
    assert result.content.startswith("not done: there is no tool 'unlisted'")
    assert "tell the caller" in result.content
    assert tools.seen == []
    # a registered tool declared its secrets: they stay redacted even when refused
    assert audits[0].arguments == {"pin": REDACTED}


async def test_an_unknown_name_is_not_allowed_and_keeps_only_argument_names(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock, allowed=["book", "gone"])
    for name in ("gone", "transfer_money"):  # in the list but unregistered; in neither
        result = await gateway.call(name, '{"iban": "DE89370400440532013000"}', turn=1)
        assert result.status is ToolStatus.NOT_ALLOWED
        assert "(available: book)" in result.content
    assert [a.arguments for a in audits] == [{"iban": REDACTED}] * 2
    assert [a.tool for a in audits] == ["gone", "transfer_money"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"date": "2025-03-14", "party": ', "arguments invalid: not valid JSON ("),
        ("[1, 2]", "arguments invalid: expected a JSON object of the parameters, got a list"),
    ],
)
async def test_bad_json_is_a_correctable_error(
    tools: Tools, audits: list[ToolAudit], clock: Clock, arguments: str, expected: str
) -> None:
    result = await _gateway(tools, audits, clock).call("book", arguments, turn=1)
    assert result.status is ToolStatus.BAD_ARGUMENTS
    assert result.content.startswith(expected)
    assert result.content.endswith("call book again with corrected arguments")
    assert tools.seen == []
    assert audits[0].status is ToolStatus.BAD_ARGUMENTS and audits[0].arguments == {}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"date": "2025-03-14", "party": "two"}, "party: 'two' is not of type 'integer'"),
        ({"date": "2025-03-14", "party": 0}, "party: 0 is less than the minimum of 1"),
        ({"party": 2}, "date: missing (required)"),
        ({"date": "tomorrow", "party": 2}, "date: 'tomorrow' is not a 'date'"),
        (
            {"date": "2025-03-14", "party": 2, "time": "8pm"},
            "time: not an accepted argument (accepted: date, party, card)",
        ),
    ],
)
async def test_schema_violation_names_the_field_and_the_problem(
    tools: Tools, audits: list[ToolAudit], clock: Clock, arguments: dict[str, Any], problem: str
) -> None:
    result = await _gateway(tools, audits, clock).call("book", json.dumps(arguments), turn=1)
    assert result.status is ToolStatus.BAD_ARGUMENTS
    expected = f"arguments invalid: {problem}; call book again with corrected arguments"
    assert result.content == expected
    assert tools.seen == []


async def test_several_schema_errors_are_all_named(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    args = json.dumps({"party": "two", "card": 5})
    result = await _gateway(tools, audits, clock).call("book", args, turn=1)
    assert "date: missing (required)" in result.content
    assert "party: 'two' is not of type 'integer'" in result.content
    assert "card: 5 is not of type 'string'" in result.content
    # the rejected secret is still redacted in the record
    assert audits[0].arguments == {"party": "two", "card": REDACTED}


async def test_empty_arguments_read_as_an_empty_object(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    result = await _gateway(tools, audits, clock).call("boom", "", turn=1)
    assert result.status is ToolStatus.FAILED  # it got past the argument check
    assert tools.seen[0][1] == {}


async def test_over_budget_after_max_calls(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock, max_calls=2)
    await gateway.call("book", "{}", turn=1)  # refused before the budget: not counted
    assert (await gateway.call("book", BOOKING, turn=1)).status is ToolStatus.OK
    clock.t += 3600  # the budget is per call, not per minute
    assert (await gateway.call("book", BOOKING, turn=2)).status is ToolStatus.OK
    result = await gateway.call("book", BOOKING, turn=3)
    assert result.status is ToolStatus.OVER_BUDGET
    assert result.content.startswith("not done: the limit of 2 actions on this call is reached")
    assert len(tools.seen) == 2 and gateway.calls_run == 2


async def test_rate_limited_in_a_rolling_minute_then_allowed_again(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock, max_per_minute=2)
    start = clock.t
    statuses: list[ToolStatus] = []
    for offset in (0, 10, 30, 59.9, 60, 65, 70):
        clock.t = start + offset
        statuses.append((await gateway.call("book", BOOKING, turn=1)).status)
    ok, limited = ToolStatus.OK, ToolStatus.RATE_LIMITED
    # 60 s after the first call its slot frees; at 65 the calls at 10 and 60 fill it
    assert statuses == [ok, ok, limited, limited, ok, limited, ok]
    assert len(tools.seen) == 4
    assert [a.status for a in audits] == statuses


async def test_rate_limited_content_tells_the_llm_what_to_do(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock, max_per_minute=1)
    await gateway.call("book", BOOKING, turn=1)
    result = await gateway.call("book", BOOKING, turn=1)
    assert result.status is ToolStatus.RATE_LIMITED
    assert result.content.startswith("not done: too many actions in the last minute; tell")


async def test_timed_out_stops_the_handler(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    result = await _gateway(tools, audits, clock).call("slow", "{}", turn=1)
    assert result.status is ToolStatus.TIMED_OUT
    assert "took too long" in result.content and "may not have gone through" in result.content
    assert tools.cancelled.is_set()
    assert audits[0].status is ToolStatus.TIMED_OUT and audits[0].error_type is None
    assert audits[0].duration_ms >= 20


async def test_failed_handler_never_leaks_the_exception(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    result = await _gateway(tools, audits, clock).call("boom", "{}", turn=1)
    assert result.status is ToolStatus.FAILED
    assert result.content == "not done: boom failed; tell the caller it did not work this time"
    for leak in ("hunter2", "10.0.0.5", "RuntimeError", "Traceback"):
        assert leak not in result.content
    [record] = audits
    assert (record.error_type, record.data) == ("RuntimeError", None)
    assert SECRET not in json.dumps(record.to_dict())


async def test_a_handlers_own_timeout_error_is_a_failure_not_a_time_out(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock)
    result = await gateway.call("own_timeout", "{}", turn=1)
    assert result.status is ToolStatus.FAILED and "10.0.0.5" not in result.content
    assert (await gateway.call("wrong_type", "{}", turn=1)).status is ToolStatus.FAILED
    assert [a.error_type for a in audits] == ["TimeoutError", "TypeError"]


async def test_a_cancelled_call_is_audited_and_still_cancelled(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock)
    task = asyncio.create_task(gateway.call("slow", "{}", turn=4))
    await asyncio.sleep(0)  # let it reach the handler
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(a.tool, a.status, a.turn) for a in audits] == [("slow", ToolStatus.CANCELLED, 4)]


async def test_every_call_is_audited_once_and_serialises(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock, max_calls=2)
    calls = [("nope", "{}"), ("book", "{"), ("book", BOOKING), ("boom", "{}"), ("book", BOOKING)]
    for turn, (name, args) in enumerate(calls):
        await gateway.call(name, args, turn=turn)
    assert [a.status.value for a in audits] == [
        "not_allowed",
        "bad_arguments",
        "ok",
        "failed",
        "over_budget",
    ]
    assert [a.turn for a in audits] == [0, 1, 2, 3, 4]
    for record in audits:
        assert record.duration_ms >= 0
        assert record.at.tzinfo is UTC
        as_json = json.loads(json.dumps(record.to_dict()))
        assert as_json["status"] == record.status.value
        assert "4111111111111111" not in json.dumps(as_json)
    assert [a.data for a in audits] == [None, None, {"booking": "B-17"}, None, None]
    assert [a.error_type for a in audits] == [None, None, None, "RuntimeError", None]


def test_specs_list_only_allowed_registered_tools(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    gateway = _gateway(tools, audits, clock, allowed=["boom", "gone", "book", "boom"])
    specs = gateway.specs()
    assert [s.name for s in specs] == ["boom", "book"]  # the agent's order, once each
    assert specs[1].parameters == BOOK_SCHEMA
    assert "unlisted" not in [s.name for s in specs]


def test_negative_limits_are_refused(tools: Tools, audits: list[ToolAudit], clock: Clock) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        _gateway(tools, audits, clock, max_calls=-1)


# ------------------------------------------------------------------ confirmation
class Caller:
    """What the caller said last (the runtime gives the gateway the latest final)."""

    def __init__(self) -> None:
        self.said = ""

    def __call__(self) -> str:
        return self.said


def _sensitive(tools: Tools) -> None:
    tools.registry.unregister("book")
    tools.registry.register(
        ToolDefinition(
            "book", "Book a table.", BOOK_SCHEMA, tools._book, redact=("card",), sensitive=True
        )
    )


async def test_a_sensitive_tool_runs_only_after_the_caller_confirms_in_a_later_turn(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    _sensitive(tools)
    caller = Caller()
    gw = _gateway(tools, audits, clock, caller_said=caller)
    caller.said = "Book a table for two on the fourteenth."
    first = await gw.call("book", BOOKING, turn=1)
    assert first.status is ToolStatus.NEEDS_CONFIRMATION
    assert "date: 2025-03-14" in first.content and "party: 2" in first.content
    assert "only after they say yes" in first.content
    assert "4111" not in first.content and "card: (as given)" in first.content  # not aloud
    assert tools.seen == [] and gw.calls_run == 0  # nothing ran, no budget spent
    # the same turn again: the caller has not answered yet
    assert (await gw.call("book", BOOKING, turn=1)).status is ToolStatus.NEEDS_CONFIRMATION
    caller.said = "Yes, that's right."
    done = await gw.call("book", BOOKING, turn=2)
    assert done.status is ToolStatus.OK and len(tools.seen) == 1
    assert [a.status for a in audits] == [
        ToolStatus.NEEDS_CONFIRMATION,
        ToolStatus.NEEDS_CONFIRMATION,
        ToolStatus.OK,
    ]


@pytest.mark.parametrize(
    "answer", ["No, make it Tuesday.", "Yes, but not at seven.", "Wait.", "Hmm.", ""]
)
async def test_anything_but_a_clear_yes_reads_it_back_again(
    tools: Tools, audits: list[ToolAudit], clock: Clock, answer: str
) -> None:
    _sensitive(tools)
    caller = Caller()
    gw = _gateway(tools, audits, clock, caller_said=caller)
    await gw.call("book", BOOKING, turn=1)
    caller.said = answer
    again = await gw.call("book", BOOKING, turn=2)
    assert again.status is ToolStatus.NEEDS_CONFIRMATION and tools.seen == []


async def test_a_yes_confirms_only_the_call_that_was_read_back(
    tools: Tools, audits: list[ToolAudit], clock: Clock
) -> None:
    _sensitive(tools)
    caller = Caller()
    gw = _gateway(tools, audits, clock, caller_said=caller)
    await gw.call("book", BOOKING, turn=1)
    caller.said = "yes"
    other = json.dumps({"date": "2025-03-15", "party": 4})
    changed = await gw.call("book", other, turn=2)
    assert changed.status is ToolStatus.NEEDS_CONFIRMATION and tools.seen == []
    # and once run, the confirmation is used up: the next booking is read back again
    assert (await gw.call("book", other, turn=3)).status is ToolStatus.OK
    assert (await gw.call("book", other, turn=4)).status is ToolStatus.NEEDS_CONFIRMATION
