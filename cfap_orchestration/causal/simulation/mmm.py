"""Media-mix model scenarios with a known ROAS (see the package docstring).

Three years of weekly data (80 weeks at ``scale="fast"``) from the model's own family, so
that coverage measures the inference and not a misspecification: revenue = a baseline
(level, linear trend, one yearly harmonic, a lift in peak weeks) + two channels, each
``beta * logistic(lam * adstock(spend) / max spend)`` with geometric adstock over six
weeks, + Normal noise (3% of the level). Spend flights on and off, carries weekly noise,
and rises 40% in peak weeks, as budgets do: the peak indicator is a control the model gets.

``search_roas``: the smaller channel's ROAS (its contribution summed over the weeks over its
spend), from the data alone. ``search_roas_calibrated``: the same with one lift test of the
channel: a holdout of its whole curve at the mean spend, read out with a 40% standard error
and Normal noise of that size, as a month-long geo test of a small channel is.

The estimate is the posterior mean with the 94% HDI as its interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.causal.mmm import fit_mmm, logistic_saturation
from cfap_orchestration.causal.simulation import Replication, Scenario

LAG = 6
LEVEL = 100_000.0
CHANNELS = {
    # channel: (weekly spend, adstock alpha, lam, ceiling per week)
    "social": (10_000.0, 0.4, 1.6, 40_000.0),
    "search": (5_000.0, 0.2, 1.2, 14_000.0),
}
LIFT_TEST_SE = 0.4
SETTINGS = {"full": (156, 500), "fast": (80, 150)}  # weeks, draws (= tune) per chain


def _adstock(x: np.ndarray, alpha: float) -> np.ndarray:
    weights = alpha ** np.arange(LAG)
    return np.convolve(x, weights / weights.sum())[: len(x)]


def _simulate(rng: np.random.Generator, weeks: int) -> tuple[pd.DataFrame, dict[str, float]]:
    t = np.arange(weeks)
    peak = ((t % 52) >= 46) & ((t % 52) <= 50)  # late November to December
    frame = pd.DataFrame(
        {"week": pd.date_range("2023-01-02", periods=weeks, freq="7D"), "trend": t / 52.0}
    )
    frame["peak"] = peak.astype(float)
    revenue = LEVEL * (1 + 0.08 * t / 52 + 0.06 * np.sin(2 * np.pi * t / 52.18) + 0.15 * peak)
    roas = {}
    for name, (weekly, alpha, _, _) in CHANNELS.items():
        flights = np.where(rng.random(weeks) < 0.15, 0.3, 1.0)
        spend = weekly * (1 + 0.4 * peak) * flights * rng.lognormal(-0.045, 0.3, weeks)
        contribution = _curve(name, _adstock(spend, alpha), spend.max())
        frame[name] = spend
        revenue = revenue + contribution
        roas[name] = float(contribution.sum() / spend.sum())
    frame["revenue"] = revenue + rng.normal(0.0, 0.03 * LEVEL, weeks)
    return frame, roas


def _curve(name: str, spend: np.ndarray, max_spend: float) -> np.ndarray:
    _, _, lam, ceiling = CHANNELS[name]
    return ceiling * logistic_saturation(lam * spend / max_spend)


def _search_lift_test(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    x = float(frame["search"].mean())
    loss = float(_curve("search", np.array([x]), float(frame["search"].max()))[0])
    sigma = LIFT_TEST_SE * loss
    readout = max(loss + rng.normal(0.0, sigma), 0.05 * loss)  # a loss, as the model needs
    return pd.DataFrame(
        {"channel": ["search"], "x": [x], "delta_x": [-x], "delta_y": [-readout], "sigma": [sigma]}
    )


def _replicate(rng: np.random.Generator, scale: str, *, calibrated: bool) -> Replication:
    if scale not in SETTINGS:
        raise ValueError(f"scale must be one of {sorted(SETTINGS)}, got {scale!r}")
    weeks, draws = SETTINGS[scale]
    frame, roas = _simulate(rng, weeks)
    result = fit_mmm(
        frame,
        date="week",
        channels=list(CHANNELS),
        target="revenue",
        controls=["trend", "peak"],
        adstock_max_lag=LAG,
        yearly_seasonality=1,
        draws=draws,
        tune=draws,
        chains=2,
        random_seed=int(rng.integers(2**31)),
        lift_tests=_search_lift_test(rng, frame) if calibrated else None,
    )
    roas_table = result.channel_roas()
    (row,) = roas_table[roas_table["channel"] == "search"].to_dict("records")
    estimate = EffectEstimate(
        effect=float(row["mean"]),
        ci_lower=float(row["hdi_low"]),
        ci_upper=float(row["hdi_high"]),
        p_value=float("nan"),
        std_error=float("nan"),
        n_obs=weeks,
        method="media_mix_model",
        alpha=0.06,
        details={"divergences": result.diagnostics()["divergences"]},
    )
    return Replication(estimate, roas["search"])


def search_roas(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """The smaller channel's ROAS from weekly data alone."""
    return _replicate(rng, scale, calibrated=False)


def search_roas_calibrated(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """The same, with one noisy lift test of the channel."""
    return _replicate(rng, scale, calibrated=True)


SCENARIOS: dict[str, Scenario] = {
    "search_roas": search_roas,
    "search_roas_calibrated": search_roas_calibrated,
}
