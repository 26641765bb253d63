"""Timestamps as ISO-8601 UTC strings (identical text on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now_iso(offset_s: float = 0.0) -> str:
    """The current UTC time (plus ``offset_s`` seconds) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
