"""Built-in calendar tools: availability, book, cancel, reschedule, on real storage.

The LLM never computes a date: it passes ISO strings the schema checks (`format`
plus a pattern, since the format check for date-times needs a package that may be
absent), and every time it reads comes from code, spoken ("Monday 3 March at 9:30
am") beside the exact ISO start to pass back. A booking's idempotency key is derived
from the call and the arguments, so a retried call (a timeout, a repeated turn)
returns the booking already made instead of making a second one. Conflicts come back
as content offering the nearest free times, which the LLM can read to the caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from callwright.actions.tools import ToolCallContext, ToolDefinition, ToolOutcome, ToolRegistry
from callwright.storage.calendar import (
    Booking,
    BookingConflict,
    BookingStatus,
    CalendarRepository,
    ConflictReason,
    Resource,
    Slot,
)

CALENDAR_TOOL_NAMES = (
    "calendar_availability",
    "calendar_book",
    "calendar_cancel",
    "calendar_reschedule",
)
MAX_SPOKEN_SLOTS = 8  # more is not something a caller can take in by ear
DEFAULT_SPAN = timedelta(days=7)

Now = Callable[[], datetime]

# RFC 3339 with seconds and an offset: what calendar_availability hands out
_DATE_TIME = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
}
_RESOURCE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "description": "the calendar's id, e.g. dr-patel",
}
_BOOKING_ID = {"type": "string", "minLength": 1, "maxLength": 16, "description": "the reference"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _schema(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def spoken(at: datetime, resource: Resource) -> str:
    """`at` on the resource's wall clock, as said aloud: "Monday 3 March at 9:30 am"."""
    local = at.astimezone(resource.zone)
    hour = local.hour % 12 or 12
    clock = f"{hour}:{local.minute:02d}" if local.minute else str(hour)
    return f"{local:%A} {local.day} {local:%B} at {clock} {'am' if local.hour < 12 else 'pm'}"


def _iso(at: datetime, resource: Resource) -> str:
    return at.astimezone(resource.zone).isoformat(timespec="seconds")


def _slot_data(slots: Sequence[Slot], resource: Resource) -> list[dict[str, Any]]:
    return [
        {"start": _iso(s.start, resource), "end": _iso(s.end, resource), "free": s.free}
        for s in slots
    ]


def _offer(slots: Sequence[Slot], resource: Resource) -> str:
    """Free times as the LLM reads them: spoken, each with the exact start to pass."""
    return "; ".join(f"{spoken(s.start, resource)} [{_iso(s.start, resource)}]" for s in slots)


