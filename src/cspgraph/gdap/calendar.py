"""How GDAP's dates are counted, in one place for `cspgraph gdap status` and the report."""

from __future__ import annotations

from datetime import UTC, datetime


def days_between(now: datetime, then: datetime) -> int:
    """Calendar days (UTC) from ``now``'s date to ``then``'s (negative when past): a
    relationship ending on the 22nd has 15 days left on the 7th, whatever the hour, and 0 on the
    day it ends — what a person counting on a calendar expects."""
    return (then.astimezone(UTC).date() - now.astimezone(UTC).date()).days
