"""Timestamps in the one wire format: RFC 3339 UTC, milliseconds, `Z` suffix.

Stored as the same fixed-width strings, so they sort and compare as text in every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def format_ts(moment: datetime) -> str:
    """Render an aware or naive-UTC datetime as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_ts() -> str:
    """The current time in wire format."""
    return format_ts(datetime.now(UTC))


def parse_ts(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (any offset, or none = UTC) to an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def ts_after(seconds: float) -> str:
    """Wire-format time `seconds` from now."""
    return format_ts(datetime.now(UTC) + timedelta(seconds=seconds))
