"""Difference-in-differences scenarios with a known ATT (see the package docstring).

* ``textbook_2x2``: repeated cross-sections, two groups x two periods, many rows per cell,
  iid normal noise; the textbook 2x2 regression with classical SEs.
* ``geo_panel_many_clusters``: 40 geos (20 treated at random), 56 pre + 28 post days;
  geo levels, common day effects (trend + weekly seasonality), AR(1) errors within geo,
  geo-specific constant effects ~ N(30, 5); TWFE clustered by geo (CR1). The truth is the
  expected effect, 30: CR1 treats the treated geos as a sample, so its interval covers the
  mean of the effect distribution (against the realized geos' mean it would over-cover).
* ``sandbox_geo_holdout``: like the sandbox's geo holdouts: 12 geos of unequal size (the
  sandbox's region weights), 3 treated at random, 56 pre + 42 post days from early August;
  orders ~ Poisson(national level x share x weekly x yearly seasonality x geo AR(1)
  shock), revenue compound Poisson-gamma; the treatment removes a known share of the treated
  geos' expected revenue (negative effect). TWFE on revenue per geo-day, CR1 by geo.
* ``sandbox_geo_holdout_randomization``: the same data (same seed -> same draw), inference
  by permuting which geos are treated (studentized randomization test).
* ``sandbox_geo_holdout_scaled``: the same data, DID on revenue over each geo's pre-period
  mean (``scale_by_pre_mean=True``), CR1 by geo; ``..._scaled_randomization``: the same with
  randomization inference, the combination to use for sandbox-like holdouts.

Why scaling matters here: with multiplicative seasonality and geos of unequal size, the level
DID is unbiased only on average over random assignments. For one fixed design the seasonal
change between the pre and post windows times the treated-control size gap is read as effect:
with CA, NY and WA treated (the sandbox's 2025 Meta holdout, large geos) the level DID is off
by about -43% of the effect, with the three small EU geos treated by about +96% (150
replications each); the scaled DID stays within ~2%.

The truth of the sandbox scenarios is the ATT of the realized treated geos: the mean over
their post-period days of the expected outcome with treatment minus without it.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd

from cfap_orchestration.causal.did import difference_in_differences
from cfap_orchestration.causal.simulation import Replication, Scenario

# The sandbox's region weights (catalog.py): nine US regions and three EU ones.
SANDBOX_GEO_WEIGHTS = (0.18, 0.13, 0.11, 0.10, 0.07, 0.06, 0.06, 0.05, 0.05, 0.05, 0.04, 0.05)
GEO_PANEL_EFFECT = 30.0  # mean of the geo-specific effects (outcome units per geo-day)
WEEKLY = (0.97, 0.98, 1.0, 1.0, 1.03, 1.06, 0.96)  # Monday first, as in the sandbox


def _full(scale: str) -> bool:
    if scale not in ("full", "fast"):
        raise ValueError(f"scale must be 'full' or 'fast', got {scale!r}")
    return scale == "full"


def _ar1(rng: np.random.Generator, n_units: int, n_days: int, rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) paths (units x days) with marginal standard deviation `sd`."""
    shocks = rng.normal(0.0, sd * math.sqrt(1 - rho**2), (n_units, n_days))
    out = np.empty((n_units, n_days))
    out[:, 0] = rng.normal(0.0, sd, n_units)
    for t in range(1, n_days):
        out[:, t] = rho * out[:, t - 1] + shocks[:, t]
    return out


def _long(values: np.ndarray, treated_units: np.ndarray, n_pre: int) -> pd.DataFrame:
    """Units x days matrix to a long geo-day frame with treated/post flags."""
    n_units, n_days = values.shape
    geo = np.repeat(np.arange(n_units), n_days)
    day = np.tile(np.arange(n_days), n_units)
    return pd.DataFrame(
        {
            "geo": [f"geo_{g:02d}" for g in geo],
            "day": day,
            "treated": np.isin(geo, treated_units).astype(int),
            "post": (day >= n_pre).astype(int),
            "y": values.ravel(),
        }
    )


