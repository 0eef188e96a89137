"""Opening hours to slots: pure functions, no database.

A resource's slots are laid out in its own time zone, from each interval's opening
time in steps of `slot_minutes`, so "09:00-17:00" in America/New_York means nine in
the morning there in winter and in summer alike. Local times that do not exist (the
hour skipped when clocks go forward) give no slot; slots are returned in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")

Hours = dict[str, list[tuple[time, time]]]


class CalendarDefinitionError(ValueError):
    """A resource defined wrongly: unknown time zone, bad hours, capacity below 1."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; an unknown name is a definition error, not a KeyError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarDefinitionError(f"unknown time zone {name!r}; use an IANA name") from None


def _clock(value: Any, where: str) -> time:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise CalendarDefinitionError(f"{where}: {value!r} is not a time like '09:00'")
    return time(int(match.group(1)), int(match.group(2)))


def parse_hours(hours: Mapping[str, Any]) -> Hours:
    """Validate `{"mon": [["09:00", "17:00"], ...], ...}`: known weekdays, HH:MM times,
    each interval opening before it closes, intervals of a day not overlapping."""
    parsed: Hours = {}
    for day, intervals in hours.items():
        if day not in WEEKDAYS:
            raise CalendarDefinitionError(f"hours: {day!r} is not one of {list(WEEKDAYS)}")
        if not isinstance(intervals, Sequence) or isinstance(intervals, str):
            raise CalendarDefinitionError(f"hours.{day}: expected a list of [open, close]")
        spans: list[tuple[time, time]] = []
        for i, interval in enumerate(intervals):
            where = f"hours.{day}[{i}]"
            if (
                not isinstance(interval, Sequence)
                or isinstance(interval, str)
                or len(interval) != 2
            ):
                raise CalendarDefinitionError(f"{where}: expected [open, close]")
            opens, closes = _clock(interval[0], where), _clock(interval[1], where)
            if closes <= opens:
                raise CalendarDefinitionError(f"{where}: closes before it opens")
            spans.append((opens, closes))
        spans.sort()
        for (_, closes), (opens, _) in pairwise(spans):
            if opens < closes:
                raise CalendarDefinitionError(f"hours.{day}: intervals overlap")
        parsed[day] = spans
    return parsed


def hours_json(hours: Hours) -> dict[str, list[list[str]]]:
    """The stored form: weekdays in order, times as "HH:MM"."""
    return {
        day: [[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in hours[day]]
        for day in WEEKDAYS
        if day in hours
    }


def _local(day: date, at: time, tz: ZoneInfo) -> datetime | None:
    """`day at` on the wall clock of `tz`, in UTC; None when that time does not exist."""
    naive = datetime.combine(day, at)
    utc = naive.replace(tzinfo=tz).astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != naive:
        return None  # skipped when the clocks went forward
    return utc


def slots_between(
    hours: Hours, tz: ZoneInfo, slot_minutes: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC of every slot starting in [start, end), in time order."""
    step = timedelta(minutes=slot_minutes)
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    out: list[tuple[datetime, datetime]] = []
    while day <= last:
        for opens, closes in hours.get(WEEKDAYS[day.weekday()], ()):
            at = datetime.combine(day, opens)
            close = datetime.combine(day, closes)
            while at + step <= close:
                begin = _local(day, at.time(), tz)
                finish = (at + step).replace(tzinfo=tz).astimezone(UTC)
                if begin is not None and start <= begin < end and finish > begin:
                    out.append((begin, finish))
                at += step
        day += timedelta(days=1)
    return out


def slot_at(
    hours: Hours, tz: ZoneInfo, slot_minutes: int, start: datetime
) -> tuple[datetime, datetime] | None:
    """The slot that starts exactly at `start`, or None (closed, or off the grid)."""
    found = slots_between(hours, tz, slot_minutes, start, start + timedelta(microseconds=1))
    return found[0] if found and found[0][0] == start else None
