"""Data-generating processes with a known effect for :func:`synthetic_control`.

Scenarios
    ``factor_model``: the classic linear factor model of Abadie, Diamond & Hainmueller (2010):
    Y_it(0) = alpha_i + delta_t + lambda_i' F_t + eps_it with three AR(1) factors; the treated
    unit's loadings and level are a convex combination of four donors' (so a perfect synthetic
    control exists), 18 donors, 60 pre + 20 post periods, a constant effect of +1.5 (noise
    sd 1).

    ``sandbox_geo_holdout``: like the sandbox's geo holdout test. 12 regions of unequal size
    (the sandbox's shares of nine US and three EU regions); expected daily orders = national
    level x share x the sandbox's weekly pattern x a regional yearly seasonality (amplitude
    U(0.07, 0.13), phase N(0, 7) days: the sandbox itself uses one national curve) x a
    regional AR(1) demand shock (sd 2%). Orders are Poisson and each order's value Gamma, so
    revenue is compound Poisson; the national level is 1,500 orders a day (the sandbox's
    default of 120 would leave a 6% effect far below the noise). Three of the nine US regions
    are held out from ads for 42 days after 56 pre-period days, starting on a Monday in
    August as the sandbox's Meta test; switching ads off removes 6% of their revenue, ramping
    in with a geometric adstock (decay 0.5). The treated unit is the mean revenue of the three
    holdouts; it and every donor are divided by their own pre-period mean (index, 1.0 =
    pre-period level). The truth is the expected post-period mean drop of the treated index
    given the simulated demand path (about -0.053). :func:`geo_holdout` exposes the knobs
    (seasonal heterogeneity, adstock, ``demean``) for sensitivity runs.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from cfap_orchestration.causal.simulation import Replication, Scenario
from cfap_orchestration.causal.synthetic_control import synthetic_control

# Shares of the sandbox's first nine US regions and three EU regions (renormalised).
_US_SHARES = np.array([0.18, 0.13, 0.11, 0.10, 0.07, 0.06, 0.06, 0.05, 0.05])
_EU_SHARES = np.array([0.05, 0.04, 0.05])
_WEEKLY = np.array([0.97, 0.98, 1.0, 1.0, 1.03, 1.06, 0.96])  # Monday first, as the sandbox


def _long_panel(outcomes: np.ndarray, units: list[str], times: pd.Index) -> pd.DataFrame:
    """(T, units) matrix -> long frame with columns unit, time, y."""
    return pd.DataFrame(
        {
            "unit": np.repeat(units, len(times)),
            "time": np.tile(np.asarray(times), len(units)),
            "y": outcomes.T.ravel(),
        }
    )


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float, sd: float) -> np.ndarray:
    """k stationary AR(1) series of length n with marginal standard deviation `sd`."""
    out = np.empty((n, k))
    out[0] = rng.normal(0.0, sd, k)
    innovation_sd = sd * np.sqrt(1 - phi**2)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + rng.normal(0.0, innovation_sd, k)
    return out


def factor_model(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    n_donors, n_pre, n_post = (18, 60, 20) if scale == "full" else (12, 40, 12)
    effect, n_factors = 1.5, 3
    n_periods = n_pre + n_post
    factors = _ar1(rng, n_periods, n_factors, phi=0.7, sd=2.0)
    delta = 0.05 * np.arange(n_periods) + rng.normal(0.0, 1.0, n_periods)
    loadings = rng.uniform(0.0, 1.0, (n_donors, n_factors))
    levels = rng.normal(10.0, 2.0, n_donors)
    combo = np.zeros(n_donors)
    combo[rng.choice(n_donors, size=4, replace=False)] = rng.dirichlet(np.ones(4))
    loadings = np.vstack([combo @ loadings, loadings])
    levels = np.append(combo @ levels, levels)
    y0 = (
        levels
        + delta[:, None]
        + factors @ loadings.T
        + rng.normal(0.0, 1.0, (n_periods, 1 + n_donors))
    )
    y = y0.copy()
    y[n_pre:, 0] += effect
    units = ["treated"] + [f"donor_{j:02d}" for j in range(n_donors)]
    df = _long_panel(y, units, pd.RangeIndex(n_periods))
    estimate = synthetic_control(
        df, outcome="y", unit="unit", time="time", treated_unit="treated", treatment_start=n_pre
    )
    return Replication(estimate=estimate, truth=effect)


def _yearly(doy: np.ndarray, amplitude: float, phase: float) -> np.ndarray:
    return (
        1
        + amplitude * np.sin(2 * np.pi * (doy - 80 - phase) / 365.25)
        + 0.05 * np.cos(4 * np.pi * doy / 365.25)
    )


def sandbox_geo_holdout(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    n_pre, n_post = (56, 42) if scale == "full" else (35, 21)
    return geo_holdout(rng, n_pre=n_pre, n_post=n_post)


def geo_holdout(
    rng: np.random.Generator,
    *,
    n_pre: int,
    n_post: int,
    amplitude: tuple[float, float] = (0.07, 0.13),
    phase_sd: float = 7.0,
    eu_phase_shift: float = 0.0,
    adstock_decay: float = 0.5,
    demean: bool = False,
) -> Replication:
    """The geo holdout DGP with its knobs: regional yearly amplitudes ~ U(amplitude), phases
    ~ N(0, phase_sd) days (EU regions shifted by `eu_phase_shift` days)."""
    shares = np.concatenate([_US_SHARES, _EU_SHARES])
    shares /= shares.sum()
    n_us = _US_SHARES.size
    national_orders, order_value, order_shape, lift = 1500.0, 80.0, 2.0, 0.06

    start = date(2024, 8, 5)  # a Monday, as the sandbox's Meta holdout
    days = pd.Index([start + timedelta(days=d) for d in range(-n_pre, n_post)])
    doy = np.array([d.timetuple().tm_yday for d in days], dtype=float)
    weekly = _WEEKLY[[d.weekday() for d in days]]
    amplitudes = rng.uniform(*amplitude, shares.size)
    phases = rng.normal(0.0, phase_sd, shares.size) + np.where(
        np.arange(shares.size) >= n_us, eu_phase_shift, 0.0
    )
    yearly = np.column_stack([_yearly(doy, a, p) for a, p in zip(amplitudes, phases, strict=True)])
    shock = 1 + _ar1(rng, days.size, shares.size, phi=0.7, sd=0.02)
    expected = national_orders * shares * weekly[:, None] * yearly * shock

    holdout = rng.choice(n_us, size=n_us // 3, replace=False)
    post = np.arange(days.size) >= n_pre
    days_in = np.maximum(np.arange(days.size) - n_pre + 1, 0)
    ramp = np.where(post, 1 - adstock_decay**days_in, 0.0)
    treated_expected = expected.copy()
    treated_expected[:, holdout] *= (1 - lift * ramp)[:, None]

    orders = rng.poisson(treated_expected)
    # Each order's value is Gamma(order_shape, order_value / order_shape): sums stay Gamma.
    revenue = rng.gamma(np.maximum(orders, 1) * order_shape, order_value / order_shape)
    revenue = np.where(orders > 0, revenue, 0.0)

    treated = revenue[:, holdout].mean(axis=1)
    norm = treated[~post].mean()
    donor_idx = np.setdiff1d(np.arange(shares.size), holdout)
    donors = revenue[:, donor_idx] / revenue[~post][:, donor_idx].mean(axis=0)
    outcomes = np.column_stack([treated / norm, donors])
    units = ["holdout"] + [f"region_{i:02d}" for i in donor_idx]
    df = _long_panel(outcomes, units, days)

    drop = order_value * (expected[:, holdout] - treated_expected[:, holdout]).mean(axis=1)
    truth = -float(drop[post].mean() / norm)
    estimate = synthetic_control(
        df,
        outcome="y",
        unit="unit",
        time="time",
        treated_unit="holdout",
        treatment_start=start,
        demean=demean,
    )
    return Replication(estimate=estimate, truth=truth)


SCENARIOS: dict[str, Scenario] = {
    "factor_model": factor_model,
    "sandbox_geo_holdout": sandbox_geo_holdout,
}
