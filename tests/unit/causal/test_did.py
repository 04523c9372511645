"""Difference-in-differences: agreement with statsmodels OLS, inference, input checks, sims."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from cfap_orchestration.causal.did import difference_in_differences
from cfap_orchestration.causal.simulation import did as did_simulation

TOL = 1e-8
D = "treated:post"


def _cross_section(seed: int = 1, n: int = 400) -> pd.DataFrame:
    """Repeated cross-sections: two groups x two periods, many rows per cell."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"group": rng.integers(0, 2, n), "period": rng.integers(0, 2, n)})
    df["treated"], df["post"] = df["group"], df["period"]
    df["x"] = rng.normal(size=n)
    df["z"] = rng.normal(size=n) + 0.3 * df["group"]
    df["cl"] = rng.integers(0, 15, n)
    df["y"] = (
        1 + 0.5 * df.treated + 0.3 * df.post + 2 * df.treated * df.post + 0.7 * df.x - 0.2 * df.z
    ) + rng.normal(size=n)
    return df


def _panel(
    seed: int = 3, n_units: int = 15, n_times: int = 12, first_post: int = 8, frac: float = 1.0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        list(itertools.product(range(n_units), range(n_times))), columns=["unit", "time"]
    )
    if frac < 1:
        df = df.sample(frac=frac, random_state=seed).reset_index(drop=True)
    df["treated"] = (df.unit < n_units // 3).astype(int)
    df["post"] = (df.time >= first_post).astype(int)
    df["x"] = rng.normal(size=len(df))
    df["y"] = (
        0.3 * df.unit + np.sin(df.time) + 1.5 * df.treated * df.post + 0.4 * df.x
    ) + rng.normal(size=len(df))
    return df


def _did(df: pd.DataFrame, **kwargs: object):  # type: ignore[no-untyped-def]
    args = {"outcome": "y", "unit": "unit", "time": "time", "treated": "treated", "post": "post"}
    args.update(kwargs)  # type: ignore[arg-type]
    return difference_in_differences(df, **args)  # type: ignore[arg-type]


def _assert_matches(result, model, name: str = D, se_factor: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    assert result.effect == pytest.approx(model.params[name], abs=TOL)
    assert result.std_error == pytest.approx(model.bse[name] * se_factor, abs=TOL)
    if se_factor == 1.0:
        ci = model.conf_int(alpha=result.alpha).loc[name]
        assert result.p_value == pytest.approx(model.pvalues[name], abs=TOL)
        assert result.ci_lower == pytest.approx(ci[0], abs=TOL)
        assert result.ci_upper == pytest.approx(ci[1], abs=TOL)


# ---- 2x2 design -------------------------------------------------------------------------


@pytest.mark.parametrize("covariates", [(), ("x",), ("x", "z")])
def test_2x2_equals_textbook_ols(covariates: tuple[str, ...]) -> None:
    df = _cross_section()
    result = _did(df, unit="group", time="period", covariates=covariates, alpha=0.1)
    formula = "y ~ treated + post + treated:post" + "".join(f" + {c}" for c in covariates)
    _assert_matches(result, smf.ols(formula, df).fit())
    assert result.details["design"] == "2x2"
    assert result.details["se_type"] == "classical"
    assert result.n_obs == len(df)


def test_2x2_clustered_equals_statsmodels_cr1_with_t_g_minus_1() -> None:
    df = _cross_section()
    result = _did(df, unit="group", time="period", covariates=["x"], cluster="cl")
    model = smf.ols("y ~ treated + post + treated:post + x", df).fit(
        cov_type="cluster", cov_kwds={"groups": df["cl"]}, use_t=True
    )
    _assert_matches(result, model)
    assert result.details["df"] == 14
    assert result.details["se_type"] == "CR1"


def test_many_units_two_periods_twfe_equals_difference_of_means() -> None:
    df = _panel(n_units=60, n_times=2, first_post=1)
    result = _did(df)
    assert result.details["design"] == "twfe"
    means = df.groupby(["treated", "post"])["y"].mean()
    by_hand = (means[1, 1] - means[1, 0]) - (means[0, 1] - means[0, 0])
    assert result.effect == pytest.approx(by_hand, abs=TOL)
    textbook = smf.ols("y ~ treated + post + treated:post", df).fit()
    assert result.effect == pytest.approx(textbook.params[D], abs=TOL)
    _assert_matches(result, smf.ols("y ~ treated:post + C(unit) + C(time)", df).fit())
    forced = _did(df, design="2x2")
    _assert_matches(forced, textbook)
    assert forced.details["design"] == "2x2"


def test_effect_relative_is_over_the_counterfactual_mean() -> None:
    df = _cross_section()
    result = _did(df, unit="group", time="period")
    treated_post = df.loc[(df.treated == 1) & (df.post == 1), "y"].mean()
    assert result.effect_relative == pytest.approx(result.effect / (treated_post - result.effect))
    assert result.details["counterfactual_mean"] == pytest.approx(treated_post - result.effect)


# ---- TWFE ---------------------------------------------------------------------------------


def test_twfe_unbalanced_panel_equals_ols_with_dummies() -> None:
    df = _panel(frac=0.85)
    result = _did(df, covariates=["x"])
    _assert_matches(result, smf.ols("y ~ treated:post + x + C(unit) + C(time)", df).fit())
    assert result.details["covariate_coefficients"]["x"] == pytest.approx(
        smf.ols("y ~ treated:post + x + C(unit) + C(time)", df).fit().params["x"], abs=TOL
    )
    assert result.details["n_params"] == 2 + 15 + 12 - 1


def test_twfe_cluster_cr1_counts_unit_fe_nested_in_clusters_once() -> None:
    df = _panel(frac=0.85)
    result = _did(df, covariates=["x"], cluster="unit")
    model = smf.ols("y ~ treated:post + x + C(unit) + C(time)", df).fit(
        cov_type="cluster", cov_kwds={"groups": df["unit"]}, use_t=True
    )
    n, k_areg = len(df), len(model.params)
    k_nested = 2 + 12  # regressors + intercept + 11 time effects; unit FE nested in clusters
    assert result.details["n_params"] == k_nested
    # statsmodels counts every dummy in K (areg); the nested convention differs only there
    _assert_matches(result, model, se_factor=math.sqrt((n - k_areg) / (n - k_nested)))
    assert result.details["df"] == 14
    assert result.details["n_clusters"] == 15


def test_twfe_cluster_not_nested_counts_all_fe() -> None:
    df = _panel(frac=0.9)
    df["region"] = (df["unit"] + df["time"]) % 4  # clusters cut across units and time
    result = _did(df, cluster="region")
    model = smf.ols("y ~ treated:post + C(unit) + C(time)", df).fit(
        cov_type="cluster", cov_kwds={"groups": df["region"]}, use_t=True
    )
    _assert_matches(result, model)


def test_event_study_unbinned_equals_ols() -> None:
    df = _panel(frac=0.9)
    rel = df.time - 8
    names = []
    for k in sorted(set(rel) - {-1}):
        name = f"e{k + 10}"
        df[name] = ((rel == k) & (df.treated == 1)).astype(int)
        names.append(name)
    model = smf.ols("y ~ " + " + ".join(names) + " + x + C(unit) + C(time)", df).fit()
    result = _did(df, covariates=["x"], event_window_bins=None)
    table = result.details["event_study"]
    assert table["relative_period"].tolist() == [k - 10 for k in range(2, 14) if k != 9]
    np.testing.assert_allclose(table["estimate"], model.params[names], atol=TOL)
    np.testing.assert_allclose(table["std_error"], model.bse[names], atol=TOL)
    np.testing.assert_allclose(table["p_value"], model.pvalues[names], atol=TOL)
    joint = model.f_test(", ".join(f"{n} = 0" for n in names if int(n[1:]) < 9))
    assert result.details["pre_trend_joint_p_value"] == pytest.approx(float(joint.pvalue), abs=TOL)


def test_event_study_bins_daily_data_into_weeks() -> None:
    df = _panel(n_units=12, n_times=84, first_post=56)
    table = _did(df, cluster="unit").details["event_study"]
    leads = table[table.period_last < 0]
    lags = table[table.period_first >= 0]
    assert len(leads) == 8 and len(lags) == 7
    assert leads.period_last.max() == -2 and leads.period_first.min() == -56
    assert set(leads.period_last - leads.period_first + 1) == {7, 6}  # 55 leads: 7 x 7 + 6
    assert set(lags.period_last - lags.period_first + 1) == {4}
    assert (table.relative_period == (table.period_first + table.period_last) / 2).all()


def test_binned_event_study_equals_ols_with_binned_dummies() -> None:
    df = _panel(n_units=10, n_times=20, first_post=12)
    rel = df.time - 12
    bins = [(-12, -11), (-10, -8), (-7, -5), (-4, -2), (0, 1), (2, 3), (4, 5), (6, 7)]
    names = []
    for i, (lo, hi) in enumerate(bins):
        df[f"b{i}"] = ((rel >= lo) & (rel <= hi) & (df.treated == 1)).astype(int)
        names.append(f"b{i}")
    model = smf.ols("y ~ " + " + ".join(names) + " + C(unit) + C(time)", df).fit()
    table = _did(df, event_window_bins=4).details["event_study"]
    assert list(zip(table.period_first, table.period_last, strict=True)) == bins
    np.testing.assert_allclose(table["estimate"], model.params[names], atol=TOL)


def test_linear_pre_trend_test_equals_ols_on_pre_rows() -> None:
    df = _panel(frac=0.9)
    pre = df[df.post == 0].copy()
    pre["trend"] = pre.treated * (pre.time - 8)
    model = smf.ols("y ~ trend + x + C(unit) + C(time)", pre).fit()
    result = _did(df, covariates=["x"])
    assert result.details["pre_trend_p_value"] == pytest.approx(model.pvalues["trend"], abs=TOL)


def test_pre_trend_test_detects_a_differential_trend() -> None:
    df = _panel(n_units=20, n_times=30, first_post=20, seed=5)
    df["y"] += 0.3 * df.treated * df.time
    details = _did(df, cluster="unit").details
    assert details["pre_trend_p_value"] < 1e-3
    clean = _did(_panel(n_units=20, n_times=30, first_post=20, seed=5), cluster="unit")
    assert clean.details["pre_trend_p_value"] > 0.05


def test_absorbs_many_units_without_dummies() -> None:
    rng = np.random.default_rng(0)
    n_units = 100_000
    unit = np.repeat(np.arange(n_units), 2)
    time = np.tile([0, 1], n_units)
    treated = (unit % 10 == 0).astype(int)
    y = rng.gamma(0.2, 50, n_units)[unit] + 0.5 * treated * time + rng.normal(size=2 * n_units)
    df = pd.DataFrame({"unit": unit, "time": time, "treated": treated, "post": time, "y": y})
    result = _did(df, cluster="unit")
    means = df.groupby(["treated", "post"])["y"].mean()
    assert result.effect == pytest.approx(
        (means[1, 1] - means[1, 0]) - (means[0, 1] - means[0, 0]), abs=TOL
    )
    diff = df.pivot(index="unit", columns="time", values="y").diff(axis=1)[1]
    first_difference = smf.ols("d ~ t", pd.DataFrame({"d": diff, "t": treated[::2]})).fit(
        cov_type="HC1"
    )  # with 2 periods, TWFE clustered by unit = first differences with HC1 (up to df)
    assert result.std_error == pytest.approx(first_difference.bse["t"], rel=1e-3)


# ---- units of unequal size --------------------------------------------------------------


def _multiplicative_panel(lift: float = -0.08) -> tuple[pd.DataFrame, float]:
    """Noise-free revenue = geo size x season, the treatment removing `lift` of it."""
    sizes = np.array([18.0, 13, 11, 10, 7, 6, 6, 5, 5, 5, 4, 5])
    season = 1 + 0.1 * np.sin(np.arange(60) / 9) + 0.03 * (np.arange(60) % 7 == 5)
    df = pd.DataFrame(list(itertools.product(range(12), range(60))), columns=["unit", "time"])
    df["treated"] = df.unit.isin([0, 2, 5]).astype(int)
    df["post"] = (df.time >= 40).astype(int)
    baseline = sizes[df.unit] * season[df.time]
    df["y"] = baseline * (1 + lift * df.treated * df.post)
    treated_post = (df.treated == 1) & (df.post == 1)
    return df, float(lift * baseline[treated_post].mean())


def test_scale_by_pre_mean_recovers_a_multiplicative_effect_exactly() -> None:
    df, truth = _multiplicative_panel()
    level = _did(df, cluster="unit")
    scaled = _did(df, cluster="unit", scale_by_pre_mean=True)
    assert scaled.effect == pytest.approx(truth, abs=1e-9)
    assert abs(level.effect - truth) > 0.05 * abs(truth)  # parallel trends fails in levels
    assert scaled.effect_relative == pytest.approx(-0.08, abs=1e-9)
    table = scaled.details["event_study"]
    assert np.allclose(table.loc[table.period_last < 0, "estimate"], 0.0, atol=1e-9)


def test_scale_by_pre_mean_is_the_fit_on_the_scaled_outcome_times_the_factor() -> None:
    df = _panel(frac=0.9)
    df["y"] += 20
    pre_mean = df[df.post == 0].groupby("unit")["y"].mean()
    manual = _did(df.assign(y=df.y / df.unit.map(pre_mean)), covariates=["x"], cluster="unit")
    scaled = _did(df, covariates=["x"], cluster="unit", scale_by_pre_mean=True)
    factor = df.unit.map(pre_mean)[(df.treated == 1) & (df.post == 1)].mean()
    assert scaled.details["scale_factor"] == pytest.approx(factor)
    assert scaled.details["effect_share_of_pre_mean"] == pytest.approx(manual.effect, abs=TOL)
    assert scaled.effect == pytest.approx(manual.effect * factor, abs=TOL)
    assert scaled.std_error == pytest.approx(manual.std_error * factor, abs=TOL)
    assert scaled.p_value == pytest.approx(manual.p_value, abs=TOL)
    np.testing.assert_allclose(
        scaled.details["event_study"]["ci_upper"],
        manual.details["event_study"]["ci_upper"] * factor,
        atol=TOL,
    )
    ri = _did(df, cluster="unit", scale_by_pre_mean=True, inference="randomization")
    ri_manual = _did(
        df.assign(y=df.y / df.unit.map(pre_mean)), cluster="unit", inference="randomization"
    )
    assert ri.ci_lower == pytest.approx(ri_manual.ci_lower * factor, rel=1e-6)
    assert ri.p_value == ri_manual.p_value


# ---- randomization inference ------------------------------------------------------------


def _small_geo_panel(seed: int = 11) -> pd.DataFrame:
    df = _panel(seed=seed, n_units=8, n_times=10, first_post=6)
    df["treated"] = df.unit.isin([1, 4, 6]).astype(int)
    df["y"] += 0.8 * df.treated * df.post
    return df


def _abs_t(y: np.ndarray, d: np.ndarray, unit: np.ndarray, time: np.ndarray) -> float:
    """|t| of d in OLS on unit and time dummies, sandwich clustered by unit (no factor: it
    is common to every assignment and cancels in the permutation ranking)."""
    x = np.column_stack([d, np.eye(unit.max() + 1)[unit], np.eye(time.max() + 1)[time][:, 1:]])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    bread = np.linalg.inv(x.T @ x)
    scores = np.vstack([x[unit == g].T @ (y - x @ beta)[unit == g] for g in np.unique(unit)])
    vcov = bread @ scores.T @ scores @ bread
    return abs(beta[0]) / math.sqrt(vcov[0, 0])


def _brute_force_p(df: pd.DataFrame, tau0: float) -> float:
    """Share of the 56 assignments whose |t| (outcome - tau0 D) is at least the observed."""
    unit, time, post = (df[c].to_numpy() for c in ("unit", "time", "post"))
    y = (df.y - tau0 * df.treated * df.post).to_numpy()
    observed = _abs_t(y, (df.treated * df.post).to_numpy(), unit, time)
    values = [
        _abs_t(y, np.isin(unit, c) * post, unit, time) for c in itertools.combinations(range(8), 3)
    ]
    return float(np.mean(np.array(values) >= observed * (1 - 1e-9)))


def test_randomization_p_value_and_interval_match_brute_force() -> None:
    df = _small_geo_panel()
    result = _did(df, cluster="unit", inference="randomization")
    assert result.details["randomization"]["n_assignments"] == 56
    assert result.details["randomization"]["exhaustive"]
    assert result.p_value == pytest.approx(_brute_force_p(df, 0.0), abs=1e-12)
    width = result.ci_upper - result.ci_lower
    for bound, outward in ((result.ci_lower, -1), (result.ci_upper, 1)):
        assert _brute_force_p(df, bound - outward * 1e-4 * width) > 0.05
        assert _brute_force_p(df, bound + outward * 1e-4 * width) <= 0.05
    assert result.details["se_type"] == "randomization"
    assert result.effect == pytest.approx(_did(df, cluster="unit").effect, abs=1e-12)
    pre = df[df.post == 0]
    unit, time, rel = (pre[c].to_numpy() for c in ("unit", "time", "time"))
    rel = rel - 6
    observed = _abs_t(pre.y.to_numpy(), (pre.treated * rel).to_numpy(), unit, time)
    values = [
        _abs_t(pre.y.to_numpy(), np.isin(unit, c) * rel, unit, time)
        for c in itertools.combinations(range(8), 3)
    ]
    pre_trend_p = float(np.mean(np.array(values) >= observed * (1 - 1e-9)))
    assert result.details["pre_trend_p_value"] == pytest.approx(pre_trend_p, abs=1e-12)
    assert "randomization" in result.details["pre_trend_test"]


def test_randomization_samples_assignments_when_there_are_many() -> None:
    df = _panel(n_units=30, n_times=8, first_post=5)
    result = _did(df, inference="randomization", n_permutations=300, seed=4)
    assert result.details["randomization"]["n_assignments"] == 300
    assert not result.details["randomization"]["exhaustive"]
    assert result.ci_lower < result.effect < result.ci_upper
    again = _did(df, inference="randomization", n_permutations=300, seed=4)
    assert (again.p_value, again.ci_lower) == (result.p_value, result.ci_lower)


# ---- input checks -----------------------------------------------------------------------


def _set(df: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    return df.assign(**columns)


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda d: d.drop(columns="y"), {}, "missing column"),
        (lambda d: _set(d, y=d.y.where(d.time != 3)), {}, "missing \\(NaN\\)"),
        (lambda d: _set(d, treated=d.treated * 2), {}, "must be 0/1"),
        (lambda d: _set(d, post=d.post + 1), {}, "must be 0/1"),
        (lambda d: _set(d, post=1), {}, "no pre-period rows"),
        (lambda d: _set(d, post=0), {}, "no post-period rows"),
        (lambda d: _set(d, treated=0), {}, "no treated units"),
        (lambda d: _set(d, treated=1), {}, "no control units"),
        (lambda d: d[~((d.treated == 1) & (d.post == 1))], {}, "zero on every row"),
        (lambda d: d[~((d.treated == 1) & (d.post == 0))], {}, "treated units have no pre"),
        (lambda d: d[~((d.treated == 0) & (d.post == 1))], {}, "control units have no post"),
        (lambda d: _set(d, y=3.0), {}, "outcome 'y' has zero variance"),
        (lambda d: pd.concat([d, d.head(2)]), {}, "duplicated"),
        (lambda d: _set(d, c=1.0), {"covariates": ["c"]}, "covariate 'c' has zero variance"),
        (lambda d: _set(d, c=d.unit * 1.0), {"covariates": ["c"]}, "covariate 'c' is collinear"),
        (lambda d: _set(d, c=2 * d.x), {"covariates": ["x", "c"]}, "covariate 'c' is collinear"),
        (lambda d: d, {"alpha": 1.5}, "alpha"),
        (lambda d: _set(d, one=1), {"cluster": "one"}, "at least 2 clusters"),
        (lambda d: _set(d, treated=(d.time > 5).astype(int)), {}, "constant within each"),
        (lambda d: _set(d, post=(d.time + d.unit > 10).astype(int)), {}, "common treatment"),
        (lambda d: d, {"design": "synthetic"}, "design must be"),
        (lambda d: d, {"event_window_bins": 0}, "event_window_bins"),
        (lambda d: d, {"inference": "bootstrap"}, "inference must be"),
        (lambda d: d, {"inference": "randomization", "design": "2x2"}, "needs design 'twfe'"),
        (lambda d: d[d.unit.isin([0, 5, 6, 7, 8])], {"inference": "randomization"}, "no p-value"),
        (lambda d: _set(d, time=d.time.astype(object).where(d.time > 0, "a")), {}, "sortable"),
        (lambda d: "not a frame", {}, "must be a pandas DataFrame"),
        (lambda d: _set(d, y=d.y - 100), {"scale_by_pre_mean": True}, "positive pre-period"),
        (
            lambda d: d[~((d.unit == 9) & (d.post == 0))],
            {"scale_by_pre_mean": True},
            "1 unit\\(s\\) have no pre-period rows",
        ),
    ],
)
def test_bad_input_raises_value_error(make, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        _did(make(_panel()), **kwargs)


def test_too_many_leads_for_the_clusters_gives_nan_joint_test_with_a_note() -> None:
    df = _panel(n_units=6, n_times=30, first_post=20)
    details = _did(df, cluster="unit", event_window_bins=None).details
    assert math.isnan(details["pre_trend_joint_p_value"])
    assert any("exceed G-1" in note for note in details["pre_trend_notes"])
    assert not math.isnan(details["pre_trend_p_value"])


def test_result_serializes() -> None:
    record = _did(_panel(), cluster="unit").to_record()
    assert record["model_name"] == "difference_in_differences"
    assert '"event_study"' in record["diagnostics"]


# ---- simulation study (fast) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "reps", "min_coverage"),
    [
        ("textbook_2x2", 60, 0.88),
        ("geo_panel_many_clusters", 50, 0.88),
        ("sandbox_geo_holdout", 50, 0.80),
        ("sandbox_geo_holdout_randomization", 50, 0.88),
        ("sandbox_geo_holdout_scaled", 50, 0.80),
        ("sandbox_geo_holdout_scaled_randomization", 50, 0.88),
    ],
)
def test_simulation_bias_and_coverage(scenario: str, reps: int, min_coverage: float) -> None:
    rng = np.random.default_rng(20240601)
    runs = [did_simulation.SCENARIOS[scenario](rng, scale="fast") for _ in range(reps)]
    errors = np.array([r.estimate.effect - r.truth for r in runs])
    truth = np.mean([r.truth for r in runs])
    coverage = np.mean([r.estimate.contains(r.truth) for r in runs])
    assert abs(errors.mean()) < 0.10 * abs(truth)
    assert coverage >= min_coverage
