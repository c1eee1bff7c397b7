"""Days left of a GDAP relationship: calendar days (UTC) from today to its end date, the same in
`cspgraph gdap status` and the report (a relationship ending on the 22nd has 15 days left on the
7th, whatever the hour; one ending today has 0)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cspgraph.fleet.report import gdap_days_left
from cspgraph.fleet.summaries import CustomerSummary
from cspgraph.gdap.calendar import days_between

NOW = datetime(2026, 12, 7, 9, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("end", "left"),
    [
        (datetime(2026, 12, 22, 0, 0, tzinfo=UTC), 15),  # Zava: 14.6 days away, 15 on a calendar
        (datetime(2026, 12, 22, 23, 59, tzinfo=UTC), 15),
        (datetime(2026, 12, 7, 0, 30, tzinfo=UTC), 0),  # Woodgrove: ended today, not -1
        (datetime(2026, 12, 6, 23, 0, tzinfo=UTC), -1),
    ],
)
def test_status_and_report_count_the_same_calendar_days(end: datetime, left: int) -> None:
    assert days_between(NOW, end) == left
    summary = CustomerSummary(
        "t", "Customer", None, None, None, None, None, None, None, gdap_known=True,
        gdap_relationship="r", gdap_status="active", gdap_end=end,
    )  # fmt: skip
    assert gdap_days_left(summary, NOW) == left