def textbook_2x2(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Fresh individuals in each group and period (repeated cross-sections), iid noise."""
    per_cell = 250 if _full(scale) else 100
    effect = 2.0
    group = np.repeat([0, 0, 1, 1], per_cell)
    period = np.repeat([0, 1, 0, 1], per_cell)
    y = 10 + 1.5 * group + 0.8 * period + effect * group * period + rng.normal(0, 2, 4 * per_cell)
    df = pd.DataFrame({"group": group, "period": period, "y": y})
    estimate = difference_in_differences(
        df, outcome="y", unit="group", time="period", treated="group", post="period"
    )
    return Replication(estimate, effect)


def geo_panel_many_clusters(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Additive geo panel: levels + common day effects + AR(1) noise + geo-specific effects."""
    full = _full(scale)
    n_geos, n_pre, n_post = (40, 56, 28) if full else (20, 28, 14)
    n_days = n_pre + n_post
    treated_units = rng.choice(n_geos, n_geos // 2, replace=False)
    level = rng.lognormal(math.log(1_000), 0.4, n_geos)
    days = np.arange(n_days)
    weekly = np.array([WEEKLY[d % 7] for d in days])
    day_effect = 2.0 * days + 600 * (weekly - 1) + rng.normal(0, 20, n_days)
    noise = _ar1(rng, n_geos, n_days, rho=0.6, sd=20)
    geo_effect = rng.normal(GEO_PANEL_EFFECT, 5, n_geos)
    is_treated = np.isin(np.arange(n_geos), treated_units)
    lift = np.outer(geo_effect * is_treated, days >= n_pre)
    values = level[:, None] + day_effect[None, :] + noise + lift
    df = _long(values, treated_units, n_pre)
    estimate = difference_in_differences(
        df, outcome="y", unit="geo", time="day", treated="treated", post="post", cluster="geo"
    )
    return Replication(estimate, GEO_PANEL_EFFECT)


def _sandbox_panel(
    rng: np.random.Generator, scale: str, treated_geos: tuple[int, ...] | None = None
) -> tuple[pd.DataFrame, float]:
    """One sandbox-like geo panel and its ATT; `treated_geos` fixes the design (else random)."""
    full = _full(scale)
    n_pre, n_post = (56, 42) if full else (28, 21)
    national_orders, order_value, value_shape = 2_000.0, 85.0, 2.0
    removed_share = 0.08  # share of the treated geos' expected revenue the treatment removes
    shares = np.array(SANDBOX_GEO_WEIGHTS) / sum(SANDBOX_GEO_WEIGHTS)
    n_geos = shares.size
    start = date(2025, 8, 4)  # a Monday, as the sandbox's Meta holdout
    days = [start + timedelta(days=k - n_pre) for k in range(n_pre + n_post)]
    season = np.array([WEEKLY[d.weekday()] * _yearly(d) for d in days])
    trend = 1 + 0.12 * np.arange(len(days)) / 365.25
    shock = np.exp(_ar1(rng, n_geos, len(days), rho=0.5, sd=0.05))
    expected = national_orders * shares[:, None] * (season * trend)[None, :] * shock
    treated_units = (
        rng.choice(n_geos, 3, replace=False) if treated_geos is None else np.array(treated_geos)
    )
    is_treated = np.isin(np.arange(n_geos), treated_units)
    is_treated_post = np.outer(is_treated, np.arange(len(days)) >= n_pre)
    lam = expected * np.where(is_treated_post, 1 - removed_share, 1.0)
    orders = rng.poisson(lam)
    revenue = rng.gamma(np.maximum(orders, 1) * value_shape, order_value / value_shape)
    revenue = np.where(orders > 0, revenue, 0.0)
    truth = -removed_share * order_value * float(expected[is_treated_post].mean())
    return _long(revenue, treated_units, n_pre), truth


def _yearly(day: date) -> float:
    doy = day.timetuple().tm_yday
    return (
        1
        + 0.10 * math.sin(2 * math.pi * (doy - 80) / 365.25)
        + 0.05 * math.cos(4 * math.pi * doy / 365.25)
    )


def sandbox_geo_holdout(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Sandbox-like geo holdout, TWFE with CR1 by geo (3 treated clusters of 12)."""
    df, truth = _sandbox_panel(rng, scale)
    estimate = difference_in_differences(
        df, outcome="y", unit="geo", time="day", treated="treated", post="post", cluster="geo"
    )
    return Replication(estimate, truth)


def sandbox_geo_holdout_randomization(
    rng: np.random.Generator, *, scale: str = "full"
) -> Replication:
    """The same sandbox-like data, inference by permuting the treated geos (220 ways)."""
    df, truth = _sandbox_panel(rng, scale)
    estimate = difference_in_differences(
        df,
        outcome="y",
        unit="geo",
        time="day",
        treated="treated",
        post="post",
        cluster="geo",
        inference="randomization",
    )
    return Replication(estimate, truth)


def sandbox_geo_holdout_scaled(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """The same sandbox-like data, DID on revenue / geo pre-period mean, CR1 by geo."""
    df, truth = _sandbox_panel(rng, scale)
    estimate = difference_in_differences(
        df,
        outcome="y",
        unit="geo",
        time="day",
        treated="treated",
        post="post",
        cluster="geo",
        scale_by_pre_mean=True,
    )
    return Replication(estimate, truth)


def sandbox_geo_holdout_scaled_randomization(
    rng: np.random.Generator, *, scale: str = "full"
) -> Replication:
    """The same sandbox-like data, scaled by geo pre-period means, randomization inference."""
    df, truth = _sandbox_panel(rng, scale)
    estimate = difference_in_differences(
        df,
        outcome="y",
        unit="geo",
        time="day",
        treated="treated",
        post="post",
        cluster="geo",
        scale_by_pre_mean=True,
        inference="randomization",
    )
    return Replication(estimate, truth)


SCENARIOS: dict[str, Scenario] = {
    "textbook_2x2": textbook_2x2,
    "geo_panel_many_clusters": geo_panel_many_clusters,
    "sandbox_geo_holdout": sandbox_geo_holdout,
    "sandbox_geo_holdout_randomization": sandbox_geo_holdout_randomization,
    "sandbox_geo_holdout_scaled": sandbox_geo_holdout_scaled,
    "sandbox_geo_holdout_scaled_randomization": sandbox_geo_holdout_scaled_randomization,
}
