"""Bayesian media-mix model (MMM) on pymc-marketing: channel ROAS, response curves, budgets.

What it estimates
    How much of the target (e.g. weekly net revenue) each paid channel caused, from a time
    series of spend per channel and the target. The model is pymc-marketing's
    multidimensional ``MMM`` (0.19; the older ``pymc_marketing.mmm.MMM`` is deprecated
    there) without panel dims:

    ``y_t / max|y| = intercept + sum_c beta_c * logistic(lam_c * adstock_c(x_c / max x_c)_t)
    + sum_k gamma_k * z_kt + sum_m gamma_m * fourier_m(t) + Normal noise``

    Geometric adstock: weights ``alpha_c ** lag``, lags ``0..adstock_max_lag - 1``,
    normalised to sum to one (spend before the first row counts as zero). Logistic
    saturation after the adstock: ``logistic(u) = (1 - exp(-u)) / (1 + exp(-u))``.
    Controls ``z`` are centred on their mean and divided by their largest absolute
    deviation here (pymc-marketing leaves them raw), so each lies in [-1, 1] and its prior
    reads in scaled target units; centring also decorrelates them from the intercept.
    Put a trend (e.g. weeks since start) or holiday-share columns in ``controls`` when
    the baseline moves with them: anything that moves with spend and is left out biases
    the ROAS (the model has no trend of its own).

Outputs (ORIGINAL target units, computed per posterior draw, then summarised)
    * ROAS of a channel = its contribution summed over the data / its spend summed over
      the data (target per unit of spend). Carry-over into the first rows from spend
      before them, and out of the last rows, is not counted.
    * Response curve = steady-state contribution per period at a spend level held
      constant. The adstock weights sum to one, so constant spend ``s`` adstocks to ``s``
      and the curve is ``max|y| * beta_c * logistic(lam_c * s / max x_c)``.
    * ``optimize_budget`` splits a per-period budget to maximise the posterior mean
      response (pymc-marketing's optimiser by default; see the method).

Default priors (``default_priors()``; override any entry with ``priors=``, keys are
pymc-marketing ``model_config`` keys, values ``pymc_extras.prior.Prior``). Contributions
are in units of the largest absolute target value ("scaled target"), spend in units of
the channel's largest per-period spend.

    * ``saturation_lam`` ~ Gamma(alpha=3, beta=2): mean 1.5, 90% in [0.4, 3.1]. How
      quickly a channel saturates: spending the historical maximum every period reaches
      ``logistic(lam)`` of the channel's ceiling (36% at lam=0.75, 64% at 1.5, 91% at
      3). CHANGED from pymc-marketing's Gamma(3, 1) (mean 3). Spend rarely goes near zero,
      so the data pin down the marginal return over the observed spend range, while the
      average ROAS also depends on how concave the curve is below it, which only the
      prior (or a lift test) decides. Gamma(3, 1) puts 44% of its mass on "the historical
      maximum is past 90% of the ceiling", i.e. average returns several times the
      marginal ones; a steep curve then turns part of the flat baseline into media
      contribution. On the sandbox brand it put paid search's ROAS at 2.1x the truth.
      Gamma(3, 2) still allows strong saturation (7% of its mass past 90%) but leans
      towards moderate curvature: at half the historical maximum, average ROAS is
      1.03-1.17x the marginal one over its interquartile range (1.13-1.78x under
      Gamma(3, 1)), the conservative reading when nothing else identifies the curvature.
      Calibrate with lift tests when you can.
    * ``saturation_beta`` ~ HalfNormal(sigma=2) (pymc-marketing's default): the
      channel's ceiling, the most it could add per period at unlimited spend, as a share
      of the largest observed target value. Roomy (up to ~4 best periods' worth) on
      purpose: the data, not this prior, should set the level (sigma=1 gave the same
      answers on the sandbox brand).
    * ``adstock_alpha`` ~ Beta(1, 3): mean 0.25, the share of a period's effect that
      carries into the next period (weekly effects mostly fade within a few weeks).
    * ``intercept`` ~ Normal(0, 2): the baseline (no media, controls at their mean), in
      scaled target units; the data dominate it.
    * ``likelihood``: Normal with ``sigma`` ~ HalfNormal(2) (scaled target units; loose).
    * ``gamma_control`` ~ Normal(0, 2): the effect of moving a control from its mean to
      its most extreme value, in scaled target units.
    * ``gamma_fourier`` ~ Laplace(0, 1): yearly seasonality amplitudes (scaled target).

Lift tests (``lift_tests=``)
    Experiments calibrate the saturation curve through pymc-marketing's
    ``add_lift_test_measurements``: per row, the model's steady-state lift
    ``beta * (logistic(lam * (x + delta_x)) - logistic(lam * x))`` (spend scaled as
    above, no adstock) is tied to ``|delta_y|`` by a Normal likelihood with standard
    deviation ``sigma`` (``lift_likelihood="normal"``, the default): an experiment's
    estimate is close to normal around the true lift, with its standard error.
    pymc-marketing's default is a Gamma with mean the model's lift and sd ``sigma``; when
    ``sigma`` is a large share of the readout (40-60% for a month-long geo test of a small
    channel) its likelihood of the model's lift peaks well above the readout (+21% at
    54%, +26% at 63%), so a noisy test inflates the channel's ROAS.
    ``lift_likelihood="gamma"`` keeps pymc-marketing's.
    Columns, all per period of the data (per week for weekly data):

    * ``channel``; ``x``: the channel's spend per period in the business-as-usual arm;
    * ``delta_x``: spend per period in the test arm minus ``x``;
    * ``delta_y``: target per period in the test arm minus business-as-usual (what the
      experiment measured, in the target's units); ``sigma``: its standard error.

    Signs: a holdout that switched ads off has ``delta_x < 0`` and ``delta_y < 0``; a
    spend increase has both positive. They must share a sign and be non-zero
    (pymc-marketing compares absolute lifts, so a wrong-signed readout would count as a
    lift of the right sign). A GEO holdout that switched
    the channel off in geos holding a share ``p`` of its spend measures the whole curve
    of those geos, not a national marginal change: if response scales with geo size,
    enter it as ``x`` = national spend, ``delta_x = -x``, ``delta_y`` = (revenue lost
    per period in the holdout geos) / p and ``sigma`` / p. Entering it as
    ``delta_x = -p * x`` would read the holdout's average return as the national
    marginal return and inflate the curve.

Inference
    NUTS, by default numpyro's (JAX; chains in parallel, one XLA CPU device each) on the
    same posterior in "level" coordinates (``causal.mmm_sampling``): the intercept and the
    channel ceilings trade off along a narrow ridge that the model's own coordinates make
    NUTS crawl along, and diverge at; in level coordinates it mixes at several times the
    effective samples per second of pymc-marketing's default sampler on the same model
    (``benchmarks/mmm_sampling.py``). ``sampler`` "nutpie" and "pymc" (PyMC's NUTS, here
    with a dense mass matrix, ``init="jitter+adapt_full"``: log-beta and log-lam stay
    ~ -0.99 correlated, as the data identify their product's slope far better than
    either) and ``parameterisation="model"`` are there to compare. Target acceptance
    0.95. Intervals are 94% highest-density intervals of the draws (pymc-marketing's and
    ArviZ's convention). ``diagnostics()`` reports R-hat, bulk/tail ESS over the sampled
    parameters and the number of divergences: check them before using the numbers.

Input rules (``ValueError`` otherwise)
    Channel, target and control columns numeric without NaN; spend non-negative and not
    all zero in any channel; dates parseable, unique and equally spaced, daily or weekly;
    target and controls not constant; at least ``adstock_max_lag + 20`` rows (the first
    ``adstock_max_lag`` periods lack their carry-over history, and some 20 more are the
    least that separates a couple of channels from the baseline, trend and seasonality;
    expect wide intervals near that floor: two to three years of weekly data is usual).

pymc, pymc-marketing and arviz are imported inside the functions, so importing this
module stays light (the Dagster code location imports it).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cfap_orchestration.causal._validation import (
    require_columns,
    require_frame,
    require_no_nans,
    require_numeric,
    require_variance,
)
from cfap_orchestration.causal.mmm_sampling import check_parameterisation, sample_mmm

if TYPE_CHECKING:
    import arviz as az

HDI_PROB = 0.94
TARGET_ACCEPT = 0.95  # 0.9 let one divergence through in 8 seeds on the sandbox; 0.95 none
MIN_ROWS_BEYOND_LAG = 20
SAMPLERS: dict[str, tuple[str, ...]] = {
    "pymc": (),
    "nutpie": ("nutpie",),
    "numpyro": ("numpyro", "jax"),
}
PRIOR_KEYS = (
    "intercept",
    "likelihood",
    "gamma_control",
    "gamma_fourier",
    "adstock_alpha",
    "saturation_lam",
    "saturation_beta",
)
LIFT_TEST_COLUMNS = ("channel", "x", "delta_x", "delta_y", "sigma")
LIFT_LIKELIHOODS = ("normal", "gamma")
_DEFAULT_DIMS = {
    "gamma_control": ("control",),
    "gamma_fourier": ("fourier_mode",),
    "likelihood": ("date",),
}
_ATTRS_KEY = "cfap_mmm"
_PERIOD_DAYS = (1, 7)  # daily or weekly data


def default_priors() -> dict[str, Any]:
    """The default ``model_config`` entries (pymc-extras ``Prior`` objects); see the module doc."""
    from pymc_extras.prior import Prior

    return {
        "saturation_beta": Prior("HalfNormal", sigma=2, dims="channel"),
        "saturation_lam": Prior("Gamma", alpha=3, beta=2, dims="channel"),
        "adstock_alpha": Prior("Beta", alpha=1, beta=3, dims="channel"),
        "intercept": Prior("Normal", mu=0, sigma=2),
        "likelihood": Prior("Normal", sigma=Prior("HalfNormal", sigma=2), dims="date"),
        "gamma_control": Prior("Normal", mu=0, sigma=2, dims="control"),
        "gamma_fourier": Prior("Laplace", mu=0, b=1, dims="fourier_mode"),
    }


# ---- numeric helpers (numpy only) ------------------------------------------------------


def hdi(draws: np.ndarray, prob: float = HDI_PROB) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval along axis 0 (the shortest interval holding ``prob``).

    Same rule as ArviZ's ``hdi`` for unimodal samples: among the windows of
    ``floor(prob * n)`` consecutive sorted draws, the narrowest.
    """
    sorted_draws = np.sort(np.asarray(draws, dtype=float), axis=0)
    n = sorted_draws.shape[0]
    width = int(np.floor(prob * n))
    if n < 2 or width < 1:
        return sorted_draws[0], sorted_draws[-1]
    n_windows = n - width
    widths = sorted_draws[width:] - sorted_draws[:n_windows]
    start = np.argmin(widths, axis=0)
    low = np.take_along_axis(sorted_draws, start[None, ...], axis=0)[0]
    high = np.take_along_axis(sorted_draws, (start + width)[None, ...], axis=0)[0]
    return low, high


