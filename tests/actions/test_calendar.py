"""The calendar tools through the policy gateway, on a real calendar in SQLite and
PostgreSQL: what the LLM reads, what is stored, races, retries and tenants."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callwright.actions.calendar import CALENDAR_TOOL_NAMES, register_calendar_tools
from callwright.actions.gateway import REDACTED, GatewayResult, ToolAudit, ToolGateway, ToolStatus
from callwright.actions.tools import ToolRegistry
from callwright.storage.calendar import BookingStatus, CalendarRepository
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database
from tests.helpers.postgres import fresh_postgres_database

# the demo clinic (knowledge/clinic/doctors-and-staff.md), in New York time (UTC-5 in
# early March); Monday 3 March 2025, seen from the Saturday before
NY = "America/New_York"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WEEKDAYS = [["09:00", "12:00"], ["13:00", "17:00"]]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'calendar.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database())
        database = Database(url)
        stack.push_async_callback(database.aclose)
        await database.migrate()
        yield database


@pytest.fixture
async def repo(db: Database) -> CalendarRepository:
    """The clinic's calendars in tenant acme (globex exists, with none)."""
    for tenant in ("acme", "globex"):
        await CallRepository(db).ensure_tenant(tenant, tenant.title())
    repo = CalendarRepository(db)
    patel = {d: WEEKDAYS for d in ("mon", "tue", "thu", "fri")}
    await repo.upsert_resource(
        "acme", "dr-patel", name="Dr Anil Patel", timezone=NY, hours=patel, slot_minutes=30
    )
    chen = {**{d: WEEKDAYS for d in ("mon", "wed", "thu", "fri")}, "sat": [["09:00", "12:00"]]}
    await repo.upsert_resource(
        "acme", "dr-chen", name="Dr Mei Chen", timezone=NY, hours=chen, slot_minutes=30
    )
    nurse = {d: [["09:00", "10:00"]] for d in ("mon", "wed", "fri")}
    await repo.upsert_resource(
        "acme", "nurse-okafor", name="Grace Okafor", timezone=NY, hours=nurse, capacity=2
    )
    return repo


class Calls:
    """Gateways over one registry: one per (tenant, call), every audit record kept."""

    def __init__(self, repo: CalendarRepository) -> None:
        self.registry = ToolRegistry()
        assert register_calendar_tools(self.registry, repo, now=lambda: NOW) == list(
            CALENDAR_TOOL_NAMES
        )
        self.audits: list[ToolAudit] = []

    def gateway(self, call_id: str = "call-1", tenant: str = "acme") -> ToolGateway:
        """The caller answers every read-back with a yes (confirmation is tested in
        test_gateway.py; these tests are about the calendar)."""
        return ToolGateway(
            caller_said=lambda: "Yes, that's right.",
            tenant_id=tenant,
            call_id=call_id,
            agent_id="clinic-receptionist",
            allowed=CALENDAR_TOOL_NAMES,
            audit=self.audits.append,
            registry=self.registry,
            max_calls=50,
            max_per_minute=50,
        )

    async def __call__(
        self, tool: str, *, call_id: str = "call-1", tenant: str = "acme", **args: Any
    ) -> GatewayResult:
        gateway, text = self.gateway(call_id, tenant), json.dumps(args)
        result = await gateway.call(tool, text, turn=1)
        if result.status is ToolStatus.NEEDS_CONFIRMATION:  # read back; the caller says yes
            result = await gateway.call(tool, text, turn=2)
        return result

    @property
    def data(self) -> dict[str, Any]:
        data = self.audits[-1].data
        assert data is not None
        return data


@pytest.fixture
def calls(repo: CalendarRepository) -> Calls:
    return Calls(repo)


BOOKING = {"name": "Ann Lee", "phone": "555-0100", "reason": "blood pressure review"}
MON_9 = "2025-03-03T09:00:00-05:00"


async def _free(calls: Calls, resource: str, day: str = "2025-03-03") -> dict[str, int]:
    result = await calls("calendar_availability", resource=resource, day=day)
    assert result.status is ToolStatus.OK, result.content
    return {s["start"]: s["free"] for s in calls.data["slots"]}


