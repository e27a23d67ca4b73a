"""ISO 8601 dates, the one parser for records, filters and the API (pure).

A date (2015-01-24) or a date-time (2015-01-24T10:30:00, with an optional
offset or Z). Values are compared as naive UTC datetimes, the way Whoosh's
DATETIME field stores them: an offset is converted to UTC and dropped, a
value without one is taken as UTC.
"""

from datetime import date, datetime, time, timezone
from typing import Optional


class DateError(ValueError):
    """Not an ISO 8601 date; the message shows an example."""


def parse_date(value, *, end_of_day: bool = False) -> Optional[datetime]:
    """The naive-UTC datetime of `value`; None for None or "".

    A bare date means its first instant, or its last one with `end_of_day`
    (so a filter date_to=2015-01-24 includes that whole day).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DateError(f"date must be an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        if len(text) <= 10:
            return datetime.combine(date.fromisoformat(text), time.max if end_of_day else time.min)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DateError(f"bad date {value!r}: expected ISO 8601 such as 2015-01-24") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed
