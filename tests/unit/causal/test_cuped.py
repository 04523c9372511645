"""CUPED: theta, the adjusted difference, Welch inference, input checks and a simulation study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from cfap_orchestration.causal.cuped import cuped
from cfap_orchestration.causal.simulation import cuped as cuped_simulation

TOL = 1e-8


def _experiment(seed: int = 0, n: int = 2_000, rho: float = 0.6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, n)
    noise = rng.normal(0, 2, n)
    t = (rng.random(n) < 0.3).astype(int)
    y = 5 + rho * (x - 10) + np.sqrt(1 - rho**2) * noise + 0.4 * t
    return pd.DataFrame({"y": y, "x": x, "t": t})


def _run(df: pd.DataFrame, **kwargs: object):  # type: ignore[no-untyped-def]
    return cuped(df, outcome="y", covariate="x", treatment="t", **kwargs)  # type: ignore[arg-type]


def _adjusted(df: pd.DataFrame, theta: float) -> pd.Series:
    return df.y - theta * (df.x - df.x.mean())


def test_theta_is_the_pooled_ols_slope() -> None:
    df = _experiment()
    result = _run(df)
    assert result.details["theta"] == pytest.approx(smf.ols("y ~ x", df).fit().params["x"], abs=TOL)


def test_effect_is_the_difference_of_adjusted_means_with_welch_inference() -> None:
    df = _experiment()
    result = _run(df, alpha=0.1)
    y_adj = _adjusted(df, result.details["theta"])
    treated, control = y_adj[df.t == 1], y_adj[df.t == 0]
    assert result.effect == pytest.approx(treated.mean() - control.mean(), abs=TOL)
    assert result.effect == pytest.approx(
        smf.ols("y_adj ~ t", df.assign(y_adj=y_adj)).fit().params["t"], abs=TOL
    )
    welch = stats.ttest_ind(treated, control, equal_var=False)
    ci = welch.confidence_interval(confidence_level=0.9)
    assert result.p_value == pytest.approx(welch.pvalue, abs=TOL)
    assert (result.ci_lower, result.ci_upper) == pytest.approx((ci.low, ci.high), abs=TOL)
    se = np.sqrt(treated.var() / len(treated) + control.var() / len(control))
    assert result.std_error == pytest.approx(se, abs=TOL)
    assert result.details["df"] == pytest.approx(welch.df, abs=1e-6)


def test_zero_theta_reduces_to_the_plain_difference_in_means() -> None:
    df = _experiment()
    # a covariate orthogonal to the outcome in the sample: theta is exactly 0
    z = np.random.default_rng(1).normal(size=len(df))
    basis = np.column_stack([np.ones(len(df)), df.y])
    df["x"] = z - basis @ np.linalg.lstsq(basis, z, rcond=None)[0]
    result = _run(df)
    assert result.details["theta"] == pytest.approx(0.0, abs=1e-12)
    welch = stats.ttest_ind(df.y[df.t == 1], df.y[df.t == 0], equal_var=False)
    assert result.effect == pytest.approx(df.y[df.t == 1].mean() - df.y[df.t == 0].mean(), abs=TOL)
    assert result.effect == pytest.approx(result.details["unadjusted_effect"], abs=TOL)
    assert result.std_error == pytest.approx(result.details["unadjusted_std_error"], abs=TOL)
    assert result.p_value == pytest.approx(welch.pvalue, abs=TOL)
    assert result.details["variance_reduction"] == pytest.approx(0.0, abs=1e-12)


def test_relation_to_ancova_is_exact_up_to_the_slope_difference() -> None:
    """ANCOVA uses the within-arm slope, CUPED the pooled one; the gap is that difference
    times the covariate imbalance, exactly."""
    df = _experiment(n=5_000)
    result = _run(df)
    ancova = smf.ols("y ~ t + x", df).fit()
    imbalance = df.x[df.t == 1].mean() - df.x[df.t == 0].mean()
    theta_w, theta = ancova.params["x"], result.details["theta"]
    assert result.effect == pytest.approx(
        ancova.params["t"] + (theta_w - theta) * imbalance, abs=TOL
    )
    assert abs(result.effect - ancova.params["t"]) < 0.05 * result.std_error


def test_variance_reduction_is_rho_squared() -> None:
    df = _experiment(n=200_000, rho=0.6)
    result = _run(df)
    sample_rho = np.corrcoef(df.y, df.x)[0, 1]
    assert result.details["variance_reduction"] == pytest.approx(sample_rho**2, abs=1e-10)
    # population: rho^2 = 0.36 between y and x (the effect of t adds a little variance)
    assert result.details["variance_reduction"] == pytest.approx(0.36, abs=0.01)
    assert result.std_error < result.details["unadjusted_std_error"] * 0.82


def test_details_and_relative_effect() -> None:
    df = _experiment()
    result = _run(df)
    d = result.details
    control_mean = df.y[df.t == 0].mean()
    assert result.effect_relative == pytest.approx(result.effect / control_mean)
    assert d["relative_effect"] == result.effect_relative
    assert (d["n_treatment"], d["n_control"]) == ((df.t == 1).sum(), (df.t == 0).sum())
    assert d["mean_control"] == pytest.approx(control_mean)
    assert d["mean_adjusted_treatment"] - d["mean_adjusted_control"] == pytest.approx(result.effect)
    assert result.n_obs == len(df)
    assert result.method == "cuped"
    assert result.to_record()["model_name"] == "cuped"


def test_zero_control_mean_gives_no_relative_effect() -> None:
    df = pd.DataFrame(
        {"y": [-1.0, 1.0, -2.0, 2.0, 3.0, 4.0], "x": [1, 2, 3, 4, 5, 7], "t": [0, 0, 0, 0, 1, 1]}
    )
    result = _run(df)
    assert result.effect_relative is None


def test_treatment_may_be_boolean() -> None:
    df = _experiment()
    assert _run(df.assign(t=df.t == 1)).effect == pytest.approx(_run(df).effect, abs=1e-12)


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda d: d.drop(columns="x"), {}, "missing column"),
        (lambda d: d.assign(y=d.y.where(d.index != 3)), {}, "missing \\(NaN\\)"),
        (lambda d: d.assign(t=d.t * 2), {}, "must be 0/1"),
        (lambda d: d.assign(t=1), {}, "control arm .* has 0 row"),
        (lambda d: d[(d.t == 0) | (d.index == d.index[d.t == 1][0])], {}, "treatment arm .* 1 row"),
        (lambda d: d.assign(x=4.0), {}, "CUPED needs a covariate that varies"),
        (lambda d: d.assign(y=1.0), {}, "outcome 'y' has zero variance"),
        (lambda d: d.assign(x="a"), {}, "must be numeric"),
        (lambda d: d, {"alpha": 0.0}, "alpha"),
        (lambda d: d.iloc[0:0], {}, "empty"),
    ],
)
def test_bad_input_raises_value_error(make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        _run(make(_experiment(n=50)), **kwargs)


def test_simulation_bias_and_coverage() -> None:
    rng = np.random.default_rng(20240601)
    runs = [cuped_simulation.SCENARIOS["holdout_90_10"](rng, scale="fast") for _ in range(40)]
    errors = np.array([r.estimate.effect - r.truth for r in runs])
    truth = np.mean([r.truth for r in runs])
    coverage = np.mean([r.estimate.contains(r.truth) for r in runs])
    assert abs(errors.mean()) < 0.10 * abs(truth)
    assert coverage >= 0.88
    assert all(r.estimate.details["variance_reduction"] > 0 for r in runs)