async def test_availability_follows_hours_time_zone_and_capacity(calls: Calls) -> None:
    result = await calls("calendar_availability", resource="dr-patel", day="2025-03-03")
    assert result.content.startswith(
        "free with Dr Anil Patel: Monday 3 March at 9 am [2025-03-03T09:00:00-05:00]; "
        "Monday 3 March at 9:30 am [2025-03-03T09:30:00-05:00]"
    )
    assert "and 6 later free times" in result.content  # 14 slots, 8 read out
    starts = [s["start"] for s in calls.data["slots"]]
    assert len(starts) == 14 and "2025-03-03T12:00:00-05:00" not in starts  # lunch
    wednesday = await calls("calendar_availability", resource="dr-patel", day="2025-03-05")
    assert wednesday.content == "Dr Anil Patel has no free time then"
    # after the clocks go forward (9 March), 9 am is still 9 am there
    await calls("calendar_availability", resource="dr-patel", day="2025-03-10")
    assert calls.data["slots"][0]["start"] == "2025-03-10T09:00:00-04:00"
    assert (await _free(calls, "nurse-okafor"))["2025-03-03T09:00:00-05:00"] == 2
    await calls("calendar_book", resource="nurse-okafor", start=MON_9, **BOOKING)
    assert (await _free(calls, "nurse-okafor"))[MON_9] == 1
    await calls("calendar_book", resource="nurse-okafor", start=MON_9, call_id="c2", **BOOKING)
    assert MON_9 not in await _free(calls, "nurse-okafor")


async def test_book_takes_the_slot_and_keeps_personal_data_out_of_the_audit(
    calls: Calls, repo: CalendarRepository
) -> None:
    result = await calls("calendar_book", resource="dr-patel", start=MON_9, **BOOKING)
    assert result.status is ToolStatus.OK
    reference = calls.data["booking_id"]
    assert result.content == (
        f"booked: Ann Lee with Dr Anil Patel on Monday 3 March at 9 am; the reference is "
        f"{reference} (spell it out to the caller)"
    )
    assert calls.audits[-1].arguments["phone"] == REDACTED
    assert calls.audits[-1].arguments["reason"] == REDACTED
    assert MON_9 not in await _free(calls, "dr-patel")
    stored = await repo.get("acme", reference)
    assert stored is not None
    assert (stored.name, stored.phone, stored.call_id) == ("Ann Lee", "555-0100", "call-1")
    assert stored.start == datetime(2025, 3, 3, 14, 0, tzinfo=UTC)


async def test_the_last_place_booked_concurrently_books_once_and_offers_alternatives(
    calls: Calls, repo: CalendarRepository
) -> None:
    results = await asyncio.gather(
        calls("calendar_book", resource="dr-patel", start=MON_9, call_id="a", **BOOKING),
        calls("calendar_book", resource="dr-patel", start=MON_9, call_id="b", **BOOKING),
    )
    booked = [r for r in results if r.content.startswith("booked:")]
    refused = [r for r in results if r.content.startswith("not booked:")]
    assert len(booked) == 1 and len(refused) == 1
    assert refused[0].content == (
        "not booked: Monday 3 March at 9 am with Dr Anil Patel is already taken; offer the "
        "caller one of these instead: Monday 3 March at 9:30 am [2025-03-03T09:30:00-05:00]; "
        "Monday 3 March at 10 am [2025-03-03T10:00:00-05:00]; "
        "Monday 3 March at 10:30 am [2025-03-03T10:30:00-05:00]"
    )
    assert len(await repo.list_bookings("acme")) == 1


async def test_a_retried_call_returns_the_same_booking(
    calls: Calls, repo: CalendarRepository
) -> None:
    first = await calls("calendar_book", resource="dr-patel", start=MON_9, **BOOKING)
    reference = calls.data["booking_id"]
    again = await calls("calendar_book", resource="dr-patel", start=MON_9, **BOOKING)
    assert again.content == first.content and calls.data["booking_id"] == reference
    # the same offset written differently is the same request
    await calls("calendar_book", resource="dr-patel", start="2025-03-03T14:00:00Z", **BOOKING)
    assert calls.data["booking_id"] == reference
    assert len(await repo.list_bookings("acme")) == 1
    other = await calls("calendar_book", resource="dr-patel", start=MON_9, call_id="c2", **BOOKING)
    assert other.content.startswith("not booked:")


