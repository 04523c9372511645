"""Calendar effects on daily revenue: weekday, holiday and peak-season lifts, and the trend."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd

from cfap_orchestration.causal.temporal import TemporalEffects, temporal_effects
from cfap_orchestration.studies.results import StudyRow
from cfap_orchestration.warehouse import Warehouse

CALENDAR_COLUMNS = ("date_day", "revenue", "orders", "day_of_week", "is_holiday", "peak_season")


def load_calendar(
    warehouse: Warehouse, *, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """The calendar mart's days in [start, end] (either bound optional)."""
    relation = warehouse.relation("marts", "fct_marketing_calendar_daily")
    frame = warehouse.query(
        f"SELECT {', '.join(CALENDAR_COLUMNS)} FROM {relation} "
        "WHERE date_day >= coalesce(?, date_day) AND date_day <= coalesce(?, date_day) "
        "ORDER BY 1",
        [start, end],
    )
    if frame.empty:
        raise ValueError(
            f"marts.fct_marketing_calendar_daily has no days between {start or 'the first day'} "
            f"and {end or 'the last day'}: nothing to model"
        )
    return frame


def calendar_effects(
    calendar: pd.DataFrame, *, outcome: str, alpha: float
) -> tuple[TemporalEffects, list[StudyRow]]:
    """The effects, and one row per effect (outcome units per affected day)."""
    fit = temporal_effects(calendar, outcome=outcome, date="date_day", alpha=alpha)
    rows = [
        StudyRow(
            subject=key,
            metric=outcome,
            estimate=replace(
                estimate,
                details={
                    **estimate.details,
                    **_span(calendar),
                    "ar_coefficients": fit.diagnostics.get("ar_coefficients", []),
                },
            ),
        )
        for key, estimate in fit.estimates().items()
    ]
    return fit, rows


def _span(calendar: pd.DataFrame) -> dict[str, str]:
    days = pd.to_datetime(calendar["date_day"])
    first: date = days.min().date()
    last: date = days.max().date()
    return {"first_day": first.isoformat(), "last_day": last.isoformat()}
