"""A tenant's calendars and bookings: availability, book, cancel, reschedule.

Capacity is checked and taken in ONE transaction that first locks the resource's row
(`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite a no-op write, which takes the single
writer lock before anything is read), so two callers racing for the last place of a
slot cannot both get it: the second one waits, then counts the first one's booking.

What a caller can be told is a typed result, never an exception to parse: `book` and
`reschedule` return a `Booking` or a `BookingConflict` carrying up to three nearest
free slots to offer instead. An idempotency key (unique per tenant) makes a retried
request return the booking it already made. Every query filters by tenant_id.
"""

from __future__ import annotations

import secrets
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callwright.storage import calendar_hours as ch
from callwright.storage.calendar_hours import CalendarDefinitionError
from callwright.storage.db import Database
from callwright.storage.models import CalendarBooking, CalendarResource, utcnow
from callwright.storage.records import as_utc

__all__ = [
    "Booking",
    "BookingConflict",
    "BookingStatus",
    "CalendarDefinitionError",
    "CalendarRepository",
    "ConflictReason",
    "Resource",
    "Slot",
    "UnknownResourceError",
]

MAX_RANGE = timedelta(days=62)  # availability never lays out more than this
ALTERNATIVES = 3
ALTERNATIVES_WINDOW = timedelta(days=14)  # searched on each side of the asked time
# booking references are read out on the phone: no 0/O, 1/I/L, 2/Z, 5/S, 6/G, 8/B
_REF_ALPHABET = "ACDEFHJKMNPQRTUVWXY3479"
_REF_LENGTH = 6


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"


class ConflictReason(StrEnum):
    FULL = "full"  # the slot has no place left
    NOT_A_SLOT = "not_a_slot"  # closed then, or not on the slot grid
    PAST = "past"  # the slot has already started
    CANCELLED = "cancelled"  # a cancelled booking cannot be moved


class UnknownResourceError(LookupError):
    """No calendar by that id in this tenant (whether or not another tenant has one)."""


@dataclass(frozen=True, slots=True)
class Resource:
    tenant_id: str
    resource_id: str
    name: str
    timezone: str
    slot_minutes: int
    capacity: int
    hours: dict[str, list[list[str]]]

    @property
    def zone(self) -> ZoneInfo:
        return ch.zone(self.timezone)


@dataclass(frozen=True, slots=True)
class Slot:
    """A free slot: UTC start and end, and how many places are left in it."""

    start: datetime
    end: datetime
    free: int


@dataclass(frozen=True, slots=True)
class Booking:
    id: str
    tenant_id: str
    resource_id: str
    start: datetime
    end: datetime
    name: str
    phone: str
    reason: str
    status: BookingStatus
    call_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BookingConflict:
    """Not booked: why, and up to three nearest free slots, in time order."""

    reason: ConflictReason
    requested: datetime
    alternatives: tuple[Slot, ...] = ()


def _resource(row: CalendarResource) -> Resource:
    return Resource(
        row.tenant_id,
        row.resource_id,
        row.name,
        row.timezone,
        row.slot_minutes,
        row.capacity,
        row.hours,
    )