async def test_cancel_frees_the_slot(calls: Calls, repo: CalendarRepository) -> None:
    await calls("calendar_book", resource="dr-patel", start=MON_9, **BOOKING)
    reference = calls.data["booking_id"]
    result = await calls("calendar_cancel", booking_id=reference.lower())
    assert result.content == (
        f"cancelled: the booking {reference} with Dr Anil Patel on Monday 3 March at 9 am"
    )
    assert MON_9 in await _free(calls, "dr-patel")
    stored = await repo.get("acme", reference)
    assert stored is not None and stored.status is BookingStatus.CANCELLED
    missing = await calls("calendar_cancel", booking_id="QQQQQQ")
    assert missing.content.startswith("not done: there is no booking with reference 'QQQQQQ'")


async def test_reschedule_moves_the_booking_or_keeps_it(calls: Calls) -> None:
    await calls("calendar_book", resource="dr-patel", start=MON_9, **BOOKING)
    mine = calls.data["booking_id"]
    ten = "2025-03-03T10:00:00-05:00"
    await calls("calendar_book", resource="dr-patel", start=ten, call_id="c2", **BOOKING)
    clash = await calls("calendar_reschedule", booking_id=mine, start=ten)
    assert clash.content.startswith("not moved: Monday 3 March at 10 am with Dr Anil Patel is")
    assert clash.content.endswith("; the booking stays on Monday 3 March at 9 am")
    assert MON_9 not in await _free(calls, "dr-patel")
    moved = await calls("calendar_reschedule", booking_id=mine, start="2025-03-04T15:30:00-05:00")
    assert moved.content == (
        f"moved: the booking {mine} with Dr Anil Patel is now on Tuesday 4 March at 3:30 pm"
    )
    assert MON_9 in await _free(calls, "dr-patel")
    assert "2025-03-04T15:30:00-05:00" not in await _free(calls, "dr-patel", "2025-03-04")


async def test_bad_dates_are_refused(calls: Calls, repo: CalendarRepository) -> None:
    for args in (
        {"resource": "dr-patel", "day": "2025-02-30"},
        {"resource": "dr-patel", "day": "next monday"},
        {"resource": "dr-patel", "from": "2025-03-03 09:00"},
    ):
        result = await calls("calendar_availability", **args)
        assert result.status is ToolStatus.BAD_ARGUMENTS, args
    for start in ("2025-03-03T09:00:00", "Monday 9am", "2025-03-03T09:00-05:00"):
        result = await calls("calendar_book", resource="dr-patel", start=start, **BOOKING)
        assert result.status is ToolStatus.BAD_ARGUMENTS, start
    # right shape, no such day: the handler says so, and books nothing
    result = await calls(
        "calendar_book", resource="dr-patel", start="2025-02-30T09:00:00-05:00", **BOOKING
    )
    assert result.content.startswith("not done: '2025-02-30T09:00:00-05:00' is not a real date")
    off_grid = await calls(
        "calendar_book", resource="dr-patel", start="2025-03-03T09:10:00-05:00", **BOOKING
    )
    assert off_grid.content.startswith(
        "not booked: Monday 3 March at 9:10 am is not a time Dr Anil Patel can be booked"
    )
    assert await repo.list_bookings("acme") == []


async def test_a_tenant_never_sees_another_tenants_calendar(
    calls: Calls, repo: CalendarRepository
) -> None:
    await calls("calendar_book", resource="dr-patel", start=MON_9, **BOOKING)
    reference = calls.data["booking_id"]
    theirs = await calls("calendar_availability", tenant="globex", resource="dr-patel")
    assert theirs.content == "not done: there is no calendar 'dr-patel'; calendars: none"
    for tool, args in (
        ("calendar_cancel", {"booking_id": reference}),
        ("calendar_reschedule", {"booking_id": reference, "start": MON_9}),
    ):
        result = await calls(tool, tenant="globex", **args)
        assert result.content.startswith("not done: there is no booking with reference"), tool
    stored = await repo.get("acme", reference)
    assert stored is not None and stored.status is BookingStatus.BOOKED
    unknown = await calls("calendar_availability", resource="dr-who")
    assert unknown.content == (
        "not done: there is no calendar 'dr-who'; calendars: dr-chen (Dr Mei Chen), "
        "dr-patel (Dr Anil Patel), nurse-okafor (Grace Okafor)"
    )


def test_registration_keeps_a_tool_the_installation_already_has(
    calls: Calls, repo: CalendarRepository
) -> None:
    registry = ToolRegistry()
    own = calls.registry.get("calendar_cancel")
    registry.register(own)
    added = register_calendar_tools(registry, repo)
    assert added == ["calendar_availability", "calendar_book", "calendar_reschedule"]
    assert registry.get("calendar_cancel") is own
    assert register_calendar_tools(registry, repo) == []
