"""Daily revenue with known calendar effects, for `temporal_effects`; and geo histories for power.

One data set is two to three years of daily revenue of a retail brand:

    log y_t = log 15,000 + 0.08 * years_t + weekday_t + yearly cycle_t
              + log(1 + holiday lift) * [US federal holiday]_t + peak season_t + u_t,

with a Monday-referenced weekday pattern, a smooth yearly cycle (two harmonics), peak seasons
(Black Friday week +30 %, December +12 %, August back to school +3 %) and AR(1) log-noise
(phi 0.5, innovation sd 0.07: residual autocorrelation like the real mart's). The true effect
is given in outcome units, as `temporal_effects` reports it: on each affected day the
counterfactual is y / (1 + lift), so the truth is mean(y on those days) * lift / (1 + lift),
exact in the sample, and its coverage is the coverage of the relative lift.

Scenarios: "holiday_lift" (holidays +15 %), "weekend_dip" (Sunday -15 % against Monday) and
"black_friday_lift" (+30 % over Thanksgiving to Cyber Monday: one 5-day block a year, the
hardest to cover).

`simulate_geo_history` makes a unit x day panel with no test in it (unit levels, shared
weekday and yearly pattern, unit-specific AR(1) noise) for checking `power_analysis`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar

from cfap_orchestration.causal.simulation import Replication, Scenario
from cfap_orchestration.causal.temporal import temporal_effects

START = pd.Timestamp("2023-01-01")
BASE_REVENUE = 15_000.0
TREND_PER_YEAR = 0.08
AR_PHI = 0.5
INNOVATION_SD = 0.07
HOLIDAY_LIFT = 0.15
SUNDAY_DIP = -0.15
# log multipliers against Monday, Mon..Sun
WEEKDAY_LOG = (0.0, 0.03, 0.02, 0.03, 0.05, 0.04, math.log1p(SUNDAY_DIP))
PEAK_LIFT = {"black_friday_week": 0.30, "holiday_season": 0.12, "back_to_school": 0.03}


def daily_calendar(n_days: int, start: pd.Timestamp = START) -> pd.DataFrame:
    """Days with ISO weekday, US federal holidays and three peak seasons (a fresh copy)."""
    return _calendar(n_days, start).copy()


@functools.lru_cache(maxsize=8)
def _calendar(n_days: int, start: pd.Timestamp) -> pd.DataFrame:
    days = pd.date_range(start, periods=n_days, freq="D")
    holidays = USFederalHolidayCalendar().holidays(days[0], days[-1])
    frame = pd.DataFrame({"date_day": days, "day_of_week": days.dayofweek + 1})
    frame["is_holiday"] = days.isin(holidays)
    frame["peak_season"] = _peak_seasons(days)
    return frame


def _peak_seasons(days: pd.DatetimeIndex) -> np.ndarray:
    labels = np.full(len(days), None, dtype=object)
    labels[(days.month == 8)] = "back_to_school"
    labels[(days.month == 12) & (days.day <= 23)] = "holiday_season"
    # Thanksgiving (4th Thursday of November) through Cyber Monday
    is_thanksgiving = (days.month == 11) & (days.dayofweek == 3) & (days.day >= 22)
    is_thanksgiving &= days.day <= 28
    for t in days[is_thanksgiving]:
        labels[(days >= t) & (days <= t + pd.Timedelta(days=4))] = "black_friday_week"
    return labels


def simulate_daily(
    rng: np.random.Generator,
    n_days: int,
    *,
    holiday_lift: float = HOLIDAY_LIFT,
    weekday_log: tuple[float, ...] = WEEKDAY_LOG,
) -> pd.DataFrame:
    """One daily revenue series on `daily_calendar(n_days)` (see the module docstring)."""
    frame = daily_calendar(n_days)
    years = np.arange(n_days) / 365.25
    phase = 2 * np.pi * (frame["date_day"].dt.dayofyear.to_numpy() - 1) / 365.25
    yearly = 0.06 * np.sin(phase) - 0.04 * np.cos(phase) + 0.03 * np.sin(2 * phase)
    peak = frame["peak_season"].map(lambda p: math.log1p(PEAK_LIFT[p]) if p else 0.0)
    log_y = (
        math.log(BASE_REVENUE)
        + TREND_PER_YEAR * years
        + np.asarray(weekday_log)[frame["day_of_week"].to_numpy() - 1]
        + yearly
        + math.log1p(holiday_lift) * frame["is_holiday"].to_numpy()
        + peak.to_numpy(dtype=float)
        + ar1(rng, n_days, AR_PHI, INNOVATION_SD)
    )
    frame["revenue"] = np.exp(log_y)
    return frame


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) series (first draw from the stationary distribution)."""
    shocks = rng.normal(0.0, sd, n)
    out = np.empty(n)
    out[0] = shocks[0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + shocks[t]
    return out


def _n_days(scale: str) -> int:
    if scale not in ("full", "fast"):
        raise ValueError(f"scale must be 'full' or 'fast', got {scale!r}")
    return 3 * 365 + 1 if scale == "full" else 2 * 365 + 1


def _replicate(frame: pd.DataFrame, key: str, lift: float, mask: np.ndarray) -> Replication:
    result = temporal_effects(frame)
    truth = float(frame.loc[mask, "revenue"].mean()) * lift / (1 + lift)
    return Replication(estimate=result.estimates()[key], truth=truth)


def holiday_lift(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Holidays lift revenue by 15 %; the effect is revenue per holiday from the holiday."""
    frame = simulate_daily(rng, _n_days(scale))
    return _replicate(frame, "holiday:holiday", HOLIDAY_LIFT, frame["is_holiday"].to_numpy())


def weekend_dip(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Sundays sell 15 % less than Mondays; the effect is revenue per Sunday lost to that."""
    frame = simulate_daily(rng, _n_days(scale))
    sundays = frame["day_of_week"].to_numpy() == 7
    return _replicate(frame, "day_of_week:Sun", SUNDAY_DIP, sundays)


def black_friday_lift(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Black Friday week sells 30 % more; one block of 5 days a year, the hard case."""
    frame = simulate_daily(rng, _n_days(scale))
    days = (frame["peak_season"] == "black_friday_week").to_numpy()
    lift = PEAK_LIFT["black_friday_week"]
    return _replicate(frame, "peak_season:black_friday_week", lift, days)


SCENARIOS: dict[str, Scenario] = {
    "holiday_lift": holiday_lift,
    "weekend_dip": weekend_dip,
    "black_friday_lift": black_friday_lift,
}


def simulate_geo_history(
    rng: np.random.Generator,
    *,
    n_units: int = 20,
    n_days: int = 365,
    phi: float = 0.3,
    noise_sd: float = 0.10,
) -> pd.DataFrame:
    """A geo x day revenue panel with no test in it: long format (geo_id, date_day, revenue).

    Each geo has its own level (log-normal around 2,000 a day) and AR(1) log-noise; all share
    a weekday pattern and the yearly cycle, which difference-in-differences removes.
    """
    calendar = daily_calendar(n_days)
    phase = 2 * np.pi * (calendar["date_day"].dt.dayofyear.to_numpy() - 1) / 365.25
    shared = 0.1 * np.sin(phase) + np.asarray(WEEKDAY_LOG)[calendar["day_of_week"] - 1]
    levels = np.log(2_000.0) + rng.normal(0.0, 0.5, n_units)
    noise = np.stack([ar1(rng, n_days, phi, noise_sd) for _ in range(n_units)])
    log_y = levels[:, None] + shared[None, :] + noise
    return pd.DataFrame(
        {
            "geo_id": np.repeat([f"G{i:02d}" for i in range(n_units)], n_days),
            "date_day": np.tile(calendar["date_day"].to_numpy(), n_units),
            "revenue": np.exp(log_y).ravel(),
        }
    )
