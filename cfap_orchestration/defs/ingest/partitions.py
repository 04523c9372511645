"""Daily partitions for the raw extracts, and the pure date arithmetic around them."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from cfap_orchestration.settings import get_settings


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """One partition per calendar day from CFAP_START_DATE through yesterday."""
    return dg.DailyPartitionsDefinition(start_date=get_settings().start_date.isoformat())


def window_dates(start: datetime, end: datetime) -> list[date]:
    """Days in a partition time window [start, end)."""
    first, stop = start.date(), end.date()
    return [first + timedelta(days=i) for i in range((stop - first).days)]


def restatement_dates(dates: list[date], lookback_days: int, earliest: date) -> list[date]:
    """`dates` extended back by `lookback_days`, never before the first partition."""
    if not dates:
        raise ValueError("no partition dates to restate")
    first = max(earliest, dates[0] - timedelta(days=lookback_days))
    return [first + timedelta(days=i) for i in range((dates[-1] - first).days + 1)]