def logistic_saturation(u: np.ndarray) -> np.ndarray:
    """pymc-marketing's logistic saturation ``(1 - exp(-u)) / (1 + exp(-u)) = tanh(u / 2)``."""
    return np.tanh(np.asarray(u, dtype=float) / 2.0)


def _summary(draws: np.ndarray) -> dict[str, np.ndarray]:
    low, high = hdi(draws)
    return {"mean": draws.mean(axis=0), "hdi_low": low, "hdi_high": high}


# ---- input checks ----------------------------------------------------------------------


def _check_names(
    df: pd.DataFrame, date: str, channels: Sequence[str], target: str, controls: Sequence[str]
) -> None:
    if not len(channels):
        raise ValueError("channels must be a non-empty list of spend column names")
    names = [date, target, *channels, *controls]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(
            f"column(s) {duplicated} used more than once among date/target/channels/controls"
        )
    if "y" in [date, *channels, *controls]:
        raise ValueError(
            "the date, a channel or a control may not be named 'y' (pymc-marketing reserves it)"
        )
    require_columns(df, names, what="MMM data")


def _parse_dates(values: pd.Series, column: str) -> pd.Series:
    try:
        dates = pd.to_datetime(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"date column {column!r} could not be parsed as dates: {exc}") from exc
    if dates.isna().any():
        raise ValueError(f"date column {column!r} has {int(dates.isna().sum())} missing value(s)")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    return dates.dt.normalize()


