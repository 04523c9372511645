"""power_analysis and holdout_power: analytic agreement, calibration on fresh data, input checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from cfap_orchestration.causal.power import PowerResult, holdout_power, power_analysis
from cfap_orchestration.causal.simulation.temporal import simulate_geo_history

Z_SUM = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)


def iid_panel(seed: int, n_units: int = 40, n_days: int = 730, sd: float = 10.0) -> pd.DataFrame:
    """Every unit-day independent N(100, sd^2): the DID variance is known in closed form."""
    rng = np.random.default_rng(seed)
    y = 100 + sd * rng.standard_normal((n_units, n_days))
    return pd.DataFrame(
        {
            "unit": np.repeat([f"u{i}" for i in range(n_units)], n_days),
            "day": np.tile(np.arange(n_days), n_units),
            "y": y.ravel(),
        }
    )


def did_sd(n_treated: int, n_control: int, test_days: int, pre_days: int, cv: float) -> float:
    """Standard deviation of the relative DID estimate under i.i.d. noise (cv = sd / mean)."""
    return cv * math.sqrt((1 / n_treated + 1 / n_control) * (1 / test_days + 1 / pre_days))


@pytest.fixture(scope="module")
def geo_history() -> pd.DataFrame:
    return simulate_geo_history(np.random.default_rng(7), n_units=20, n_days=400)


def run(history: pd.DataFrame, **kwargs: object) -> PowerResult:
    return power_analysis(history, outcome="revenue", unit="geo_id", time="date_day", **kwargs)  # type: ignore[arg-type]


# --- the numbers -------------------------------------------------------------------------


def test_mde_matches_the_analytic_did_variance() -> None:
    result = power_analysis(
        iid_panel(0),
        outcome="y",
        unit="unit",
        time="day",
        n_treated=10,
        test_days=[14, 28],
        n_simulations=1000,
    )
    table = result.by_duration.set_index("test_days").astype(float).to_dict(orient="index")
    for days in (14, 28):
        analytic = Z_SUM * did_sd(10, 30, days, 56, 0.10)
        assert table[days]["mde_relative"] == pytest.approx(analytic, rel=0.10)
        # the placebo critical value is the normal one, z_{0.975} * sd
        critical = stats.norm.ppf(0.975) * did_sd(10, 30, days, 56, 0.10)
        assert table[days]["critical_value"] == pytest.approx(critical, rel=0.10)
        assert table[days]["mde_absolute"] == pytest.approx(
            table[days]["mde_relative"] * table[days]["baseline_mean"], rel=1e-12
        )
    assert result.test_days == 14
    assert result.mde_relative == table[14]["mde_relative"]
    assert table[28]["mde_relative"] < table[14]["mde_relative"]


def test_the_test_is_calibrated_on_fresh_data() -> None:
    """Critical value and MDE from one history; rejection rates on 600 fresh tests."""
    n_units, n_treated, pre, days = 30, 6, 56, 21
    result = power_analysis(
        iid_panel(1, n_units=n_units, n_days=500),
        outcome="y",
        unit="unit",
        time="day",
        n_treated=n_treated,
        test_days=days,
        pre_days=pre,
        n_simulations=1000,
    )
    critical = float(result.by_duration["critical_value"].iloc[0])
    rng = np.random.default_rng(99)

    def rejection_rate(effect: float) -> float:
        y = 100 + 10 * rng.standard_normal((600, n_units, pre + days))
        y[:, :n_treated, pre:] *= 1 + effect
        means_pre, means_post = y[:, :, :pre].mean(axis=2), y[:, :, pre:].mean(axis=2)
        t_pre, t_post = means_pre[:, :n_treated].mean(1), means_post[:, :n_treated].mean(1)
        c_pre, c_post = means_pre[:, n_treated:].mean(1), means_post[:, n_treated:].mean(1)
        counterfactual = t_pre + c_post - c_pre
        return float(np.mean(np.abs(t_post / counterfactual - 1) > critical))

    assert 0.02 <= rejection_rate(0.0) <= 0.09
    assert 0.68 <= rejection_rate(result.mde_relative) <= 0.92


def test_false_positive_rate_is_about_alpha(geo_history: pd.DataFrame) -> None:
    result = run(geo_history, n_treated=5, test_days=28, n_simulations=1000, seed=3)
    assert 0.025 <= result.false_positive_rate <= 0.08
    assert result.power_at(0.0) == result.false_positive_rate
    curve = result.power_curve
    assert curve.loc[curve["effect"] == 0, "power"].iloc[0] == result.false_positive_rate
    # power rises with the effect
    powers = curve.sort_values("effect")["power"].to_numpy()
    assert powers[-1] == 1.0
    assert np.all(np.diff(powers) >= -0.02)


def test_injected_effect_is_the_did_of_the_multiplied_panel(geo_history: pd.DataFrame) -> None:
    result = run(geo_history, n_treated=4, test_days=14, pre_days=28, n_simulations=100)
    replays, _ = result.replays[14]
    wide = geo_history.pivot(index="geo_id", columns="date_day", values="revenue")
    effect = 0.07
    for i in range(5):
        start, treated = int(replays.starts[i]), replays.treated[i]
        panel = wide.to_numpy().copy()
        panel[treated, start : start + 14] *= 1 + effect
        pre = panel[:, start - 28 : start].mean(axis=1)
        post = panel[:, start : start + 14].mean(axis=1)
        gap = (post[treated].mean() - pre[treated].mean()) - (
            post[~treated].mean() - pre[~treated].mean()
        )
        counterfactual = post[treated].mean() - gap
        relative = gap / counterfactual
        assert relative == pytest.approx(replays.r0[i] + effect * replays.k[i], abs=1e-12)
        assert counterfactual == pytest.approx(replays.counterfactual[i], rel=1e-12)
    assert set(replays.treated.sum(axis=1)) == {4}


def test_mde_is_where_power_reaches_the_target(geo_history: pd.DataFrame) -> None:
    result = run(geo_history, n_treated=5, test_days=21, power=0.8)
    assert result.power_at(result.mde_relative * (1 + 1e-9)) >= 0.8
    assert result.power_at(result.mde_relative * (1 - 1e-6)) < 0.8
    assert result.mde_absolute == pytest.approx(
        result.mde_relative * result.by_duration["baseline_mean"].iloc[0]
    )
    assert result.power_at_effect is None
    assert result.reaches_power is None


def test_shortest_duration_reaching_power(geo_history: pd.DataFrame) -> None:
    durations = [7, 14, 28, 56]
    result = run(geo_history, n_treated=6, test_days=durations, effect=0.06)
    power = result.by_duration.set_index("test_days")["power_at_effect"].astype(float).to_dict()
    enough = [d for d in durations if power[d] >= 0.8]
    assert result.reaches_power is True
    assert result.test_days == min(enough)
    assert result.power_at_effect == power[result.test_days]
    tiny = run(geo_history, n_treated=6, test_days=[7, 14], effect=0.001)
    assert tiny.reaches_power is False
    assert tiny.test_days == 14


def test_negative_effect_gives_a_negative_mde(geo_history: pd.DataFrame) -> None:
    result = run(geo_history, n_treated=5, test_days=28, effect=-0.05)
    assert result.mde_relative < 0
    assert result.mde_absolute < 0
    assert result.power_at(result.mde_relative * (1 + 1e-9)) >= 0.8
    assert (result.power_curve["effect"] <= 0).all()


def test_fixed_treated_set_and_reproducibility(geo_history: pd.DataFrame) -> None:
    treated = ["G01", "G05", "G09"]
    a = run(geo_history, treated_units=treated, test_days=14)
    b = run(geo_history, treated_units=treated, test_days=14)
    pd.testing.assert_frame_equal(a.by_duration, b.by_duration)
    replays, _ = a.replays[14]
    units = sorted(geo_history["geo_id"].unique())
    assert [units[j] for j in np.flatnonzero(replays.treated[0])] == treated
    assert (replays.treated == replays.treated[0]).all()
    c = run(geo_history, treated_units=treated, test_days=14, seed=1)
    assert c.mde_relative != a.mde_relative
    assert a.treated_units == tuple(treated)


# --- input checks ------------------------------------------------------------------------


def test_rejects_bad_settings(geo_history: pd.DataFrame) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"estimator": "sc"}, "estimator"),
        ({"power": 1.2}, "power must be between 0 and 1"),
        ({"power": 0.04}, "must exceed alpha"),
        ({"alpha": 0.0}, "alpha"),
        ({"n_simulations": 50}, "use at least 100"),
        ({"pre_days": 0}, "pre_days"),
        ({"effect": -1.0}, "must be > -1"),
        ({"test_days": []}, "test_days is empty"),
        ({"test_days": [0, 14]}, "positive whole days"),
        ({"test_days": 7.5}, "positive whole days"),
    ]
    for overrides, message in cases:
        kwargs: dict[str, object] = {"n_treated": 5, "test_days": 14}
        kwargs.update(overrides)
        with pytest.raises(ValueError, match=message):
            run(geo_history, **kwargs)


def test_rejects_bad_history(geo_history: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="missing column"):
        run(geo_history.drop(columns="revenue"), n_treated=5, test_days=14)
    bad = geo_history.copy()
    bad.loc[[3, 4], "revenue"] = np.nan
    with pytest.raises(ValueError, match=r"'revenue' has 2 missing"):
        run(bad, n_treated=5, test_days=14)
    with pytest.raises(ValueError, match=r"1 duplicated unit-day row\(s\), first \['G00'"):
        run(pd.concat([geo_history, geo_history.iloc[[0]]]), n_treated=5, test_days=14)
    with pytest.raises(ValueError, match=r"unbalanced: 1 unit-day\(s\) missing"):
        run(geo_history.drop(index=[10]), n_treated=5, test_days=14)
    days = geo_history["date_day"].unique()
    gap = geo_history[geo_history["date_day"] != days[100]]
    with pytest.raises(ValueError, match=f"first missing day {pd.Timestamp(days[100]).date()}"):
        run(gap, n_treated=5, test_days=14)
    with pytest.raises(ValueError, match="zero variance"):
        run(geo_history.assign(revenue=1.0), n_treated=5, test_days=14)
    with pytest.raises(ValueError, match="not positive"):
        run(geo_history.assign(revenue=geo_history["revenue"] - 1500), n_treated=5, test_days=14)


def test_rejects_bad_treatment(geo_history: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="give treated_units"):
        run(geo_history, test_days=14)
    with pytest.raises(ValueError, match=r"\['XX'\] are absent"):
        run(geo_history, treated_units=["G01", "XX"], test_days=14)
    with pytest.raises(ValueError, match="more than once"):
        run(geo_history, treated_units=["G01", "G01"], test_days=14)
    with pytest.raises(ValueError, match="n_treated=3 but 2"):
        run(geo_history, treated_units=["G01", "G02"], n_treated=3, test_days=14)
    with pytest.raises(ValueError, match="not one string"):
        run(geo_history, treated_units="G01", test_days=14)
    with pytest.raises(ValueError, match="19 treated of 20 units: need at least 1 treated and 2"):
        run(geo_history, n_treated=19, test_days=14)
    with pytest.raises(ValueError, match="need at least 1 treated"):
        run(geo_history, n_treated=0, test_days=14)


def test_rejects_short_history(geo_history: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"history has 400 days; .* needs at least 456"):
        run(geo_history, n_treated=5, test_days=[14, 400])
    first_days = geo_history[geo_history["date_day"] < pd.Timestamp("2023-03-31")]
    with pytest.raises(ValueError, match=r"only 20 distinct placebo tests \(20 start days"):
        run(first_days, treated_units=["G01"], test_days=14)


# --- user-level holdout ------------------------------------------------------------------


def outcome_sample() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.exponential(60.0, 5000) * (rng.random(5000) < 0.25)


def test_holdout_mde_matches_statsmodels() -> None:
    sample = outcome_sample()
    result = holdout_power(sample, holdout_share=0.1, n_users=200_000, alpha=0.05, power=0.8)
    assert (result.n_holdout, result.n_exposed) == (20_000, 180_000)
    d = NormalIndPower().solve_power(
        effect_size=None, nobs1=180_000, ratio=20_000 / 180_000, alpha=0.05, power=0.8
    )
    sd = sample.std(ddof=1)
    # statsmodels' power at our MDE is the target; its own root finder agrees to its tolerance
    at_mde = NormalIndPower().power(
        effect_size=result.mde_absolute / sd, nobs1=180_000, ratio=20_000 / 180_000, alpha=0.05
    )
    assert at_mde == pytest.approx(0.8, abs=1e-10)
    assert result.mde_absolute == pytest.approx(d * sd, rel=1e-4)
    assert result.mde_relative == pytest.approx(result.mde_absolute / sample.mean(), rel=1e-12)
    # textbook (z_{1-alpha/2} + z_power) * se, the other tail being negligible
    assert result.mde_absolute == pytest.approx(Z_SUM * result.std_error, rel=1e-5)
    assert result.std_error == pytest.approx(sd * math.sqrt(1 / 20_000 + 1 / 180_000))


def test_holdout_cuped_and_sample_size() -> None:
    sample = outcome_sample()
    plain = holdout_power(sample, holdout_share=0.2, n_users=50_000)
    cuped = holdout_power(sample, holdout_share=0.2, n_users=50_000, cuped_correlation=0.6)
    assert cuped.mde_absolute == pytest.approx(plain.mde_absolute * 0.8, rel=1e-12)
    assert cuped.variance_reduction == pytest.approx(0.36)
    planned = holdout_power(sample, holdout_share=0.2, n_users=50_000, effect=0.05)
    n = planned.required_n_users
    assert n is not None
    at_n = holdout_power(sample, holdout_share=0.2, n_users=n, effect=0.05)
    below = holdout_power(sample, holdout_share=0.2, n_users=n - 50, effect=0.05)
    assert at_n.power_at_effect is not None and below.power_at_effect is not None
    assert at_n.power_at_effect == pytest.approx(0.8, abs=0.002)
    assert below.power_at_effect < 0.8
    analytic = NormalIndPower().power(
        effect_size=0.05 * sample.mean() / sample.std(ddof=1),
        nobs1=40_000,
        ratio=0.25,
        alpha=0.05,
    )
    assert planned.power_at_effect == pytest.approx(analytic, rel=1e-10)


def test_holdout_rejects_bad_input() -> None:
    sample = outcome_sample()
    cases = [
        ({"holdout_share": 0.0}, "holdout_share"),
        ({"holdout_share": 1.0}, "holdout_share"),
        ({"n_users": 10, "holdout_share": 0.05}, "each arm needs at least 2"),
        ({"cuped_correlation": 1.0}, "cuped_correlation"),
        ({"power": 0.01}, "power must be between"),
        ({"alpha": 1.0}, "alpha"),
        ({"effect": 0.0}, "non-zero"),
    ]
    for overrides, message in cases:
        kwargs: dict[str, object] = {"holdout_share": 0.1, "n_users": 10_000, **overrides}
        with pytest.raises(ValueError, match=message):
            holdout_power(sample, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 missing"):
        holdout_power(np.append(sample, np.nan), holdout_share=0.1, n_users=1000)
    with pytest.raises(ValueError, match="at least 2 users"):
        holdout_power([5.0], holdout_share=0.1, n_users=1000)
    with pytest.raises(ValueError, match="zero variance"):
        holdout_power(np.ones(100), holdout_share=0.1, n_users=1000)
    with pytest.raises(ValueError, match="positive sample mean"):
        holdout_power(-sample - 1, holdout_share=0.1, n_users=1000, effect=0.05)
