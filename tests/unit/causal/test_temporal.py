"""temporal_effects: agreement with statsmodels, exact recovery, input checks, simulation study."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.regression.linear_model import yule_walker

from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.causal.simulation.temporal import SCENARIOS
from cfap_orchestration.causal.temporal import TemporalEffects, temporal_effects

HOLIDAYS = ("01-01", "07-04", "11-28", "12-25")
LIFTS = {"holiday": 0.15, "Sun": -0.15, "Fri": 0.05, "black_friday_week": 0.30, "summer": 0.04}


def calendar(n_days: int, start: str = "2023-01-02") -> pd.DataFrame:
    days = pd.date_range(start, periods=n_days, freq="D")
    frame = pd.DataFrame({"date_day": days, "day_of_week": days.dayofweek + 1})
    frame["is_holiday"] = days.strftime("%m-%d").isin(HOLIDAYS)
    peak = np.full(n_days, None, dtype=object)
    peak[(days.month == 11) & (days.day >= 24)] = "black_friday_week"
    peak[(days.month == 7) & (days.day >= 10) & (days.day <= 20)] = "summer"
    frame["peak_season"] = peak
    return frame


def log_signal(frame: pd.DataFrame) -> np.ndarray:
    """The exact log-revenue of the calendar effects in LIFTS (trend 10 %/year, Fourier yearly)."""
    years = (frame["date_day"] - frame["date_day"].iloc[0]).dt.days.to_numpy() / 365.25
    phase = 2 * np.pi * (frame["date_day"].dt.dayofyear.to_numpy() - 1) / 365.25
    dow = frame["day_of_week"].to_numpy()
    peak = frame["peak_season"].to_numpy()
    return (
        math.log(10_000)
        + math.log(1.10) * years
        + 0.08 * np.sin(phase)
        - 0.05 * np.cos(2 * phase)
        + math.log1p(LIFTS["Sun"]) * (dow == 7)
        + math.log1p(LIFTS["Fri"]) * (dow == 5)
        + math.log1p(LIFTS["holiday"]) * frame["is_holiday"].to_numpy()
        + math.log1p(LIFTS["black_friday_week"]) * (peak == "black_friday_week")
        + math.log1p(LIFTS["summer"]) * (peak == "summer")
    )


def noisy(n_days: int = 800, seed: int = 0, phi: float = 0.4) -> pd.DataFrame:
    frame = calendar(n_days)
    rng = np.random.default_rng(seed)
    u = np.zeros(n_days)
    shocks = rng.normal(0, 0.06, n_days)
    for t in range(1, n_days):
        u[t] = phi * u[t - 1] + shocks[t]
    frame["revenue"] = np.exp(log_signal(frame) + u)
    frame["spend"] = np.exp(rng.normal(7, 0.3, n_days))
    return frame


def row(result: TemporalEffects, component: str, level: str) -> pd.Series:
    effects = result.effects
    match = effects[(effects["component"] == component) & (effects["level"] == level)]
    assert len(match) == 1
    return match.iloc[0]


# --- agreement with statsmodels and exact recovery -------------------------------------


def test_matches_statsmodels_hac_regression() -> None:
    df = noisy()
    df["log_spend"] = np.log1p(df["spend"])
    result = temporal_effects(df, controls=("log_spend",), errors="hac", hac_lags=9)

    ref = df.copy()
    ref["trend"] = np.arange(len(ref)) / 365.25
    phase = 2 * np.pi * (ref["date_day"].dt.dayofyear - 1) / 365.25
    for k in (1, 2, 3):
        ref[f"s{k}"], ref[f"c{k}"] = np.sin(k * phase), np.cos(k * phase)
    ref["hol"] = ref["is_holiday"].astype(int)
    ref["peak"] = ref["peak_season"].fillna("none")
    formula = (
        "np.log(revenue) ~ trend + C(day_of_week) + s1 + c1 + s2 + c2 + s3 + c3 + hol"
        " + C(peak, Treatment('none')) + log_spend"
    )
    fit = smf.ols(formula, data=ref).fit(
        cov_type="HAC", cov_kwds={"maxlags": 9, "use_correction": True}, use_t=True
    )
    q = stats.t.ppf(0.975, fit.df_resid)
    pairs = {
        ("holiday", "holiday"): "hol",
        ("day_of_week", "Sun"): "C(day_of_week)[T.7]",
        ("day_of_week", "Tue"): "C(day_of_week)[T.2]",
        ("trend", "per_year"): "trend",
        ("peak_season", "black_friday_week"): "C(peak, Treatment('none'))[T.black_friday_week]",
    }
    for (component, level), term in pairs.items():
        got = row(result, component, level)
        b, se = fit.params[term], fit.bse[term]
        assert got["effect"] == pytest.approx(math.expm1(b), abs=1e-10)
        assert got["std_error"] == pytest.approx(se, rel=1e-8)
        assert got["ci_lower"] == pytest.approx(math.expm1(b - q * se), abs=1e-10)
        assert got["ci_upper"] == pytest.approx(math.expm1(b + q * se), abs=1e-10)
        assert got["p_value"] == pytest.approx(fit.pvalues[term], rel=1e-8, abs=1e-300)
    coefficients = result.coefficients.set_index("term")
    assert coefficients.loc["control[log_spend]", "coefficient"] == pytest.approx(
        fit.params["log_spend"], rel=1e-8
    )
    assert result.diagnostics["r2"] == pytest.approx(fit.rsquared, rel=1e-10)
    assert result.diagnostics["hac_lags"] == 9


def reference_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    ref = df.copy()
    ref["trend"] = np.arange(len(ref)) / 365.25
    phase = 2 * np.pi * (ref["date_day"].dt.dayofyear - 1) / 365.25
    for k in (1, 2, 3):
        ref[f"s{k}"], ref[f"c{k}"] = np.sin(k * phase), np.cos(k * phase)
    ref["hol"] = ref["is_holiday"].astype(int)
    ref["peak"] = ref["peak_season"].fillna("none")
    formula = (
        "np.log(revenue) ~ trend + C(day_of_week) + s1 + c1 + s2 + c2 + s3 + c3 + hol"
        " + C(peak, Treatment('none'))"
    )
    return ref, formula


def test_ar_errors_match_statsmodels_glsar_at_the_final_rho() -> None:
    df = noisy(n_days=900, seed=12, phi=0.5)
    result = temporal_effects(df, ar_order=2)
    rho = np.array(result.diagnostics["ar_coefficients"])
    assert len(rho) == 2
    assert rho[0] == pytest.approx(0.5, abs=0.1)

    ref, formula = reference_frame(df)
    ols = smf.ols(formula, data=ref)
    glsar = sm.GLSAR(ols.endog, ols.exog, rho=rho).fit()
    names = list(ols.exog_names)
    # the final rho is the Yule-Walker (MLE) estimate from the final residuals y - X b
    resid = ols.endog - ols.exog @ glsar.params
    yw = yule_walker(resid, order=2, method="mle", demean=False, result_object=True)
    np.testing.assert_allclose(rho, yw.rho, atol=1e-7)
    q = stats.t.ppf(0.975, glsar.df_resid)
    for (component, level), term in {
        ("holiday", "holiday"): "hol",
        ("day_of_week", "Sun"): "C(day_of_week)[T.7]",
        ("trend", "per_year"): "trend",
        ("peak_season", "black_friday_week"): "C(peak, Treatment('none'))[T.black_friday_week]",
    }.items():
        j = names.index(term)
        got = row(result, component, level)
        b, se = glsar.params[j], glsar.bse[j]
        assert got["effect"] == pytest.approx(math.expm1(b), abs=1e-10)
        assert got["std_error"] == pytest.approx(se, rel=1e-8)
        assert got["ci_upper"] == pytest.approx(math.expm1(b + q * se), abs=1e-10)
        assert got["p_value"] == pytest.approx(
            2 * stats.t.sf(abs(b / se), glsar.df_resid), rel=1e-8, abs=1e-300
        )
    assert result.diagnostics["reference_distribution"] == f"t({int(glsar.df_resid)})"


def test_ar_order_is_chosen_by_aic_and_checked_by_ljung_box() -> None:
    result = temporal_effects(noisy(n_days=1096, seed=13, phi=0.5))
    diagnostics = result.diagnostics
    assert diagnostics["errors"] == "ar"
    assert 1 <= len(diagnostics["ar_coefficients"]) <= 7
    assert diagnostics["ar_coefficients"][0] == pytest.approx(0.5, abs=0.1)
    assert diagnostics["ljung_box_pvalue"] > 0.01  # AR(1) noise is whitened
    assert diagnostics["hac_lags"] is None
    assert diagnostics["inference"].startswith("feasible GLS with AR(")
    # an AR(1) fit to AR(2) noise leaves autocorrelation that Ljung-Box flags
    df = calendar(1096)
    rng = np.random.default_rng(14)
    u = np.zeros(1096)
    for t in range(2, 1096):
        u[t] = 0.1 * u[t - 1] + 0.6 * u[t - 2] + rng.normal(0, 0.05)
    df["revenue"] = np.exp(log_signal(df) + u)
    assert temporal_effects(df, ar_order=1).diagnostics["ljung_box_pvalue"] < 0.001
    assert temporal_effects(df).diagnostics["ljung_box_pvalue"] > 0.01


def test_ar_errors_are_more_efficient_than_ols_on_holidays() -> None:
    df = noisy(n_days=1096, seed=15, phi=0.6)
    gls = row(temporal_effects(df), "holiday", "holiday")
    ols = row(temporal_effects(df, errors="hac"), "holiday", "holiday")
    assert gls["std_error"] < ols["std_error"]


@pytest.mark.parametrize("errors", ["ar", "hac"])
def test_noise_free_data_recovers_every_lift_exactly(errors: str) -> None:
    df = calendar(900)
    df["revenue"] = np.exp(log_signal(df))
    result = temporal_effects(df, errors=errors)  # type: ignore[arg-type]
    assert row(result, "holiday", "holiday")["effect"] == pytest.approx(0.15, abs=1e-8)
    assert row(result, "day_of_week", "Sun")["effect"] == pytest.approx(-0.15, abs=1e-8)
    assert row(result, "day_of_week", "Fri")["effect"] == pytest.approx(0.05, abs=1e-8)
    assert row(result, "day_of_week", "Wed")["effect"] == pytest.approx(0.0, abs=1e-8)
    assert row(result, "trend", "per_year")["effect"] == pytest.approx(0.10, abs=1e-8)
    assert row(result, "peak_season", "black_friday_week")["effect"] == pytest.approx(
        0.30, abs=1e-8
    )
    assert row(result, "peak_season", "summer")["effect"] == pytest.approx(0.04, abs=1e-8)
    # the fitted yearly multiplier is the true Fourier curve
    season = result.seasonality.set_index("day_of_year")
    phase = 2 * np.pi * (season.index.to_numpy() - 1) / 365.25
    truth = np.exp(0.08 * np.sin(phase) - 0.05 * np.cos(2 * phase))
    np.testing.assert_allclose(season["multiplier"], truth, rtol=1e-8)
    np.testing.assert_allclose(result.fitted["fitted"], df["revenue"], rtol=1e-8)
    assert result.diagnostics["r2"] == pytest.approx(1.0, abs=1e-10)


def test_effect_in_outcome_units_is_observed_minus_counterfactual() -> None:
    df = noisy(seed=3)
    result = temporal_effects(df)
    holiday = row(result, "holiday", "holiday")
    on_days = df.loc[df["is_holiday"], "revenue"]
    lift = holiday["effect"]
    assert holiday["baseline_mean"] == pytest.approx(on_days.mean(), rel=1e-12)
    assert holiday["effect_abs"] == pytest.approx((on_days - on_days / (1 + lift)).mean())
    assert holiday["ci_lower_abs"] == pytest.approx(
        on_days.mean() * holiday["ci_lower"] / (1 + holiday["ci_lower"])
    )
    assert holiday["ci_lower_abs"] < holiday["effect_abs"] < holiday["ci_upper_abs"]
    trend = row(result, "trend", "per_year")
    assert trend["effect_abs"] == pytest.approx(df["revenue"].mean() * trend["effect"])
    assert set(result.effects["n_obs"]) == {len(df)}
    assert row(result, "day_of_week", "Sun")["n_days"] == (df["day_of_week"] == 7).sum()


def test_estimates_are_results_table_rows() -> None:
    result = temporal_effects(noisy(seed=4))
    estimates = result.estimates()
    assert len(estimates) == len(result.effects)
    assert {"holiday:holiday", "day_of_week:Sun", "trend:per_year"} <= set(estimates)
    holiday = estimates["holiday:holiday"]
    assert isinstance(holiday, EffectEstimate)
    assert holiday.method == "temporal_effects"
    table_row = row(result, "holiday", "holiday")
    assert holiday.effect == pytest.approx(table_row["effect_abs"])
    assert holiday.effect_relative == pytest.approx(table_row["effect"])
    assert holiday.contains(holiday.effect)
    # delta-method se on the outcome scale: mean(y) * exp(-b) * se(b)
    b = math.log1p(table_row["effect"])
    expected_se = table_row["baseline_mean"] * math.exp(-b) * table_row["std_error"]
    assert holiday.std_error == pytest.approx(expected_se, rel=1e-12)
    record = holiday.to_record()
    assert record["model_name"] == "temporal_effects"
    assert '"component": "holiday"' in record["diagnostics"]


def test_default_hac_lags_and_residual_diagnostics() -> None:
    df = noisy(n_days=1096, seed=5, phi=0.5)
    result = temporal_effects(df, errors="hac")
    assert result.diagnostics["hac_lags"] == 14
    assert result.diagnostics["errors"] == "hac"
    assert result.diagnostics["reference_distribution"] == f"t({1096 - len(result.coefficients)})"
    # DW ~ 2 (1 - rho) for AR(1) residuals
    assert 0.8 < result.diagnostics["durbin_watson"] < 1.3
    assert result.diagnostics["residual_autocorrelation_lag1"] == pytest.approx(0.5, abs=0.1)
    assert result.diagnostics["yearly_fourier_order"] == 3


def test_hac_widens_intervals_under_autocorrelation() -> None:
    df = noisy(seed=6, phi=0.7)
    wide = row(temporal_effects(df, errors="hac"), "peak_season", "black_friday_week")
    naive = row(temporal_effects(df, errors="hac", hac_lags=0), "peak_season", "black_friday_week")
    assert wide["std_error"] > 1.3 * naive["std_error"]


def test_unsorted_input_gives_the_same_answer() -> None:
    df = noisy(seed=7)
    shuffled = df.sample(frac=1.0, random_state=1)
    a, b = temporal_effects(df).effects, temporal_effects(shuffled).effects
    pd.testing.assert_frame_equal(a, b)


def test_short_series_drops_yearly_terms_and_says_so() -> None:
    df = noisy(n_days=200, seed=8)
    df = df[df["date_day"] <= "2023-07-05"].reset_index(drop=True)  # one holiday, no peak
    with pytest.warns(UserWarning, match="yearly Fourier terms dropped"):
        result = temporal_effects(df, peak_season=None)
    assert result.diagnostics["yearly_fourier_order"] == 0
    assert "dropped" in result.diagnostics["notes"][0]
    assert result.seasonality.empty
    assert "peak_season" not in set(result.effects["component"])


def test_day_of_week_can_be_derived_from_the_date() -> None:
    df = noisy(seed=9)
    a = temporal_effects(df).effects
    b = temporal_effects(df.drop(columns="day_of_week"), day_of_week=None).effects
    pd.testing.assert_frame_equal(a, b)


# --- input checks ------------------------------------------------------------------------


@pytest.fixture
def base() -> pd.DataFrame:
    return noisy(n_days=400, seed=10)


def test_rejects_missing_columns(base: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        temporal_effects(base.drop(columns="is_holiday"))
    with pytest.raises(ValueError, match="missing column"):
        temporal_effects(base, controls=("spend_tv",))


def test_rejects_nans(base: pd.DataFrame) -> None:
    bad = base.copy()
    bad.loc[3, "revenue"] = np.nan
    with pytest.raises(ValueError, match=r"'revenue' has 1 missing"):
        temporal_effects(bad)
    bad = base.copy()
    bad["date_day"] = bad["date_day"].astype(object)
    bad.loc[5, "date_day"] = None
    with pytest.raises(ValueError, match=r"'date_day' has 1 missing"):
        temporal_effects(bad)


def test_rejects_non_positive_outcome_with_count(base: pd.DataFrame) -> None:
    bad = base.copy()
    bad.loc[[1, 2], "revenue"] = 0.0
    bad.loc[3, "revenue"] = -5.0
    with pytest.raises(ValueError, match="3 non-positive"):
        temporal_effects(bad)


def test_rejects_too_few_days(base: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="only 20 days"):
        temporal_effects(base.iloc[:20], peak_season=None)


def test_rejects_duplicated_dates(base: pd.DataFrame) -> None:
    bad = pd.concat([base, base.iloc[[10]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 duplicated date\(s\), first 2023-01-12"):
        temporal_effects(bad)


def test_rejects_gaps_naming_the_first_missing_day(base: pd.DataFrame) -> None:
    bad = base.drop(index=[30, 31, 90])
    with pytest.raises(ValueError, match=r"3 missing day\(s\), first missing 2023-02-01"):
        temporal_effects(bad)


def test_rejects_non_iso_weekday(base: pd.DataFrame) -> None:
    bad = base.copy()
    bad["day_of_week"] = bad["date_day"].dt.dayofweek  # 0 = Monday
    with pytest.raises(ValueError, match="ISO"):
        temporal_effects(bad)


def test_rejects_times_of_day(base: pd.DataFrame) -> None:
    bad = base.copy()
    bad["date_day"] = bad["date_day"] + pd.Timedelta(hours=6)
    with pytest.raises(ValueError, match="times of day"):
        temporal_effects(bad)


def test_rejects_calendar_columns_without_contrast(base: pd.DataFrame) -> None:
    bad = base.assign(is_holiday=False)
    with pytest.raises(ValueError, match="marks no day"):
        temporal_effects(bad)
    with pytest.raises(ValueError, match="no peak-season day"):
        temporal_effects(base.assign(peak_season=None))
    with pytest.raises(ValueError, match="labels every day"):
        temporal_effects(base.assign(peak_season="always"))
    bad = base.assign(is_holiday=base["is_holiday"].astype(int) * 2)
    with pytest.raises(ValueError, match="0/1 or boolean"):
        temporal_effects(bad)


def test_rejects_collinear_regressors(base: pd.DataFrame) -> None:
    bad = base.assign(constant=1.0)
    with pytest.raises(ValueError, match=r"\['control\[constant\]'\] are collinear"):
        temporal_effects(bad, controls=("constant",))
    bad = base.assign(peak_season=base["is_holiday"].map({True: "holiday_only", False: None}))
    with pytest.raises(ValueError, match="collinear"):
        temporal_effects(bad)


def test_rejects_bad_settings(base: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="alpha"):
        temporal_effects(base, alpha=1.5)
    with pytest.raises(ValueError, match="hac_lags must be between"):
        temporal_effects(base, errors="hac", hac_lags=-1)
    with pytest.raises(ValueError, match="hac_lags applies to errors='hac'"):
        temporal_effects(base, hac_lags=7)
    with pytest.raises(ValueError, match="ar_order applies to errors='ar'"):
        temporal_effects(base, errors="hac", ar_order=2)
    with pytest.raises(ValueError, match="ar_order must be between 1 and"):
        temporal_effects(base, ar_order=0)
    with pytest.raises(ValueError, match="errors must be 'ar' or 'hac'"):
        temporal_effects(base, errors="newey")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="yearly_fourier_order"):
        temporal_effects(base, yearly_fourier_order=-1)
    with pytest.raises(ValueError, match="not one string"):
        temporal_effects(base, controls="spend")
    with pytest.raises(ValueError, match="must be numeric"):
        temporal_effects(base.assign(spend="x"), controls=("spend",))
    with pytest.raises(ValueError, match="pandas DataFrame"):
        temporal_effects(base.to_dict())  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    many = base.iloc[:30].assign(**{f"x{i}": rng.random(30) for i in range(15)})
    with pytest.raises(ValueError, match="30 days cannot support 23 regression terms"):
        temporal_effects(
            many, holiday=None, peak_season=None, controls=tuple(f"x{i}" for i in range(15))
        )


# --- simulation study --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_simulation_bias_and_coverage(name: str) -> None:
    rng = np.random.default_rng(2024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reps = [SCENARIOS[name](rng, scale="fast") for _ in range(50)]
    errors = np.array([r.estimate.effect - r.truth for r in reps])
    truth = np.mean([r.truth for r in reps])
    coverage = np.mean([r.estimate.contains(r.truth) for r in reps])
    assert abs(errors.mean()) < 0.10 * abs(truth)
    assert coverage >= 0.85
    # the reported standard errors match the spread of the estimates
    mean_se = np.mean([r.estimate.std_error for r in reps])
    assert 0.7 < mean_se / errors.std() < 1.4


def test_raw_scale_controls_match_statsmodels() -> None:
    df = noisy(seed=11)
    df["spend_raw"] = df["spend"] * 1e4  # badly scaled against the dummies
    result = temporal_effects(df, controls=("spend_raw",), errors="hac", hac_lags=14)
    coefficients = result.coefficients.set_index("term")
    ref = df.assign(trend=np.arange(len(df)) / 365.25, hol=df["is_holiday"].astype(int))
    phase = 2 * np.pi * (ref["date_day"].dt.dayofyear - 1) / 365.25
    for k in (1, 2, 3):
        ref[f"s{k}"], ref[f"c{k}"] = np.sin(k * phase), np.cos(k * phase)
    ref["peak"] = ref["peak_season"].fillna("none")
    fit = smf.ols(
        "np.log(revenue) ~ trend + C(day_of_week) + s1 + c1 + s2 + c2 + s3 + c3 + hol"
        " + C(peak, Treatment('none')) + spend_raw",
        data=ref,
    ).fit(cov_type="HAC", cov_kwds={"maxlags": 14, "use_correction": True}, use_t=True)
    assert coefficients.loc["control[spend_raw]", "coefficient"] == pytest.approx(
        fit.params["spend_raw"], rel=1e-8
    )
    assert coefficients.loc["control[spend_raw]", "std_error"] == pytest.approx(
        fit.bse["spend_raw"], rel=1e-8
    )
    assert coefficients.loc["holiday", "std_error"] == pytest.approx(fit.bse["hol"], rel=1e-8)


def test_fixed_ar_coefficients_reproduce_the_converged_fit() -> None:
    df = noisy(seed=3)
    fit = temporal_effects(df)
    rho = fit.diagnostics["ar_coefficients"]
    fixed = temporal_effects(df, ar_coefficients=rho)
    assert fixed.diagnostics["ar_coefficients"] == pytest.approx(rho)
    np.testing.assert_allclose(fixed.effects["effect"], fit.effects["effect"], atol=1e-6)
    with pytest.raises(ValueError, match="ar_coefficients fixes the AR errors"):
        temporal_effects(df, errors="hac", ar_coefficients=rho)