def _check_dates(dates: pd.Series, column: str) -> int:
    """Return the period length in days (1 or 7); dates must be unique, sorted and regular."""
    duplicated = dates[dates.duplicated()]
    if len(duplicated):
        shown = [d.date().isoformat() for d in duplicated.unique()[:3]]
        raise ValueError(f"date column {column!r} has duplicated dates, e.g. {shown}")
    steps = np.unique(np.diff(dates.to_numpy()).astype("timedelta64[D]").astype(int))
    if len(steps) != 1 or int(steps[0]) not in _PERIOD_DAYS:
        raise ValueError(
            f"dates in {column!r} must be equally spaced, daily or weekly, with no gaps; "
            f"found steps of {sorted(int(s) for s in steps)[:5]} day(s)"
        )
    return int(steps[0])


def _check_spend(df: pd.DataFrame, channels: Sequence[str]) -> None:
    for channel in channels:
        values = df[channel].to_numpy(dtype=float)
        if (values < 0).any():
            raise ValueError(
                f"channel {channel!r} has {int((values < 0).sum())} negative spend value(s)"
            )
        if not (values > 0).any():
            raise ValueError(
                f"channel {channel!r} has no spend at all: its effect is not identified"
            )


_SETTING_MINIMUMS = {
    "adstock_max_lag": 1,
    "yearly_seasonality": 0,
    "draws": 1,
    "tune": 0,
    "chains": 1,
}