def _parse_start(text: str, resource: Resource) -> datetime | None:
    """An ISO date-time as UTC (a missing offset means the resource's wall clock)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=resource.zone)
    return value.astimezone(UTC)


def _not_a_time(text: str) -> ToolOutcome:
    return ToolOutcome(
        f"not done: {text!r} is not a real date and time; use a start given by "
        "calendar_availability",
        {"error": "bad_time"},
    )


def idempotency_key(call: ToolCallContext, tool: str, args: dict[str, Any]) -> str:
    """The same call asking the same thing gets the same key, so it books once."""
    document = json.dumps({"call": call.call_id, "tool": tool, "args": args}, sort_keys=True)
    return f"call:{hashlib.sha256(document.encode()).hexdigest()}"


def _conflict(conflict: BookingConflict, resource: Resource, verb: str) -> ToolOutcome:
    when = spoken(conflict.requested, resource)
    why = {
        ConflictReason.FULL: f"{when} with {resource.name} is already taken",
        ConflictReason.NOT_A_SLOT: f"{when} is not a time {resource.name} can be booked",
        ConflictReason.PAST: f"{when} has already passed",
        ConflictReason.CANCELLED: "that booking was cancelled; make a new booking instead",
    }[conflict.reason]
    if conflict.alternatives:
        offer = (
            f"; offer the caller one of these instead: {_offer(conflict.alternatives, resource)}"
        )
    elif conflict.reason is ConflictReason.CANCELLED:
        offer = ""
    else:
        offer = "; there is no free time near it, so offer to look at another day"
    data = {
        "conflict": conflict.reason.value,
        "alternatives": _slot_data(conflict.alternatives, resource),
    }
    return ToolOutcome(f"not {verb}: {why}{offer}", data)


def _booking_data(booking: Booking, resource: Resource) -> dict[str, Any]:
    return {
        "booking_id": booking.id,
        "resource": resource.resource_id,
        "start": _iso(booking.start, resource),
        "end": _iso(booking.end, resource),
        "status": booking.status.value,
    }


class _CalendarTools:
    """The four handlers, sharing one repository and clock."""

    def __init__(self, repo: CalendarRepository, now: Now) -> None:
        self.repo = repo
        self.now = now

    async def _resource(self, call: ToolCallContext, resource_id: str) -> Resource | ToolOutcome:
        resource = await self.repo.get_resource(call.tenant_id, resource_id)
        if resource is not None:
            return resource
        known = await self.repo.list_resources(call.tenant_id)
        names = ", ".join(f"{r.resource_id} ({r.name})" for r in known) or "none"
        return ToolOutcome(
            f"not done: there is no calendar {resource_id!r}; calendars: {names}",
            {"error": "unknown_resource"},
        )

    def _window(self, args: dict[str, Any], resource: Resource) -> tuple[datetime, datetime] | None:
        if "day" in args:
            day = date.fromisoformat(args["day"])
            start = datetime.combine(day, time(), resource.zone)
            end = datetime.combine(day + timedelta(days=1), time(), resource.zone)
            return start.astimezone(UTC), end.astimezone(UTC)
        lo = _parse_start(args["from"], resource) if "from" in args else self.now()
        if lo is None:
            return None
        hi = _parse_start(args["to"], resource) if "to" in args else lo + DEFAULT_SPAN
        return None if hi is None else (lo, hi)

    async def availability(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        resource = await self._resource(call, args["resource"])
        if isinstance(resource, ToolOutcome):
            return resource
        window = self._window(args, resource)
        if window is None:
            return _not_a_time(str(args.get("from") or args.get("to")))
        slots = await self.repo.availability(
            call.tenant_id, resource.resource_id, *window, now=self.now()
        )
        data = {"resource": resource.resource_id, "slots": _slot_data(slots, resource)}
        if not slots:
            return ToolOutcome(f"{resource.name} has no free time then", data)
        shown = slots[:MAX_SPOKEN_SLOTS]
        more = len(slots) - len(shown)
        tail = f"; and {more} later free times (ask for a narrower time)" if more else ""
        return ToolOutcome(
            f"free with {resource.name}: {_offer(shown, resource)}{tail}. To book one, pass "
            "its start exactly as in brackets",
            data,
        )

    async def book(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        resource = await self._resource(call, args["resource"])
        if isinstance(resource, ToolOutcome):
            return resource
        start = _parse_start(args["start"], resource)
        if start is None:
            return _not_a_time(args["start"])
        name, phone, reason = args["name"].strip(), args["phone"].strip(), args.get("reason", "")
        keyed = {"resource": resource.resource_id, "start": start.isoformat()}
        keyed |= {"name": name, "phone": phone, "reason": reason}
        result = await self.repo.book(
            call.tenant_id,
            resource.resource_id,
            start,
            name=name,
            phone=phone,
            reason=reason,
            now=self.now(),
            call_id=call.call_id,
            idempotency_key=idempotency_key(call, "calendar_book", keyed),
        )
        if isinstance(result, BookingConflict):
            return _conflict(result, resource, "booked")
        when = spoken(result.start, resource)
        if result.status is BookingStatus.CANCELLED:
            return ToolOutcome(
                f"not booked: this same booking ({result.id}) was cancelled earlier in this "
                "call; ask the caller for another time",
                _booking_data(result, resource),
            )
        return ToolOutcome(
            f"booked: {name} with {resource.name} on {when}; the reference is {result.id} "
            "(spell it out to the caller)",
            _booking_data(result, resource),
        )

    async def _booking(
        self, call: ToolCallContext, booking_id: str
    ) -> tuple[Booking, Resource] | ToolOutcome:
        booking = await self.repo.get(call.tenant_id, booking_id.strip().upper())
        resource = None
        if booking is not None:
            resource = await self.repo.get_resource(call.tenant_id, booking.resource_id)
        if booking is None or resource is None:
            return ToolOutcome(
                f"not done: there is no booking with reference {booking_id!r}; ask the "
                "caller to check it",
                {"error": "unknown_booking"},
            )
        return booking, resource

    async def cancel(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        found = await self._booking(call, args["booking_id"])
        if isinstance(found, ToolOutcome):
            return found
        booking, resource = found
        cancelled = await self.repo.cancel(call.tenant_id, booking.id)
        if cancelled is None:  # deleted in between
            return ToolOutcome("not done: that booking no longer exists", {"error": "gone"})
        return ToolOutcome(
            f"cancelled: the booking {booking.id} with {resource.name} on "
            f"{spoken(booking.start, resource)}",
            _booking_data(cancelled, resource),
        )

    async def reschedule(self, args: dict[str, Any], call: ToolCallContext) -> ToolOutcome:
        found = await self._booking(call, args["booking_id"])
        if isinstance(found, ToolOutcome):
            return found
        booking, resource = found
        start = _parse_start(args["start"], resource)
        if start is None:
            return _not_a_time(args["start"])
        result = await self.repo.reschedule(call.tenant_id, booking.id, start, now=self.now())
        if result is None:
            return ToolOutcome("not done: that booking no longer exists", {"error": "gone"})
        if isinstance(result, BookingConflict):
            outcome = _conflict(result, resource, "moved")
            if result.reason is ConflictReason.CANCELLED:
                return outcome
            stays = f"; the booking stays on {spoken(booking.start, resource)}"
            return ToolOutcome(outcome.content + stays, outcome.data)
        return ToolOutcome(
            f"moved: the booking {result.id} with {resource.name} is now on "
            f"{spoken(result.start, resource)}",
            _booking_data(result, resource),
        )


def calendar_tools(repo: CalendarRepository, *, now: Now = _utcnow) -> list[ToolDefinition]:
    """The four calendar tools over `repo`; `now` decides what is already past."""
    tools = _CalendarTools(repo, now)
    day = {"type": "string", "format": "date", "description": "one day, e.g. 2025-03-03"}
    when = {**_DATE_TIME, "description": "a start exactly as calendar_availability gave it"}
    personal = ("name", "phone", "reason")
    return [
        ToolDefinition(
            name="calendar_availability",
            description="Free appointment times of a calendar: on one day, or between "
            "from and to (ISO date-times); without either, the next 7 days.",
            parameters=_schema(
                {"resource": _RESOURCE, "day": day, "from": _DATE_TIME, "to": _DATE_TIME},
                ["resource"],
            ),
            handler=tools.availability,
        ),
        ToolDefinition(
            name="calendar_book",
            description="Book an appointment at a free start time, for the caller.",
            parameters=_schema(
                {
                    "resource": _RESOURCE,
                    "start": when,
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "phone": {"type": "string", "minLength": 3, "maxLength": 64},
                    "reason": {"type": "string", "maxLength": 500},
                },
                ["resource", "start", "name", "phone"],
            ),
            handler=tools.book,
            timeout_secs=8.0,
            sensitive=True,
            redact=personal,
        ),
        ToolDefinition(
            name="calendar_cancel",
            description="Cancel a booking by its reference.",
            parameters=_schema({"booking_id": _BOOKING_ID}, ["booking_id"]),
            handler=tools.cancel,
            timeout_secs=8.0,
            sensitive=True,
        ),
        ToolDefinition(
            name="calendar_reschedule",
            description="Move a booking, by its reference, to another free start time.",
            parameters=_schema({"booking_id": _BOOKING_ID, "start": when}, ["booking_id", "start"]),
            handler=tools.reschedule,
            timeout_secs=8.0,
            sensitive=True,
        ),
    ]


def register_calendar_tools(
    registry: ToolRegistry, repo: CalendarRepository, *, now: Now = _utcnow
) -> list[str]:
    """Register the calendar tools a registry lacks (an installation's own tool of the
    same name wins); return the names registered."""
    added = []
    for definition in calendar_tools(repo, now=now):
        if definition.name not in registry:
            registry.register(definition)
            added.append(definition.name)
    return added
