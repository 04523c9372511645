"""Public holidays of the brand's markets, from the `holidays` library. No Dagster imports."""

from __future__ import annotations

from collections.abc import Iterable

import holidays
import pandas as pd

HOLIDAY_COLUMNS = ("holiday_date", "country_code", "holiday_name")


def public_holidays(countries: Iterable[str], years: Iterable[int]) -> pd.DataFrame:
    """One row per country and holiday date; same-day holidays share one name ("A; B")."""
    year_list = list(years)
    rows: list[tuple[object, str, str]] = []
    for country in countries:
        try:
            calendar = holidays.country_holidays(country, years=year_list)
        except NotImplementedError:
            raise ValueError(
                f"the holidays library has no calendar for country code {country!r}"
            ) from None
        rows.extend((day, country, name) for day, name in sorted(calendar.items()))
    return pd.DataFrame(rows, columns=list(HOLIDAY_COLUMNS))
