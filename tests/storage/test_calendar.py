"""The calendar repository on SQLite and PostgreSQL: slots, capacity, races, tenants."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callwright.storage.calendar import (
    Booking,
    BookingConflict,
    BookingStatus,
    CalendarDefinitionError,
    CalendarRepository,
    ConflictReason,
    UnknownResourceError,
)
from callwright.storage.calls import CallRepository
from callwright.storage.db import Database

NY = "America/New_York"
# Monday 3 March 2025, before the US clocks go forward (9 March): New York is UTC-5
MON = datetime(2025, 3, 3, tzinfo=UTC)
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # the Saturday before
HOURS = {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "tue": [["09:00", "17:00"]]}


def at(hour: int, minute: int = 0, day: datetime = MON) -> datetime:
    """New York wall-clock time on `day`, in UTC (EST, UTC-5)."""
    return day + timedelta(hours=hour + 5, minutes=minute)


@pytest.fixture
async def cal(db: Database, calls: CallRepository) -> CalendarRepository:
    """Acme's Dr Patel (30-minute slots, one place) and nurse clinic (two places)."""
    repo = CalendarRepository(db)
    await repo.upsert_resource(
        "acme", "dr-patel", name="Dr Anil Patel", timezone=NY, hours=HOURS, slot_minutes=30
    )
    await repo.upsert_resource(
        "acme", "nurse", name="Nurse clinic", timezone=NY, hours=HOURS, slot_minutes=30, capacity=2
    )
    return repo


async def _book(repo: CalendarRepository, start: datetime, **kw: Any) -> Booking | BookingConflict:
    args: dict[str, Any] = {"name": "Ann Lee", "phone": "555-0100", "reason": "check-up"}
    args.update(kw)
    resource = args.pop("resource", "dr-patel")
    tenant = args.pop("tenant", "acme")
    return await repo.book(tenant, resource, start, now=args.pop("now", NOW), **args)


