"""Synthetic control: exact recovery, the simplex QP, placebos, conformal inference, inputs."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from cfap_orchestration.causal.simulation.synthetic_control import SCENARIOS
from cfap_orchestration.causal.synthetic_control import (
    _Conformal,
    simplex_least_squares_qp,
    synthetic_control,
)

ARGS = {"outcome": "y", "unit": "unit", "time": "t", "treated_unit": "treated"}


def long_panel(y: np.ndarray, x: np.ndarray, times: list) -> pd.DataFrame:
    """Treated series y and donor matrix x (T x J) as a long panel; pandas infers the time type."""
    units = ["treated"] + [f"d{j}" for j in range(x.shape[1])]
    return pd.DataFrame(
        {
            "unit": np.repeat(units, len(times)),
            "t": list(times) * len(units),
            "y": np.column_stack([y, x]).T.ravel(),
        }
    )


def donors(rng: np.random.Generator, n_periods: int = 40, n_donors: int = 6) -> np.ndarray:
    factors = np.cumsum(rng.normal(size=(n_periods, 3)), axis=0)
    loadings = rng.uniform(0.2, 1.0, (n_donors, 3))
    return 20.0 + factors @ loadings.T + rng.normal(0.0, 1.0, (n_periods, n_donors))


def noisy_panel(seed: int = 0, n_pre: int = 30, n_post: int = 10, effect: float = 3.0):
    rng = np.random.default_rng(seed)
    x = donors(rng, n_pre + n_post)
    y = x[:, :3] @ np.array([0.5, 0.3, 0.2]) + rng.normal(0.0, 0.5, n_pre + n_post)
    y[n_pre:] += effect
    return long_panel(y, x, list(range(n_pre + n_post))), n_pre


# ---- point estimate and weights ---------------------------------------------------------------


def test_exact_convex_combination_recovers_weights_and_effect() -> None:
    rng = np.random.default_rng(1)
    x = donors(rng, 40, 8)
    truth = np.array([0.5, 0.0, 0.3, 0.0, 0.2, 0.0, 0.0, 0.0])
    y = x @ truth
    y[30:] += 2.5
    est = synthetic_control(long_panel(y, x, list(range(40))), **ARGS, treatment_start=30)
    weights = est.details["weights"].set_index("unit")["weight"]
    recovered = weights.reindex([f"d{j}" for j in range(8)]).to_numpy()
    np.testing.assert_allclose(recovered, truth, atol=1e-6)
    assert est.effect == pytest.approx(2.5, abs=1e-8)
    assert est.details["pre_rmspe"] < 1e-8
    assert est.ci_lower <= 2.5 <= est.ci_upper
    assert est.effect_relative == pytest.approx(2.5 / (x[30:] @ truth).mean(), rel=1e-8)


def test_two_donors_match_the_closed_form() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(25, 2)) + np.array([0.0, 3.0])
    y = 0.3 * x[:, 0] + 0.7 * x[:, 1] + rng.normal(0.0, 0.4, 25)
    est = synthetic_control(long_panel(y, x, list(range(25))), **ARGS, treatment_start=20)
    d = x[:20, 0] - x[:20, 1]
    w1 = np.clip((y[:20] - x[:20, 1]) @ d / (d @ d), 0.0, 1.0)
    weights = est.details["weights"].set_index("unit")["weight"]
    assert weights["d0"] == pytest.approx(w1, abs=1e-8)
    synthetic = x @ np.array([w1, 1 - w1])
    assert est.effect == pytest.approx((y[20:] - synthetic[20:]).mean(), abs=1e-8)


def test_qp_matches_slsqp_and_warm_starts() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        n_rows, n = int(rng.integers(5, 50)), int(rng.integers(2, 15))
        x, y = rng.normal(size=(n_rows, n)), rng.normal(size=n_rows)
        gram = x.T @ x + 1e-10 * np.eye(n)
        b = x.T @ y
        w = simplex_least_squares_qp(gram, b)
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-12)
        ref = optimize.minimize(
            lambda v, g=gram, c=b: 0.5 * v @ g @ v - c @ v,
            np.full(n, 1.0 / n),
            method="SLSQP",
            bounds=[(0, 1)] * n,
            constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        objective = 0.5 * w @ gram @ w - b @ w
        assert objective <= ref.fun + 1e-8 * (1 + abs(ref.fun))
        warm = simplex_least_squares_qp(gram, b + rng.normal(0, 0.1, n), w)
        cold = simplex_least_squares_qp(gram, b + 0.0 * warm)
        np.testing.assert_allclose(simplex_least_squares_qp(gram, b, warm), cold, atol=1e-10)


def test_tables_and_their_invariants() -> None:
    df, n_pre = noisy_panel()
    est = synthetic_control(df, **ARGS, treatment_start=n_pre)
    weights = est.details["weights"]
    assert list(weights.columns) == ["unit", "weight"]
    assert weights["weight"].is_monotonic_decreasing
    assert weights["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert (weights["weight"] >= 0).all()
    gap = est.details["gap"]
    assert list(gap.columns) == ["time", "treated", "synthetic", "gap", "is_post"]
    np.testing.assert_allclose(gap["gap"], gap["treated"] - gap["synthetic"], atol=1e-12)
    assert int(gap["is_post"].sum()) == 10 and est.details["n_post"] == 10
    assert est.effect == pytest.approx(gap.loc[gap["is_post"], "gap"].mean(), abs=1e-12)
    post_rmspe = np.sqrt((gap.loc[gap["is_post"], "gap"] ** 2).mean())
    pre_rmspe = np.sqrt((gap.loc[~gap["is_post"], "gap"] ** 2).mean())
    assert est.details["post_rmspe"] == pytest.approx(post_rmspe, rel=1e-12)
    assert est.details["rmspe_ratio"] == pytest.approx(post_rmspe / pre_rmspe, rel=1e-12)
    mean_synthetic = gap.loc[gap["is_post"], "synthetic"].mean()
    assert est.effect_relative == pytest.approx(est.effect / mean_synthetic, rel=1e-12)
    assert est.n_obs == 40 * 7 and est.method == "synthetic_control"
    assert est.effect == pytest.approx(3.0, abs=1.0)
    record = est.to_record()
    assert json.loads(record["diagnostics"])["n_donors"] == 6


def test_demeaned_control_handles_a_treated_unit_outside_the_hull() -> None:
    rng = np.random.default_rng(4)
    x = donors(rng, 40, 6)
    y = 0.6 * x[:, 0] + 0.4 * x[:, 1] + 100.0  # far above every donor
    y[30:] += 1.5
    df = long_panel(y, x, list(range(40)))
    est = synthetic_control(df, **ARGS, treatment_start=30, demean=True)
    weights = est.details["weights"].set_index("unit")["weight"]
    assert weights["d0"] == pytest.approx(0.6, abs=1e-6)
    assert weights["d1"] == pytest.approx(0.4, abs=1e-6)
    assert est.details["intercept"] == pytest.approx(100.0, abs=1e-6)
    assert est.effect == pytest.approx(1.5, abs=1e-8)
    assert est.method == "synthetic_control_demeaned"
    assert est.details["notes"] == []
    plain = synthetic_control(df, **ARGS, treatment_start=30)
    assert abs(plain.effect - 1.5) > 1.0  # the plain control cannot reach the level
    # The conformal refit has an intercept, so its interval still covers the truth; the
    # biased point estimate falls outside it and is flagged.
    assert plain.ci_lower <= 1.5 <= plain.ci_upper
    assert any("outside the conformal interval" in note for note in plain.details["notes"])


def test_fewer_pre_periods_than_donors_is_flagged() -> None:
    rng = np.random.default_rng(12)
    x = donors(rng, 30, 8)
    y = x[:, :2].mean(axis=1) + rng.normal(0.0, 0.3, 30)
    est = synthetic_control(long_panel(y, x, list(range(30))), **ARGS, treatment_start=5)
    assert est.details["weights"]["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert any("not identified" in note for note in est.details["notes"])


# ---- placebos ---------------------------------------------------------------------------------


def test_placebo_p_value_ranks_the_treated_ratio() -> None:
    df, n_pre = noisy_panel(effect=10.0)
    est = synthetic_control(df, **ARGS, treatment_start=n_pre)
    placebos = est.details["placebos"]
    assert list(placebos["unit"]) == [f"d{j}" for j in range(6)]
    assert (placebos["rmspe_ratio"] < est.details["rmspe_ratio"]).all()
    assert est.details["placebo_p_value"] == pytest.approx(1 / 7)

    # Refit one placebo by hand: donor d2 treated, the other donors as its pool.
    wide = df.pivot(index="t", columns="unit", values="y")
    target, pool = wide["d2"].to_numpy(), wide[[f"d{j}" for j in range(6) if j != 2]]
    hand = synthetic_control(
        pool.assign(d2=target).reset_index().melt(id_vars="t", var_name="unit", value_name="y"),
        **{**ARGS, "treated_unit": "d2"},
        treatment_start=n_pre,
    )
    row = placebos.set_index("unit").loc["d2"]
    assert row["pre_rmspe"] == pytest.approx(hand.details["pre_rmspe"], rel=1e-8)
    assert row["rmspe_ratio"] == pytest.approx(hand.details["rmspe_ratio"], rel=1e-8)


def test_placebo_filter_drops_poorly_fit_placebos() -> None:
    df, n_pre = noisy_panel(seed=5, effect=0.0)
    est = synthetic_control(df, **ARGS, treatment_start=n_pre, placebo_max_pre_rmspe=1.5)
    placebos = est.details["placebos"]
    limit = 1.5 * est.details["pre_rmspe"]
    np.testing.assert_array_equal(placebos["included"], placebos["pre_rmspe"] <= limit)
    kept = placebos.loc[placebos["included"], "rmspe_ratio"]
    expected = (1 + (kept >= est.details["rmspe_ratio"]).sum()) / (1 + len(kept))
    assert est.details["placebo_p_value"] == pytest.approx(expected)
    assert est.details["n_placebos_used"] == len(kept)


# ---- conformal inference ----------------------------------------------------------------------


def brute_force_p_value(y: np.ndarray, x: np.ndarray, post: np.ndarray, theta: float) -> float:
    """CWZ p(theta) with SLSQP over (weights, intercept) and an explicit loop over shifts."""
    y0 = y - theta * post
    n = x.shape[1]

    def loss(v: np.ndarray) -> float:
        return float(np.sum((y0 - v[-1] - x @ v[:-1]) ** 2))

    fit = optimize.minimize(
        loss,
        np.append(np.full(n, 1.0 / n), 0.0),
        method="SLSQP",
        bounds=[(0, 1)] * n + [(None, None)],
        constraints=[{"type": "eq", "fun": lambda v: v[:-1].sum() - 1}],
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    u = y0 - fit.x[-1] - x @ fit.x[:-1]
    post_idx = np.flatnonzero(post)
    stats = [abs(np.mean(u[(post_idx + j) % y.size])) for j in range(y.size)]
    return float(np.mean(np.array(stats) >= stats[0] - 1e-9))


def test_conformal_p_value_matches_a_brute_force_implementation() -> None:
    rng = np.random.default_rng(6)
    x = donors(rng, 24, 4)
    y = x[:, :2] @ np.array([0.7, 0.3]) + rng.normal(0.0, 0.7, 24)
    post = np.arange(24) >= 18
    y[post] += 1.0
    test = _Conformal(y, x, post)
    for theta in (-1.0, 0.0, 0.5, 1.0, 2.0, 4.0):
        assert test.p_value(theta) == pytest.approx(brute_force_p_value(y, x, post, theta))


def test_interval_is_the_inverted_conformal_test() -> None:
    df, n_pre = noisy_panel(seed=7, n_pre=40, n_post=12, effect=2.0)
    est = synthetic_control(df, **ARGS, treatment_start=n_pre)
    wide = df.pivot(index="t", columns="unit", values="y")
    y, x = wide["treated"].to_numpy(), wide[[f"d{j}" for j in range(6)]].to_numpy()
    test = _Conformal(y, x, np.arange(52) >= n_pre)
    delta = 1e-3
    assert test.p_value(est.ci_lower - delta) <= 0.05 < test.p_value(est.ci_lower + delta)
    assert test.p_value(est.ci_upper + delta) <= 0.05 < test.p_value(est.ci_upper - delta)
    assert est.p_value == pytest.approx(test.p_value(0.0))
    assert test.p_value(est.details["conformal"]["center"]) == 1.0
    assert est.ci_lower < est.effect < est.ci_upper
    half_width = (est.ci_upper - est.ci_lower) / 2
    assert est.std_error == pytest.approx(half_width / 1.959963984540054, rel=1e-9)
    assert est.details["conformal"]["n_permutations"] == 52


def test_too_few_periods_for_alpha_give_an_unbounded_interval() -> None:
    df, n_pre = noisy_panel(n_pre=12, n_post=4)
    est = synthetic_control(df, **ARGS, treatment_start=n_pre)  # 16 periods: p >= 1/16 > 0.05
    assert est.ci_lower == -np.inf and est.ci_upper == np.inf
    wider = synthetic_control(df, **ARGS, treatment_start=n_pre, alpha=0.2)
    assert np.isfinite(wider.ci_lower) and np.isfinite(wider.ci_upper)


# ---- time types -------------------------------------------------------------------------------


def test_time_types_give_the_same_answer() -> None:
    df, n_pre = noisy_panel(seed=8)
    base = synthetic_control(df, **ARGS, treatment_start=n_pre)
    first = date(2024, 6, 3)
    as_date = df.assign(t=[first + timedelta(days=int(t)) for t in df["t"]])
    start = first + timedelta(days=n_pre)
    as_datetime = as_date.assign(t=pd.to_datetime(as_date["t"]))
    as_objects = as_datetime.assign(t=as_datetime["t"].astype(object))
    for frame, start_value in (
        (as_objects, start.isoformat()),
        (as_date, start),
        (as_date, start.isoformat()),
        (as_datetime, start.isoformat()),
        (as_datetime, pd.Timestamp(start)),
    ):
        est = synthetic_control(frame, **ARGS, treatment_start=start_value)
        assert est.effect == pytest.approx(base.effect, abs=1e-12)
        assert est.ci_lower == pytest.approx(base.ci_lower, abs=1e-9)
        assert est.p_value == base.p_value


def test_donor_rows_outside_the_treated_window_are_ignored_and_counted() -> None:
    df, n_pre = noisy_panel(seed=9)
    extra = pd.DataFrame({"unit": ["d0", "d1"], "t": [40, 41], "y": [1.0, 2.0]})
    est = synthetic_control(pd.concat([df, extra]), **ARGS, treatment_start=n_pre)
    base = synthetic_control(df, **ARGS, treatment_start=n_pre)
    assert est.details["n_ignored_rows"] == 2
    assert est.effect == pytest.approx(base.effect, abs=1e-12)


# ---- input checks -----------------------------------------------------------------------------


@pytest.fixture()
def panel() -> pd.DataFrame:
    return noisy_panel(seed=10)[0]


def test_rejects_bad_frames(panel: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        synthetic_control([1, 2], **ARGS, treatment_start=30)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is empty"):
        synthetic_control(panel.iloc[:0], **ARGS, treatment_start=30)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['y'\]"):
        synthetic_control(panel.drop(columns="y"), **ARGS, treatment_start=30)
    with pytest.raises(ValueError, match="'y' has 1 missing"):
        synthetic_control(
            panel.assign(y=panel["y"].mask(panel.index == 3)), **ARGS, treatment_start=30
        )
    with pytest.raises(ValueError, match="infinite"):
        synthetic_control(
            panel.assign(y=panel["y"].mask(panel.index == 3, np.inf)), **ARGS, treatment_start=30
        )
    with pytest.raises(ValueError, match="must be numeric"):
        synthetic_control(panel.assign(y="a"), **ARGS, treatment_start=30)
    with pytest.raises(ValueError, match="duplicated"):
        synthetic_control(pd.concat([panel, panel.iloc[[5]]]), **ARGS, treatment_start=30)
    with pytest.raises(ValueError, match="zero variance"):
        synthetic_control(panel.assign(y=1.0), **ARGS, treatment_start=30)


def test_rejects_bad_units(panel: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="treated unit 'nope' is absent"):
        synthetic_control(panel, **{**ARGS, "treated_unit": "nope"}, treatment_start=30)
    one_donor = panel[panel["unit"].isin(["treated", "d0"])]
    with pytest.raises(ValueError, match="at least two donor units, got 1"):
        synthetic_control(one_donor, **ARGS, treatment_start=30)
    unbalanced = panel[~((panel["unit"] == "d3") & (panel["t"].isin([4, 5])))]
    with pytest.raises(ValueError, match=r"unbalanced panel: donor unit\(s\) 'd3' \(2 missing\)"):
        synthetic_control(unbalanced, **ARGS, treatment_start=30)


def test_rejects_bad_periods(panel: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no pre-period"):
        synthetic_control(panel, **ARGS, treatment_start=0)
    with pytest.raises(ValueError, match="at least 2 pre-periods, got 1"):
        synthetic_control(panel, **ARGS, treatment_start=1)
    with pytest.raises(ValueError, match="no post-period"):
        synthetic_control(panel, **ARGS, treatment_start=40)
    with pytest.raises(ValueError, match="treatment_start must be a number"):
        synthetic_control(panel, **ARGS, treatment_start="2024-01-01")
    dated = panel.assign(t=pd.Timestamp("2024-01-01") + pd.to_timedelta(panel["t"], unit="D"))
    with pytest.raises(ValueError, match="is not a date"):
        synthetic_control(dated, **ARGS, treatment_start="not a date")


def test_rejects_bad_options(panel: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        synthetic_control(panel, **ARGS, treatment_start=30, alpha=1.5)
    with pytest.raises(ValueError, match="placebo_max_pre_rmspe must be positive"):
        synthetic_control(panel, **ARGS, treatment_start=30, placebo_max_pre_rmspe=0.0)


# ---- performance and simulation -----------------------------------------------------------------


def test_twelve_units_by_a_hundred_days_is_fast() -> None:
    rng = np.random.default_rng(11)
    x = donors(rng, 100, 11)
    y = x[:, :4] @ np.full(4, 0.25) + rng.normal(0.0, 1.0, 100)
    df = long_panel(y, x, list(pd.date_range("2024-01-01", periods=100)))
    assert pd.api.types.is_datetime64_any_dtype(df["t"])
    started = time.perf_counter()
    synthetic_control(df, **ARGS, treatment_start="2024-03-01")
    synthetic_control(df, **ARGS, treatment_start="2024-03-01", demean=True)
    assert time.perf_counter() - started < 4.0  # two calls, each well under 2 s


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_simulation_study_fast(name: str) -> None:
    rng = np.random.default_rng(20240805)
    reps = [SCENARIOS[name](rng, scale="fast") for _ in range(50)]
    truth = np.mean([r.truth for r in reps])
    bias = np.mean([r.estimate.effect - r.truth for r in reps])
    coverage = np.mean([r.estimate.contains(r.truth) for r in reps])
    assert abs(bias) < 0.10 * abs(truth)
    assert coverage >= 0.85