def _booking(row: CalendarBooking) -> Booking:
    return Booking(
        id=row.id,
        tenant_id=row.tenant_id,
        resource_id=row.resource_id,
        start=row.start_at,
        end=row.end_at,
        name=row.name,
        phone=row.phone,
        reason=row.reason,
        status=BookingStatus(row.status),
        call_id=row.call_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _new_reference() -> str:
    return "".join(secrets.choice(_REF_ALPHABET) for _ in range(_REF_LENGTH))


def _layout(
    row: CalendarResource, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    return ch.slots_between(
        ch.parse_hours(row.hours), ch.zone(row.timezone), row.slot_minutes, start, end
    )


def _free_slots(
    row: CalendarResource,
    spans: Sequence[tuple[datetime, datetime]],
    booked: Sequence[tuple[datetime, datetime]],
) -> list[Slot]:
    """The spans with places left, given the active bookings' (start, end), sorted."""
    starts = [b[0] for b in booked]
    longest = max((e - s for s, e in booked), default=timedelta(0))
    out = []
    for start, end in spans:
        lo, hi = bisect_left(starts, start - longest), bisect_left(starts, end)
        taken = sum(1 for s, e in booked[lo:hi] if s < end and e > start)
        if taken < row.capacity:
            out.append(Slot(start, end, row.capacity - taken))
    return out


class CalendarRepository:
    """Calendars (resources) and their bookings, every call scoped by tenant."""

    def __init__(self, db: Database) -> None:
        self._sessions = db.sessions

    # ------------------------------------------------------------- resources
    async def upsert_resource(
        self,
        tenant_id: str,
        resource_id: str,
        *,
        name: str,
        timezone: str,
        hours: Mapping[str, Any],
        slot_minutes: int = 15,
        capacity: int = 1,
    ) -> Resource:
        """Create or redefine a calendar. Existing bookings keep their times."""
        ch.zone(timezone)
        stored = ch.hours_json(ch.parse_hours(hours))
        if not 5 <= slot_minutes <= 24 * 60:
            raise CalendarDefinitionError("slot_minutes must be between 5 and 1440")
        if capacity < 1:
            raise CalendarDefinitionError("capacity must be at least 1")
        if not resource_id.strip() or not name.strip():
            raise CalendarDefinitionError("resource_id and name must not be empty")
        async with self._sessions() as s, s.begin():
            row = await self._resource_row(s, tenant_id, resource_id)
            if row is None:
                row = CalendarResource(
                    tenant_id=tenant_id, resource_id=resource_id, created_at=utcnow()
                )
                s.add(row)
            row.name, row.timezone, row.hours = name, timezone, stored
            row.slot_minutes, row.capacity, row.updated_at = slot_minutes, capacity, utcnow()
        return _resource(row)

    async def get_resource(self, tenant_id: str, resource_id: str) -> Resource | None:
        async with self._sessions() as s:
            row = await self._resource_row(s, tenant_id, resource_id)
            return None if row is None else _resource(row)

    async def list_resources(self, tenant_id: str) -> list[Resource]:
        async with self._sessions() as s:
            rows = await s.execute(
                select(CalendarResource)
                .where(CalendarResource.tenant_id == tenant_id)
                .order_by(CalendarResource.resource_id)
            )
            return [_resource(r) for r in rows.scalars()]

    @staticmethod
    async def _resource_row(
        s: AsyncSession, tenant_id: str, resource_id: str, *, lock: bool = False
    ) -> CalendarResource | None:
        query = select(CalendarResource).where(
            CalendarResource.tenant_id == tenant_id, CalendarResource.resource_id == resource_id
        )
        return (await s.execute(query.with_for_update() if lock else query)).scalar_one_or_none()

    @classmethod
    async def _lock(cls, s: AsyncSession, tenant_id: str, resource_id: str) -> CalendarResource:
        """Serialise bookings of one resource until this transaction ends."""
        if s.get_bind().dialect.name == "sqlite":
            # pysqlite opens the transaction at the first write: writing first takes
            # SQLite's one writer lock before capacity is read (FOR UPDATE is ignored)
            await s.execute(
                update(CalendarResource)
                .where(
                    CalendarResource.tenant_id == tenant_id,
                    CalendarResource.resource_id == resource_id,
                )
                .values(updated_at=CalendarResource.updated_at)
                .execution_options(synchronize_session=False)
            )
        row = await cls._resource_row(s, tenant_id, resource_id, lock=True)
        if row is None:
            raise UnknownResourceError(f"no calendar {resource_id!r}")
        return row

    # ---------------------------------------------------------- availability
    async def availability(
        self, tenant_id: str, resource_id: str, start: datetime, end: datetime, *, now: datetime
    ) -> list[Slot]:
        """Free slots starting in [start, end) (at most `MAX_RANGE`), none before `now`."""
        start = max(as_utc(start, "start"), as_utc(now, "now"))
        end = min(as_utc(end, "end"), start + MAX_RANGE)
        async with self._sessions() as s:
            row = await self._resource_row(s, tenant_id, resource_id)
            if row is None:
                raise UnknownResourceError(f"no calendar {resource_id!r}")
            return await self._free(s, row, start, end)

    @staticmethod
    async def _booked_spans(
        s: AsyncSession, row: CalendarResource, start: datetime, end: datetime, *, skip: str = ""
    ) -> list[tuple[datetime, datetime]]:
        """Active bookings overlapping [start, end), but `skip` (a booking being moved)."""
        rows = await s.execute(
            select(CalendarBooking.start_at, CalendarBooking.end_at)
            .where(
                CalendarBooking.tenant_id == row.tenant_id,
                CalendarBooking.resource_id == row.resource_id,
                CalendarBooking.status == BookingStatus.BOOKED.value,
                CalendarBooking.start_at < end,
                CalendarBooking.end_at > start,
                CalendarBooking.id != skip,
            )
            .order_by(CalendarBooking.start_at)
        )
        return [(a, b) for a, b in rows]

    async def _free(
        self, s: AsyncSession, row: CalendarResource, start: datetime, end: datetime, skip: str = ""
    ) -> list[Slot]:
        if end <= start:
            return []
        spans = _layout(row, start, end)
        if not spans:
            return []
        booked = await self._booked_spans(s, row, spans[0][0], spans[-1][1], skip=skip)
        return _free_slots(row, spans, booked)

    async def _alternatives(
        self, s: AsyncSession, row: CalendarResource, around: datetime, now: datetime, skip: str
    ) -> tuple[Slot, ...]:
        """The free slots nearest `around` (either side, none in the past), in time order."""
        lo = max(around - ALTERNATIVES_WINDOW, now)
        free = await self._free(s, row, lo, around + ALTERNATIVES_WINDOW, skip)
        nearest = sorted(free, key=lambda slot: (abs(slot.start - around), slot.start))
        return tuple(sorted(nearest[:ALTERNATIVES], key=lambda slot: slot.start))

    async def _check_slot(
        self, s: AsyncSession, row: CalendarResource, start: datetime, now: datetime, skip: str = ""
    ) -> tuple[datetime, datetime] | BookingConflict:
        """The slot at `start` when it can take one more booking, else the conflict."""
        reason: ConflictReason | None = None
        span = ch.slot_at(ch.parse_hours(row.hours), ch.zone(row.timezone), row.slot_minutes, start)
        if span is None:
            reason = ConflictReason.NOT_A_SLOT
        elif start < now:
            reason = ConflictReason.PAST
        elif len(await self._booked_spans(s, row, *span, skip=skip)) >= row.capacity:
            reason = ConflictReason.FULL
        if reason is None and span is not None:
            return span
        return BookingConflict(
            reason or ConflictReason.FULL, start, await self._alternatives(s, row, start, now, skip)
        )

    # -------------------------------------------------------------- bookings
    async def book(
        self,
        tenant_id: str,
        resource_id: str,
        start: datetime,
        *,
        name: str,
        phone: str,
        reason: str = "",
        now: datetime,
        call_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Booking | BookingConflict:
        """Book the slot at `start`, or say why not. A key already used in this tenant
        returns the booking it made (whatever its state), and books nothing."""
        start, now = as_utc(start, "start"), as_utc(now, "now")
        for _ in range(3):  # a clash of random references, or of a racing retry
            try:
                async with self._sessions() as s, s.begin():
                    row = await self._lock(s, tenant_id, resource_id)
                    if idempotency_key is not None:
                        earlier = await self._by_key(s, tenant_id, idempotency_key)
                        if earlier is not None:
                            return _booking(earlier)
                    checked = await self._check_slot(s, row, start, now)
                    if isinstance(checked, BookingConflict):
                        return checked
                    at = utcnow()
                    booking = CalendarBooking(
                        id=_new_reference(),
                        tenant_id=tenant_id,
                        resource_id=resource_id,
                        start_at=checked[0],
                        end_at=checked[1],
                        name=name,
                        phone=phone,
                        reason=reason,
                        status=BookingStatus.BOOKED.value,
                        call_id=call_id,
                        idempotency_key=idempotency_key,
                        created_at=at,
                        updated_at=at,
                    )
                    s.add(booking)
                return _booking(booking)
            except IntegrityError:
                continue
        raise RuntimeError("could not store the booking after 3 attempts")

    @staticmethod
    async def _by_key(s: AsyncSession, tenant_id: str, key: str) -> CalendarBooking | None:
        return (
            await s.execute(
                select(CalendarBooking).where(
                    CalendarBooking.tenant_id == tenant_id, CalendarBooking.idempotency_key == key
                )
            )
        ).scalar_one_or_none()

    @staticmethod
    async def _booking_row(
        s: AsyncSession, tenant_id: str, booking_id: str, *, lock: bool = False
    ) -> CalendarBooking | None:
        query = select(CalendarBooking).where(
            CalendarBooking.tenant_id == tenant_id, CalendarBooking.id == booking_id
        )
        return (await s.execute(query.with_for_update() if lock else query)).scalar_one_or_none()

    async def cancel(self, tenant_id: str, booking_id: str) -> Booking | None:
        """Cancel and free the place; cancelling twice is harmless. None: no such booking."""
        async with self._sessions() as s, s.begin():
            row = await self._booking_row(s, tenant_id, booking_id)
            if row is None:
                return None
            await self._lock(s, tenant_id, row.resource_id)
            await s.refresh(row)
            if row.status != BookingStatus.CANCELLED.value:
                row.status, row.updated_at = BookingStatus.CANCELLED.value, utcnow()
            return _booking(row)

    async def reschedule(
        self, tenant_id: str, booking_id: str, start: datetime, *, now: datetime
    ) -> Booking | BookingConflict | None:
        """Move a booking to the slot at `start` in one transaction: it keeps its old
        slot unless the new one has room. None: no such booking in this tenant."""
        start, now = as_utc(start, "start"), as_utc(now, "now")
        async with self._sessions() as s, s.begin():
            row = await self._booking_row(s, tenant_id, booking_id)
            if row is None:
                return None
            resource = await self._lock(s, tenant_id, row.resource_id)
            await s.refresh(row)
            if row.status != BookingStatus.BOOKED.value:
                return BookingConflict(ConflictReason.CANCELLED, start)
            if row.start_at == start:
                return _booking(row)
            checked = await self._check_slot(s, resource, start, now, skip=row.id)
            if isinstance(checked, BookingConflict):
                return checked
            row.start_at, row.end_at, row.updated_at = checked[0], checked[1], utcnow()
            return _booking(row)

    async def get(self, tenant_id: str, booking_id: str) -> Booking | None:
        async with self._sessions() as s:
            row = await self._booking_row(s, tenant_id, booking_id)
            return None if row is None else _booking(row)

    async def list_bookings(
        self,
        tenant_id: str,
        *,
        resource_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: BookingStatus | None = None,
    ) -> list[Booking]:
        """Bookings in time order; `start`/`end` keep those overlapping [start, end)."""
        query = select(CalendarBooking).where(CalendarBooking.tenant_id == tenant_id)
        if resource_id is not None:
            query = query.where(CalendarBooking.resource_id == resource_id)
        if start is not None:
            query = query.where(CalendarBooking.end_at > as_utc(start, "start"))
        if end is not None:
            query = query.where(CalendarBooking.start_at < as_utc(end, "end"))
        if status is not None:
            query = query.where(CalendarBooking.status == status.value)
        async with self._sessions() as s:
            rows = await s.execute(query.order_by(CalendarBooking.start_at, CalendarBooking.id))
            return [_booking(r) for r in rows.scalars()]