async def test_resources_round_trip_and_bad_definitions_refused(cal: CalendarRepository) -> None:
    patel = await cal.get_resource("acme", "dr-patel")
    assert patel is not None
    assert (patel.name, patel.timezone, patel.slot_minutes, patel.capacity) == (
        "Dr Anil Patel",
        NY,
        30,
        1,
    )
    assert patel.hours == HOURS
    again = await cal.upsert_resource(
        "acme", "dr-patel", name="Dr Patel", timezone=NY, hours=HOURS, slot_minutes=15
    )
    assert (again.name, again.slot_minutes) == ("Dr Patel", 15)
    assert [r.resource_id for r in await cal.list_resources("acme")] == ["dr-patel", "nurse"]
    bad: list[dict[str, Any]] = [
        {"timezone": "Mars/Olympus"},
        {"hours": {"monday": [["09:00", "17:00"]]}},
        {"hours": {"mon": [["17:00", "09:00"]]}},
        {"hours": {"mon": [["9am", "17:00"]]}},
        {"hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
        {"capacity": 0},
    ]
    for change in bad:
        kwargs: dict[str, Any] = {"name": "X", "timezone": NY, "hours": HOURS, **change}
        with pytest.raises(CalendarDefinitionError):
            await cal.upsert_resource("acme", "x", **kwargs)
    assert await cal.get_resource("acme", "x") is None


async def test_availability_follows_opening_hours_in_the_resource_time_zone(
    cal: CalendarRepository,
) -> None:
    slots = await cal.availability("acme", "dr-patel", MON, MON + timedelta(days=1), now=NOW)
    assert [s.start for s in slots[:2]] == [at(9), at(9, 30)]  # 14:00 UTC, not 09:00
    assert len(slots) == 6 + 8  # 09-12 and 13-17 in half hours: the lunch hour is closed
    assert at(12) not in {s.start for s in slots}
    assert all(s.end - s.start == timedelta(minutes=30) and s.free == 1 for s in slots)
    wednesday = MON + timedelta(days=2)
    assert (
        await cal.availability(
            "acme", "dr-patel", wednesday, wednesday + timedelta(days=1), now=NOW
        )
        == []
    )
    # a week later the clocks have gone forward: 9 am in New York is 13:00 UTC
    later = MON + timedelta(days=7)
    slots = await cal.availability("acme", "dr-patel", later, later + timedelta(days=1), now=NOW)
    assert slots[0].start == later + timedelta(hours=13)


async def test_availability_starts_at_now(cal: CalendarRepository) -> None:
    now = at(10, 10)
    slots = await cal.availability("acme", "dr-patel", MON, MON + timedelta(days=1), now=now)
    assert slots[0].start == at(10, 30)


async def test_booking_takes_a_place_and_conflicts_offer_the_nearest_free_slots(
    cal: CalendarRepository,
) -> None:
    day = (MON, MON + timedelta(days=1))
    first = await _book(cal, at(10), resource="nurse", call_id="call-1")
    assert isinstance(first, Booking)
    assert (first.status, first.start, first.end) == (BookingStatus.BOOKED, at(10), at(10, 30))
    assert (first.call_id, len(first.id)) == ("call-1", 6)
    free = {s.start: s.free for s in await cal.availability("acme", "nurse", *day, now=NOW)}
    assert free[at(10)] == 1
    assert isinstance(await _book(cal, at(10), resource="nurse"), Booking)
    free = {s.start: s.free for s in await cal.availability("acme", "nurse", *day, now=NOW)}
    assert at(10) not in free
    full = await _book(cal, at(10), resource="nurse")
    assert isinstance(full, BookingConflict)
    assert full.reason is ConflictReason.FULL
    assert [s.start for s in full.alternatives] == [at(9), at(9, 30), at(10, 30)]


async def test_off_grid_closed_and_past_times_are_conflicts(cal: CalendarRepository) -> None:
    off_grid = await _book(cal, at(9, 10))
    assert isinstance(off_grid, BookingConflict)
    assert off_grid.reason is ConflictReason.NOT_A_SLOT
    assert [s.start for s in off_grid.alternatives] == [at(9), at(9, 30), at(10)]
    lunch = await _book(cal, at(12))
    assert isinstance(lunch, BookingConflict) and lunch.reason is ConflictReason.NOT_A_SLOT
    past = await _book(cal, at(9), now=at(9, 5))
    assert isinstance(past, BookingConflict) and past.reason is ConflictReason.PAST
    assert all(s.start >= at(9, 5) for s in past.alternatives) and past.alternatives
    assert await cal.list_bookings("acme") == []


async def test_the_last_place_booked_concurrently_goes_to_one_caller(
    cal: CalendarRepository,
) -> None:
    results = await asyncio.gather(*(_book(cal, at(11), name=f"caller {i}") for i in range(6)))
    booked = [r for r in results if isinstance(r, Booking)]
    conflicts = [r for r in results if isinstance(r, BookingConflict)]
    assert len(booked) == 1 and len(conflicts) == 5
    assert all(c.reason is ConflictReason.FULL and c.alternatives for c in conflicts)
    results = await asyncio.gather(*(_book(cal, at(14), resource="nurse") for _ in range(5)))
    assert sum(isinstance(r, Booking) for r in results) == 2
    assert len(await cal.list_bookings("acme", status=BookingStatus.BOOKED)) == 3


async def test_an_idempotency_key_books_once(cal: CalendarRepository) -> None:
    first, second = await asyncio.gather(
        _book(cal, at(9), idempotency_key="k1"), _book(cal, at(9), idempotency_key="k1")
    )
    assert isinstance(first, Booking) and isinstance(second, Booking)
    assert first.id == second.id
    assert len(await cal.list_bookings("acme")) == 1
    # the same key in another tenant is another booking
    await cal.upsert_resource("globex", "dr-patel", name="Dr P", timezone=NY, hours=HOURS)
    other = await _book(cal, at(9), tenant="globex", idempotency_key="k1")
    assert isinstance(other, Booking) and other.id != first.id


async def test_cancel_frees_the_place(cal: CalendarRepository) -> None:
    booking = await _book(cal, at(9))
    assert isinstance(booking, Booking)
    cancelled = await cal.cancel("acme", booking.id)
    assert cancelled is not None and cancelled.status is BookingStatus.CANCELLED
    assert (await cal.cancel("acme", booking.id)) == cancelled  # twice is harmless
    assert await cal.cancel("acme", "NOSUCH") is None
    assert isinstance(await _book(cal, at(9)), Booking)
    stored = await cal.get("acme", booking.id)
    assert stored is not None and stored.status is BookingStatus.CANCELLED


async def test_reschedule_moves_atomically(cal: CalendarRepository) -> None:
    mine, other = await _book(cal, at(9)), await _book(cal, at(10))
    assert isinstance(mine, Booking) and isinstance(other, Booking)
    clash = await cal.reschedule("acme", mine.id, at(10), now=NOW)
    assert isinstance(clash, BookingConflict) and clash.reason is ConflictReason.FULL
    assert clash.alternatives  # and the booking has kept its slot
    assert (await cal.get("acme", mine.id)) == mine
    moved = await cal.reschedule("acme", mine.id, at(15), now=NOW)
    assert isinstance(moved, Booking)
    assert (moved.id, moved.start, moved.end) == (mine.id, at(15), at(15, 30))
    free = {s.start for s in await cal.availability("acme", "dr-patel", MON, at(17), now=NOW)}
    assert at(9) in free and at(15) not in free
    assert isinstance(await cal.reschedule("acme", mine.id, at(15), now=NOW), Booking)
    await cal.cancel("acme", mine.id)
    gone = await cal.reschedule("acme", mine.id, at(16), now=NOW)
    assert isinstance(gone, BookingConflict) and gone.reason is ConflictReason.CANCELLED
    assert await cal.reschedule("acme", "NOSUCH", at(16), now=NOW) is None


async def test_tenant_isolation(cal: CalendarRepository) -> None:
    booking = await _book(cal, at(9))
    assert isinstance(booking, Booking)
    assert await cal.get("globex", booking.id) is None
    assert await cal.cancel("globex", booking.id) is None
    assert await cal.reschedule("globex", booking.id, at(10), now=NOW) is None
    assert await cal.list_bookings("globex") == []
    assert await cal.list_resources("globex") == []
    with pytest.raises(UnknownResourceError):
        await cal.availability("globex", "dr-patel", MON, at(17), now=NOW)
    with pytest.raises(UnknownResourceError):
        await _book(cal, at(10), tenant="globex")
    stored = await cal.get("acme", booking.id)
    assert stored is not None and stored.status is BookingStatus.BOOKED