def _check_settings(**values: int) -> None:
    for name, value in values.items():
        minimum = _SETTING_MINIMUMS[name]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_sampler(sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
    missing = [pkg for pkg in SAMPLERS[sampler] if importlib.util.find_spec(pkg) is None]
    if missing:
        raise ValueError(
            f"sampler={sampler!r} needs the package(s) {missing}: install them "
            f"(pip install {' '.join(missing)}) or use sampler='pymc'"
        )


def _check_priors(priors: Mapping[str, Any] | None) -> dict[str, Any]:
    if priors is None:
        return {}
    if not isinstance(priors, Mapping):
        raise ValueError(
            f"priors must be a dict of model_config entries, got {type(priors).__name__}"
        )
    unknown = sorted(set(priors) - set(PRIOR_KEYS))
    if unknown:
        raise ValueError(f"unknown prior key(s) {unknown}; allowed: {list(PRIOR_KEYS)}")
    return dict(priors)


def _with_default_dims(priors: dict[str, Any]) -> dict[str, Any]:
    """Give dimension-less user priors their dims (pymc-marketing would share one value)."""
    out = {}
    for key, prior in priors.items():
        dims = _DEFAULT_DIMS.get(key)
        if dims and hasattr(prior, "dims") and not prior.dims:
            prior = copy.deepcopy(prior)
            prior.dims = dims
        out[key] = prior
    return out


def _lift_likelihood(name: str) -> Any:
    import pymc.dims as pmd

    return {"normal": pmd.Normal, "gamma": pmd.Gamma}[name]


def _check_lift_tests(lift_tests: pd.DataFrame, channels: Sequence[str]) -> pd.DataFrame:
    lift = require_frame(lift_tests, what="lift_tests")
    require_columns(lift, LIFT_TEST_COLUMNS, what="lift_tests")
    numeric = ["x", "delta_x", "delta_y", "sigma"]
    require_no_nans(lift, LIFT_TEST_COLUMNS, what="lift_tests")
    require_numeric(lift, numeric, what="lift_tests")
    unknown = sorted(set(lift["channel"]) - set(channels))
    if unknown:
        raise ValueError(
            f"lift_tests name channel(s) {unknown} that are not among {list(channels)}"
        )
    lift = lift[list(LIFT_TEST_COLUMNS)].astype({c: float for c in numeric}).reset_index(drop=True)
    if (lift["x"] < 0).any() or (lift["x"] + lift["delta_x"] < 0).any():
        raise ValueError("lift_tests: spend x and x + delta_x must both be >= 0")
    if (lift["sigma"] <= 0).any():
        raise ValueError("lift_tests: sigma (standard error of delta_y) must be > 0")
    if (lift["delta_x"] == 0).any() or (lift["delta_y"] == 0).any():
        raise ValueError("lift_tests: delta_x and delta_y must be non-zero")
    if (np.sign(lift["delta_x"]) != np.sign(lift["delta_y"])).any():
        raise ValueError(
            "lift_tests: delta_y must have the sign of delta_x (less spend, less revenue); "
            "pymc-marketing compares absolute lifts, so a null or wrong-signed lift would count "
            "as one of the right sign"
        )
    return lift


@dataclass(frozen=True)
class _Prepared:
    X: pd.DataFrame
    y: pd.Series
    control_scale: dict[str, dict[str, float]]
    period_days: int


def _prepare(
    df: pd.DataFrame,
    *,
    date: str,
    channels: Sequence[str],
    target: str,
    controls: Sequence[str],
    adstock_max_lag: int,
) -> _Prepared:
    require_frame(df, what="MMM data")
    _check_names(df, date, channels, target, controls)
    values = [target, *channels, *controls]
    require_no_nans(df, [date, *values], what="MMM data")
    require_numeric(df, values, what="MMM data")
    frame = df[[date, *values]].copy()
    frame[date] = _parse_dates(frame[date], date)
    frame = frame.sort_values(date).reset_index(drop=True)
    period_days = _check_dates(frame[date], date)
    min_rows = adstock_max_lag + MIN_ROWS_BEYOND_LAG
    if len(frame) < min_rows:
        raise ValueError(
            f"MMM data has {len(frame)} rows; at least adstock_max_lag + "
            f"{MIN_ROWS_BEYOND_LAG} = {min_rows} are needed"
        )
    _check_spend(frame, channels)
    require_variance(frame[target], name=f"target column {target!r}")
    control_scale: dict[str, dict[str, float]] = {}
    for control in controls:
        require_variance(frame[control], name=f"control column {control!r}")
        centred = frame[control].astype(float) - float(frame[control].mean())
        scale = float(centred.abs().max())
        control_scale[control] = {"centre": float(frame[control].mean()), "scale": scale}
        frame[control] = centred / scale
    X = frame[[date, *channels, *controls]].astype({c: float for c in [*channels, *controls]})
    y = frame[target].astype(float).rename(target)
    return _Prepared(X=X, y=y, control_scale=control_scale, period_days=period_days)


# ---- fitting ---------------------------------------------------------------------------


def fit_mmm(
    df: pd.DataFrame,
    *,
    date: str,
    channels: Sequence[str],
    target: str,
    controls: Sequence[str] = (),
    adstock_max_lag: int = 8,
    yearly_seasonality: int = 2,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    sampler: str = "numpyro",
    parameterisation: str = "level",
    random_seed: int = 0,
    priors: Mapping[str, Any] | None = None,
    lift_tests: pd.DataFrame | None = None,
    lift_likelihood: str = "normal",
    progressbar: bool = False,
    log: Callable[[str], None] | None = None,
) -> MMMResult:
    """Fit a Bayesian media-mix model (geometric adstock + logistic saturation).

    Parameters
    ----------
    df
        One row per period (day or week), with the date, a spend column per channel
        (non-negative, in money), the target (e.g. net revenue in the same money) and any
        controls.
    date, channels, target, controls
        Column names. Controls enter linearly, centred and scaled into [-1, 1]; add e.g. a
        trend (weeks since start) or holiday-share columns when the baseline moves with
        them: anything left out that moves with spend biases the ROAS.
    adstock_max_lag
        Number of periods (lags ``0..adstock_max_lag - 1``) in the geometric carry-over.
    yearly_seasonality
        Number of yearly Fourier modes (0 turns seasonality off).
    draws, tune, chains, random_seed, progressbar
        NUTS settings: draws kept per chain, tuning steps per chain, chains, seed.
    sampler
        NUTS implementation: ``"numpyro"`` (the default; JAX, chains in parallel on the
        CPU cores), ``"nutpie"`` or ``"pymc"`` (PyMC's own, with a dense mass matrix).
    parameterisation
        ``"level"`` (the default): sample the same posterior in better-scaled coordinates
        (``cfap_orchestration.causal.mmm_sampling``), which on weekly data mixes several
        times faster and without the divergences of the model's own; ``"model"``: the
        model's own coordinates, as pymc-marketing's ``fit`` samples them.
    log
        Called with a line of progress before and after sampling (e.g. a run logger).
    priors
        pymc-marketing ``model_config`` entries (``pymc_extras.prior.Prior``) overriding
        ``default_priors()`` key by key; allowed keys are ``PRIOR_KEYS``.
    lift_tests
        Optional experiments (columns ``channel, x, delta_x, delta_y, sigma``; sign
        conventions in the module docstring), per period like the data.

    Returns
    -------
    MMMResult
        Posterior draws and summaries: ``channel_roas()``, ``contributions()``,
        ``response_curves()``, ``diagnostics()``, ``optimize_budget()``, ``save()``.
        ROAS and contributions are in the target's units; ROAS is target per unit of spend
        (> 0 by construction: the saturation curve is increasing). ``meta`` records the
        settings and ``sampling_seconds`` (wall time of the sampling: building and
        compiling the sampler's graph, NUTS, and the deterministics).
    """
    _check_settings(draws=draws, tune=tune, chains=chains)
    _check_sampler(sampler)
    check_parameterisation(parameterisation)
    spec = build_mmm(
        df,
        date=date,
        channels=channels,
        target=target,
        controls=controls,
        adstock_max_lag=adstock_max_lag,
        yearly_seasonality=yearly_seasonality,
        priors=priors,
        lift_tests=lift_tests,
        lift_likelihood=lift_likelihood,
    )
    started = time.perf_counter()
    sample_mmm(
        spec.model,
        spec.prepared.X,
        spec.prepared.y,
        sampler=sampler,
        parameterisation=parameterisation,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=random_seed,
        target_accept=TARGET_ACCEPT,
        progressbar=progressbar,
        log=log,
    )
    meta = {
        **spec.meta,
        "sampler": sampler,
        "parameterisation": parameterisation,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
        "sampling_seconds": time.perf_counter() - started,
    }
    return MMMResult(idata=spec.model.idata, meta=meta, model=spec.model)


@dataclass
class MMMSpec:
    """A built, unfitted pymc-marketing ``MMM`` with the data it was built on.

    ``prepared.X`` / ``prepared.y`` are what the model is fitted to (controls scaled);
    ``meta`` records the columns, scales and priors for :class:`MMMResult`.
    """

    model: Any
    prepared: _Prepared
    meta: dict[str, Any]


def build_mmm(
    df: pd.DataFrame,
    *,
    date: str,
    channels: Sequence[str],
    target: str,
    controls: Sequence[str] = (),
    adstock_max_lag: int = 8,
    yearly_seasonality: int = 2,
    priors: Mapping[str, Any] | None = None,
    lift_tests: pd.DataFrame | None = None,
    lift_likelihood: str = "normal",
) -> MMMSpec:
    """Check the inputs and build the model :func:`fit_mmm` samples (same arguments).

    For sampling it another way, e.g. with pymc-marketing's own ``fit``, as the sampling
    benchmark does for its baseline.
    """
    if isinstance(controls, str) or isinstance(channels, str):
        raise ValueError("channels and controls must be lists of column names, not a single string")
    controls, channels = list(controls), list(channels)
    _check_settings(adstock_max_lag=adstock_max_lag, yearly_seasonality=yearly_seasonality)
    if lift_likelihood not in LIFT_LIKELIHOODS:
        raise ValueError(
            f"lift_likelihood must be one of {list(LIFT_LIKELIHOODS)}, got {lift_likelihood!r}"
        )
    user_priors = _with_default_dims(_check_priors(priors))
    prepared = _prepare(
        df,
        date=date,
        channels=channels,
        target=target,
        controls=controls,
        adstock_max_lag=adstock_max_lag,
    )
    lift = _check_lift_tests(lift_tests, channels) if lift_tests is not None else None
    all_priors = {**default_priors(), **user_priors}
    model = _build_model(
        prepared,
        date=date,
        channels=channels,
        controls=controls,
        adstock_max_lag=adstock_max_lag,
        yearly_seasonality=yearly_seasonality,
        priors=all_priors,
    )
    if lift is not None:
        model.add_lift_test_measurements(lift, dist=_lift_likelihood(lift_likelihood))
    meta = {
        "date": date,
        "channels": channels,
        "target": target,
        "controls": controls,
        "control_scale": prepared.control_scale,
        "adstock_max_lag": adstock_max_lag,
        "yearly_seasonality": yearly_seasonality,
        "period_days": prepared.period_days,
        "n_lift_tests": 0 if lift is None else len(lift),
        "lift_likelihood": lift_likelihood,
        "free_variables": [rv.name for rv in model.model.free_RVs],
        "priors": {k: str(v) for k, v in all_priors.items()},
    }
    return MMMSpec(model=model, prepared=prepared, meta=meta)


def _build_model(
    prepared: _Prepared,
    *,
    date: str,
    channels: list[str],
    controls: list[str],
    adstock_max_lag: int,
    yearly_seasonality: int,
    priors: dict[str, Any],
) -> Any:
    from pymc_marketing.mmm import GeometricAdstock, LogisticSaturation
    from pymc_marketing.mmm.multidimensional import MMM

    model = MMM(
        date_column=date,
        channel_columns=channels,
        target_column=str(prepared.y.name),
        adstock=GeometricAdstock(l_max=adstock_max_lag),
        saturation=LogisticSaturation(),
        control_columns=controls or None,
        yearly_seasonality=yearly_seasonality or None,
        model_config=priors,
    )
    model.build_model(prepared.X, prepared.y)
    return model


# ---- results ---------------------------------------------------------------------------


@dataclass
class MMMResult:
    """A fitted MMM: posterior draws (``idata``) and the summaries notebook users want.

    ``meta`` holds the fit's settings (columns, sampler, seconds, ...). ``model`` is the
    pymc-marketing ``MMM`` (rebuilt from ``idata`` on first access after :meth:`load`),
    for pymc-marketing's own plots and tools.
    """

    idata: az.InferenceData
    meta: dict[str, Any]
    model: Any = field(default=None, repr=False)

    # -- data held in idata --------------------------------------------------------------

    @property
    def channels(self) -> list[str]:
        return list(self.meta["channels"])

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.idata["constant_data"]["date"].to_numpy())

    @property
    def spend(self) -> pd.DataFrame:
        """Spend per period (rows: dates, columns: channels), as fitted."""
        data = self.idata["constant_data"]["channel_data"].transpose("date", "channel")
        return pd.DataFrame(
            data.sel(channel=self.channels).to_numpy(), index=self.dates, columns=self.channels
        )

    @property
    def target_scale(self) -> float:
        # a scalar with pymc; nutpie stores it with a length-one dim
        return float(self.idata["constant_data"]["target_scale"].to_numpy().reshape(-1)[0])

    @property
    def channel_scale(self) -> np.ndarray:
        return self.idata["constant_data"]["channel_scale"].sel(channel=self.channels).to_numpy()

    def _posterior(self, name: str, *dims: str) -> np.ndarray:
        """Draws of a posterior variable, (sample, *dims), chains stacked."""
        var = self.idata["posterior"][name]
        if "channel" in var.dims:
            var = var.sel(channel=self.channels)
        var = var.transpose("chain", "draw", *dims)
        values = var.to_numpy()
        return values.reshape(-1, *values.shape[2:])

    def contribution_draws(self) -> np.ndarray:
        """Channel contributions in target units, (sample, date, channel)."""
        return self._posterior("channel_contribution", "date", "channel") * self.target_scale

    def steady_state_draws(self, spend: np.ndarray) -> np.ndarray:
        """Steady-state contribution per period, (sample, *spend.shape).

        ``spend`` has the channel on its last axis (per-period spend per channel).
        """
        beta = self._posterior("saturation_beta", "channel")
        lam = self._posterior("saturation_lam", "channel")
        spend = np.asarray(spend, dtype=float)
        extra = (None,) * (spend.ndim - 1)
        u = lam[(slice(None), *extra, slice(None))] * spend[None, ...] / self.channel_scale
        return self.target_scale * beta[(slice(None), *extra, slice(None))] * logistic_saturation(u)

    def _marginal_draws(self, spend: np.ndarray) -> np.ndarray:
        """Derivative of the steady-state curve with respect to spend, (sample, *spend.shape)."""
        beta = self._posterior("saturation_beta", "channel")
        lam = self._posterior("saturation_lam", "channel")
        spend = np.asarray(spend, dtype=float)
        extra = (None,) * (spend.ndim - 1)
        lam_b = lam[(slice(None), *extra, slice(None))] / self.channel_scale
        t = logistic_saturation(lam_b * spend[None, ...])
        beta_b = beta[(slice(None), *extra, slice(None))]
        return self.target_scale * beta_b * lam_b * (1 - t**2) / 2

    # -- summaries -----------------------------------------------------------------------

    def channel_roas(self) -> pd.DataFrame:
        """ROAS per channel: contribution summed over the data / spend summed, per draw.

        Columns ``channel, mean, hdi_low, hdi_high`` (94% HDI), ``spend`` (total) and
        ``contribution`` (posterior mean total, target units).
        """
        contrib = self.contribution_draws().sum(axis=1)
        spend = self.spend.sum(axis=0).to_numpy()
        stats = _summary(contrib / spend)
        return pd.DataFrame(
            {"channel": self.channels, **stats, "spend": spend, "contribution": contrib.mean(0)}
        )

    def contributions(self) -> pd.DataFrame:
        """Per date and channel: spend and the contribution's posterior mean and 94% HDI."""
        stats = _summary(self.contribution_draws())
        n_dates, n_channels = len(self.dates), len(self.channels)
        out = pd.DataFrame(
            {
                "date": np.repeat(self.dates.to_numpy(), n_channels),
                "channel": np.tile(self.channels, n_dates),
                "spend": self.spend.to_numpy().ravel(),
            }
        )
        for key, values in stats.items():
            out[key] = values.ravel()
        return out

    def response_curves(self, n_points: int = 50, max_spend_multiple: float = 2.0) -> pd.DataFrame:
        """Steady-state contribution per period at constant spend, per channel.

        The spend grid runs from 0 to ``max_spend_multiple`` x the largest observed
        per-period spend of each channel. Columns ``channel, spend, mean, hdi_low,
        hdi_high`` (contribution per period) and ``marginal_roas`` (posterior mean of
        the curve's slope: extra target per extra unit of spend at that level).
        """
        if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 2:
            raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
        if not max_spend_multiple > 0:
            raise ValueError(f"max_spend_multiple must be > 0, got {max_spend_multiple}")
        grid = np.linspace(0.0, 1.0, int(n_points))[:, None] * (
            self.spend.max(axis=0).to_numpy() * max_spend_multiple
        )
        stats = _summary(self.steady_state_draws(grid))
        marginal = self._marginal_draws(grid).mean(axis=0)
        frames = [
            pd.DataFrame(
                {
                    "channel": channel,
                    "spend": grid[:, j],
                    **{k: v[:, j] for k, v in stats.items()},
                    "marginal_roas": marginal[:, j],
                }
            )
            for j, channel in enumerate(self.channels)
        ]
        return pd.concat(frames, ignore_index=True)

    def diagnostics(self) -> dict[str, Any]:
        """Sampler health over the sampled (free) parameters.

        Keys: ``r_hat_max`` (NaN with one chain), ``ess_bulk_min``, ``ess_tail_min``,
        ``divergences``, ``sampling_seconds``, ``sampler``, ``draws``, ``tune``,
        ``chains``, ``n_obs``, ``worst_r_hat`` (variable name), ``per_variable``
        (DataFrame: variable, r_hat_max, ess_bulk_min, ess_tail_min).
        """
        import arviz as az

        names = [n for n in self.meta["free_variables"] if n in self.idata["posterior"]]
        rows = []
        for name in names:
            var = self.idata["posterior"][[name]]
            rhat = az.rhat(var)[name].to_numpy() if self.meta["chains"] > 1 else np.array(np.nan)
            rows.append(
                {
                    "variable": name,
                    "r_hat_max": float(np.nanmax(rhat)) if np.isfinite(rhat).any() else np.nan,
                    "ess_bulk_min": float(np.min(az.ess(var, method="bulk")[name].to_numpy())),
                    "ess_tail_min": float(np.min(az.ess(var, method="tail")[name].to_numpy())),
                }
            )
        table = pd.DataFrame(rows)
        divergences = int(self.idata["sample_stats"]["diverging"].sum())
        r_hat = table["r_hat_max"]
        return {
            "r_hat_max": float(r_hat.max()) if r_hat.notna().any() else float("nan"),
            "ess_bulk_min": float(table["ess_bulk_min"].min()),
            "ess_tail_min": float(table["ess_tail_min"].min()),
            "divergences": divergences,
            "sampling_seconds": float(self.meta["sampling_seconds"]),
            "sampler": self.meta["sampler"],
            "draws": int(self.meta["draws"]),
            "tune": int(self.meta["tune"]),
            "chains": int(self.meta["chains"]),
            "n_obs": len(self.dates),
            "worst_r_hat": (
                str(table["variable"].iloc[int(np.nanargmax(r_hat.to_numpy()))])
                if r_hat.notna().any()
                else None
            ),
            "per_variable": table,
        }

    # -- budget --------------------------------------------------------------------------

    def optimize_budget(
        self,
        total_budget: float,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        *,
        method: str = "pymc_marketing",
        horizon: int | None = None,
    ) -> pd.DataFrame:
        """Split a per-period budget across channels to maximise expected contribution.

        ``total_budget`` is spend per period (summed over channels); ``bounds`` maps a
        channel to its per-period ``(low, high)``; channels not named get
        ``(0, total_budget)``. Two engines, both maximising the posterior MEAN response:

        * ``"pymc_marketing"`` (default): pymc-marketing's ``BudgetOptimizer`` (SLSQP on
          the model graph) for the same spend in each of the ``horizon`` periods after
          the data (default 52 weekly / 364 daily), counting the carry-over tail and
          starting from zero adstock, i.e. its total contribution over the plan.
        * ``"steady_state"``: scipy's SLSQP on the sum of the steady-state curves of
          :meth:`response_curves` (exact gradient; the curves are concave, so the
          optimum is unique). No ramp-up or tail: the limit of the first for a long
          horizon. It needs no pymc and is faster.

        The two agree to about ``adstock_max_lag / horizon`` of the budget. The curves are
        informed by the data only over the observed spend range (and by lift tests);
        beyond it they are the priors' extrapolation, so pass ``bounds`` near that range
        unless experiments cover the rest.

        Returns columns ``channel, current_spend`` (mean per period over the data),
        ``optimal_spend``, ``expected_contribution`` (posterior mean steady-state
        contribution per period at the optimal spend), ``hdi_low, hdi_high`` (its 94%
        HDI over the posterior draws) and ``current_contribution`` (the same at the
        current spend).
        """
        lows, highs = self._budget_bounds(total_budget, bounds)
        if method == "steady_state":
            optimal = _maximise_steady_state(self, float(total_budget), lows, highs)
        elif method == "pymc_marketing":
            optimal = self._pymc_marketing_allocation(float(total_budget), lows, highs, horizon)
        else:
            raise ValueError(f"method must be 'pymc_marketing' or 'steady_state', got {method!r}")
        current = self.spend.mean(axis=0).to_numpy()
        stats = _summary(self.steady_state_draws(optimal))
        return pd.DataFrame(
            {
                "channel": self.channels,
                "current_spend": current,
                "optimal_spend": optimal,
                "expected_contribution": stats["mean"],
                "hdi_low": stats["hdi_low"],
                "hdi_high": stats["hdi_high"],
                "current_contribution": self.steady_state_draws(current).mean(axis=0),
            }
        )

    def _pymc_marketing_allocation(
        self, total_budget: float, lows: np.ndarray, highs: np.ndarray, horizon: int | None
    ) -> np.ndarray:
        import xarray as xr
        from pymc_marketing.mmm.budget_optimizer import MinimizeException
        from pymc_marketing.mmm.multidimensional import MultiDimensionalBudgetOptimizerWrapper

        wrapper_class: Any = MultiDimensionalBudgetOptimizerWrapper  # typed as abstract upstream

        period_days = int(self.meta["period_days"])
        if horizon is None:
            horizon = 52 if period_days == 7 else 364
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        step = pd.Timedelta(days=period_days)
        start = self.dates[-1] + step
        end = start + step * (int(horizon) - 1)
        bounds = xr.DataArray(
            np.column_stack([lows, highs]),
            dims=("channel", "bound"),
            coords={"channel": self.channels, "bound": ["lower", "upper"]},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wrapper = wrapper_class(
                model=self.pymc_marketing_model(),
                start_date=start.date().isoformat(),
                end_date=end.date().isoformat(),
            )
            try:
                allocation = wrapper.optimize_budget(budget=total_budget, budget_bounds=bounds)[0]
            except MinimizeException as exc:
                raise ValueError(f"budget optimisation failed: {exc}") from exc
        optimal = allocation.sel(channel=self.channels).to_numpy().astype(float)
        return np.clip(optimal, lows, highs)

    def _budget_bounds(
        self, total_budget: float, bounds: Mapping[str, tuple[float, float]] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if not np.isfinite(total_budget) or total_budget <= 0:
            raise ValueError(f"total_budget must be a positive number, got {total_budget}")
        bounds = dict(bounds or {})
        unknown = sorted(set(bounds) - set(self.channels))
        if unknown:
            raise ValueError(f"bounds name channel(s) {unknown} not among {self.channels}")
        lows = np.zeros(len(self.channels))
        highs = np.full(len(self.channels), float(total_budget))
        for j, channel in enumerate(self.channels):
            if channel not in bounds:
                continue
            low, high = (float(v) for v in bounds[channel])
            if not 0 <= low <= high:
                raise ValueError(
                    f"bounds for {channel!r} must satisfy 0 <= low <= high, got {bounds[channel]}"
                )
            lows[j], highs[j] = low, min(high, float(total_budget))
        if lows.sum() > total_budget * (1 + 1e-9) or highs.sum() < total_budget * (1 - 1e-9):
            raise ValueError(
                f"total_budget {total_budget} cannot be met within bounds: the lows sum to "
                f"{lows.sum():g} and the highs to {highs.sum():g}"
            )
        return lows, highs

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the posterior, data and settings to one netCDF file (``load`` reads it)."""
        idata = self.idata.copy()
        idata.attrs = {**idata.attrs, _ATTRS_KEY: json.dumps(self.meta)}
        idata.to_netcdf(str(path))

    @classmethod
    def load(cls, path: str | Path) -> MMMResult:
        """Read a result written by :meth:`save`."""
        import arviz as az

        path = Path(path)
        if not path.exists():
            raise ValueError(f"no saved MMM result at {str(path)!r}")
        idata = az.from_netcdf(str(path))
        if _ATTRS_KEY not in idata.attrs:
            raise ValueError(f"{str(path)!r} was not written by MMMResult.save")
        meta = json.loads(idata.attrs[_ATTRS_KEY])
        return cls(idata=idata, meta=meta)

    def pymc_marketing_model(self) -> Any:
        """The pymc-marketing ``MMM`` with this posterior (rebuilt from ``idata`` if needed)."""
        if self.model is None:
            from pymc_marketing.mmm.multidimensional import MMM

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = MMM.load_from_idata(self.idata, check=False)
        return self.model


def _maximise_steady_state(
    result: MMMResult, total_budget: float, lows: np.ndarray, highs: np.ndarray
) -> np.ndarray:
    from scipy.optimize import minimize

    scale = total_budget

    def objective(share: np.ndarray) -> tuple[float, np.ndarray]:
        spend = share * scale
        value = result.steady_state_draws(spend).mean(axis=0).sum()
        grad = result._marginal_draws(spend).mean(axis=0) * scale
        return -float(value) / scale, -grad / scale

    x0 = np.clip(np.full(len(lows), 1.0 / len(lows)), lows / scale, highs / scale)
    x0 = x0 / x0.sum() if x0.sum() > 0 else x0
    solution = minimize(
        objective,
        x0,
        jac=True,
        method="SLSQP",
        bounds=list(zip(lows / scale, highs / scale, strict=True)),
        constraints=[
            {"type": "eq", "fun": lambda s: s.sum() - 1.0, "jac": lambda s: np.ones_like(s)}
        ],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    if not solution.success:
        raise ValueError(f"budget optimisation failed: {solution.message}")
    return np.clip(solution.x, lows / scale, highs / scale) * scale
