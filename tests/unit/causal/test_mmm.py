"""Bayesian MMM: one small fit on simulated weekly data with a known truth, checked for
shapes, interval ordering, agreement with a numpy re-implementation of the model, budget
optimality, save/load, every input error, and that importing the module stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cfap_orchestration.causal import mmm as mmm_module
from cfap_orchestration.causal.mmm import MMMResult, fit_mmm, hdi, logistic_saturation

CHANNELS = ["tv", "search"]
LAG = 4
ALPHA = {"tv": 0.4, "search": 0.1}
LAM = {"tv": 2.0, "search": 1.5}  # per unit of (spend / channel's max spend)
BETA = {"tv": 12000.0, "search": 5000.0}  # ceiling per week, target units


def _adstock(x: np.ndarray, alpha: float, lag: int) -> np.ndarray:
    weights = alpha ** np.arange(lag)
    weights = weights / weights.sum()
    return np.convolve(x, weights)[: len(x)]


def _curve(channel: str, spend: np.ndarray, max_spend: float) -> np.ndarray:
    return BETA[channel] * logistic_saturation(LAM[channel] * spend / max_spend)


def simulate(n_weeks: int = 70, seed: int = 3) -> tuple[pd.DataFrame, dict[str, float]]:
    """Weekly sales = baseline + trend + two adstocked, saturating channels + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_weeks)
    flight_on = (t % 9) < 6  # TV runs six weeks on, three off
    spend = {
        "tv": 3000 * flight_on * rng.lognormal(0, 0.3, n_weeks),
        "search": 1500 * rng.lognormal(0, 0.5, n_weeks),
    }
    contribution = {
        c: _curve(c, _adstock(spend[c], ALPHA[c], LAG), spend[c].max()) for c in CHANNELS
    }
    sales = 30000 + 40 * t + sum(contribution.values()) + rng.normal(0, 500, n_weeks)
    frame = pd.DataFrame(
        {
            "week": pd.date_range("2022-01-03", periods=n_weeks, freq="7D").astype(str),
            **spend,
            "sales": sales,
            "trend": t.astype(float),
        }
    )
    roas = {c: float(contribution[c].sum() / spend[c].sum()) for c in CHANNELS}
    return frame, roas


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, dict[str, float]]:
    return simulate()


@pytest.fixture(scope="module")
def lift(data: tuple[pd.DataFrame, dict[str, float]]) -> pd.DataFrame:
    """A holdout that switched TV off for a while: the true steady-state loss, 10% s.e."""
    frame, _ = data
    x = float(frame["tv"].mean())
    loss = float(_curve("tv", np.array([x]), frame["tv"].max())[0])
    return pd.DataFrame(
        {"channel": ["tv"], "x": [x], "delta_x": [-x], "delta_y": [-loss], "sigma": [0.1 * loss]}
    )


@pytest.fixture(scope="module")
def result(data: tuple[pd.DataFrame, dict[str, float]], lift: pd.DataFrame) -> MMMResult:
    frame, _ = data
    return fit_mmm(
        frame,
        date="week",
        channels=CHANNELS,
        target="sales",
        controls=["trend"],
        adstock_max_lag=LAG,
        yearly_seasonality=1,
        draws=100,
        tune=200,
        chains=2,
        random_seed=1,
        lift_tests=lift,
    )


def _assert_ordered(frame: pd.DataFrame, low: str = "hdi_low", high: str = "hdi_high") -> None:
    assert (frame[low] <= frame["mean"] + 1e-12).all()
    assert (frame["mean"] <= frame[high] + 1e-12).all()


# ---- outputs ---------------------------------------------------------------------------


def test_channel_roas_shape_order_and_recovery(
    result: MMMResult, data: tuple[pd.DataFrame, dict[str, float]]
) -> None:
    frame, truth = data
    roas = result.channel_roas()
    assert list(roas.columns[:4]) == ["channel", "mean", "hdi_low", "hdi_high"]
    assert roas["channel"].tolist() == CHANNELS
    _assert_ordered(roas)
    np.testing.assert_allclose(roas["spend"], frame[CHANNELS].sum().to_numpy(), rtol=1e-12)
    stats = {k: dict(zip(roas["channel"], roas[k].to_numpy(), strict=True)) for k in roas}
    for channel in CHANNELS:
        # Loose: 100 draws on 70 weeks. TV is calibrated by the lift test.
        assert 0.5 < stats["mean"][channel] / truth[channel] < 1.5, (channel, stats, truth)
    assert stats["hdi_low"]["tv"] <= truth["tv"] <= stats["hdi_high"]["tv"]


def test_contributions_long_frame_matches_roas(result: MMMResult) -> None:
    contrib = result.contributions()
    n_weeks = len(result.dates)
    assert len(contrib) == n_weeks * len(CHANNELS)
    assert list(contrib.columns) == ["date", "channel", "spend", "mean", "hdi_low", "hdi_high"]
    assert contrib["channel"].tolist()[:2] == CHANNELS
    _assert_ordered(contrib)
    totals = contrib.groupby("channel", sort=False)[["mean", "spend"]].sum()
    roas = result.channel_roas().set_index("channel")
    # Spend is fixed, so the mean of the per-draw ratio is the ratio of the means.
    np.testing.assert_allclose(totals["mean"] / totals["spend"], roas["mean"], rtol=1e-10)


def test_contributions_equal_numpy_reimplementation(result: MMMResult) -> None:
    """Normalised geometric adstock, then logistic saturation, on spend / max spend."""
    post = result.idata["posterior"]
    spend = result.spend.to_numpy()
    draws = result.contribution_draws()
    scale = result.channel_scale
    np.testing.assert_allclose(scale, spend.max(axis=0), rtol=1e-12)
    for k, (chain, draw) in enumerate([(0, 0), (1, 57), (0, 99)]):
        sample = chain * post.sizes["draw"] + draw
        for j, channel in enumerate(CHANNELS):
            pick = {"chain": chain, "draw": draw, "channel": channel}
            alpha = float(post["adstock_alpha"].sel(pick))
            lam = float(post["saturation_lam"].sel(pick))
            beta = float(post["saturation_beta"].sel(pick))
            expected = (
                result.target_scale
                * beta
                * logistic_saturation(lam * _adstock(spend[:, j] / scale[j], alpha, LAG))
            )
            np.testing.assert_allclose(draws[sample, :, j], expected, rtol=1e-8, err_msg=str(k))


def test_response_curves(result: MMMResult) -> None:
    curves = result.response_curves(n_points=25)
    assert len(curves) == 25 * len(CHANNELS)
    assert list(curves.columns) == [
        "channel",
        "spend",
        "mean",
        "hdi_low",
        "hdi_high",
        "marginal_roas",
    ]
    _assert_ordered(curves)
    for channel, curve in curves.groupby("channel"):
        assert curve["spend"].iloc[0] == 0.0 and curve["mean"].iloc[0] == 0.0
        assert curve["spend"].iloc[-1] == pytest.approx(2 * result.spend[channel].max())
        assert (np.diff(curve["mean"]) > 0).all()  # more spend, more contribution
        assert (np.diff(curve["marginal_roas"]) < 0).all()  # diminishing returns
    # marginal ROAS is the slope of the mean curve
    fine = result.response_curves(n_points=400)
    for _, curve in fine.groupby("channel"):
        slope = np.gradient(curve["mean"].to_numpy(), curve["spend"].to_numpy())
        np.testing.assert_allclose(slope[1:-1], curve["marginal_roas"].iloc[1:-1], rtol=1e-3)
    with pytest.raises(ValueError, match="n_points"):
        result.response_curves(n_points=1)


def test_diagnostics(result: MMMResult) -> None:
    diag = result.diagnostics()
    for key in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "sampling_seconds"):
        assert isinstance(diag[key], float) and np.isfinite(diag[key]), key
    assert isinstance(diag["divergences"], int) and diag["divergences"] >= 0
    assert diag["sampling_seconds"] > 0
    assert diag["r_hat_max"] >= 0.99 and diag["ess_bulk_min"] > 0
    assert (diag["chains"], diag["draws"], diag["n_obs"]) == (2, 100, 70)
    table = diag["per_variable"]
    assert {"saturation_beta", "saturation_lam", "adstock_alpha"} <= set(table["variable"])
    assert diag["r_hat_max"] == pytest.approx(table["r_hat_max"].max())


def test_lift_test_enters_the_likelihood(result: MMMResult) -> None:
    assert "lift_measurements" in result.idata["observed_data"]
    assert result.meta["n_lift_tests"] == 1


# ---- budget ----------------------------------------------------------------------------


def _expected_total(result: MMMResult, spend: np.ndarray) -> float:
    return float(result.steady_state_draws(spend).mean(axis=0).sum())


@pytest.mark.parametrize("total", [3500.0, 20000.0])
def test_optimize_budget_total_and_optimality(result: MMMResult, total: float) -> None:
    plan = result.optimize_budget(total, method="steady_state")
    assert list(plan.columns[:6]) == [
        "channel",
        "current_spend",
        "optimal_spend",
        "expected_contribution",
        "hdi_low",
        "hdi_high",
    ]
    _assert_ordered(plan.rename(columns={"expected_contribution": "mean"}))
    optimal = plan["optimal_spend"].to_numpy()
    assert optimal.sum() == pytest.approx(total, rel=1e-8)
    assert (optimal >= 0).all()
    best = _expected_total(result, optimal)
    assert best == pytest.approx(plan["expected_contribution"].sum(), rel=1e-10)
    rng = np.random.default_rng(0)
    for share in rng.dirichlet(np.ones(len(CHANNELS)), size=200):
        assert _expected_total(result, share * total) <= best * (1 + 1e-9)
    # KKT: funded channels share one marginal return, unfunded ones return less
    marginal = result._marginal_draws(optimal).mean(axis=0)
    funded = optimal > 1e-6 * total
    assert marginal[funded].max() == pytest.approx(marginal[funded].min(), rel=1e-4)
    assert (marginal[~funded] <= marginal[funded].min() * (1 + 1e-4)).all()
    np.testing.assert_allclose(plan["current_spend"], result.spend.mean().to_numpy(), rtol=1e-12)


def test_optimize_budget_splits_a_large_budget(result: MMMResult) -> None:
    """Both curves flatten, so a large enough budget funds both channels."""
    plan = result.optimize_budget(20000.0, method="steady_state")
    assert (plan["optimal_spend"] > 1000.0).all()


def test_pymc_marketing_optimizer_agrees_with_steady_state(result: MMMResult) -> None:
    """Its 52-week plan counts ramp-up and carry-over tail; the optimum barely moves."""
    for bounds in (None, {"tv": (0.0, 12000.0)}):
        library = result.optimize_budget(20000.0, bounds)
        steady = result.optimize_budget(20000.0, bounds, method="steady_state")
        assert library["optimal_spend"].sum() == pytest.approx(20000.0, rel=1e-6)
        np.testing.assert_allclose(library["optimal_spend"], steady["optimal_spend"], atol=600.0)
        achieved = _expected_total(result, library["optimal_spend"].to_numpy())
        assert achieved == pytest.approx(steady["expected_contribution"].sum(), rel=2e-3)
    assert library.set_index("channel")["optimal_spend"]["tv"] <= 12000.0 + 1e-6


def test_optimize_budget_respects_bounds(result: MMMResult) -> None:
    total = 3500.0
    plan = result.optimize_budget(total, bounds={"tv": (3000.0, 3200.0)}, method="steady_state")
    spend = plan.set_index("channel")["optimal_spend"]
    assert 3000.0 - 1e-6 <= spend["tv"] <= 3200.0 + 1e-6
    assert spend.sum() == pytest.approx(total, rel=1e-8)
    forced = result.optimize_budget(total, {"tv": (1000.0, 1000.0)}, method="steady_state")
    assert forced.set_index("channel")["optimal_spend"]["tv"] == pytest.approx(1000.0, abs=1e-6)


@pytest.mark.parametrize(
    ("total", "bounds", "match"),
    [
        (-5.0, None, "total_budget"),
        (1000.0, {"radio": (0.0, 10.0)}, "radio"),
        (1000.0, {"tv": (600.0, 700.0), "search": (600.0, 700.0)}, "cannot be met"),
        (1000.0, {"tv": (10.0, 20.0), "search": (10.0, 20.0)}, "cannot be met"),
        (1000.0, {"tv": (30.0, 20.0)}, "low <= high"),
    ],
)
def test_optimize_budget_errors(
    result: MMMResult, total: float, bounds: dict[str, tuple[float, float]] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        result.optimize_budget(total, bounds=bounds)
    with pytest.raises(ValueError, match="method must be"):
        result.optimize_budget(1000.0, method="greedy")
    with pytest.raises(ValueError, match="horizon"):
        result.optimize_budget(1000.0, horizon=0)


# ---- persistence -----------------------------------------------------------------------


def test_save_load_round_trip(result: MMMResult, tmp_path: Path) -> None:
    path = tmp_path / "mmm.nc"
    result.save(path)
    loaded = MMMResult.load(path)
    assert loaded.meta == result.meta
    pd.testing.assert_frame_equal(loaded.channel_roas(), result.channel_roas())
    pd.testing.assert_frame_equal(loaded.contributions(), result.contributions())
    pd.testing.assert_frame_equal(loaded.response_curves(10), result.response_curves(10))
    pd.testing.assert_frame_equal(
        loaded.optimize_budget(3000.0, method="steady_state"),
        result.optimize_budget(3000.0, method="steady_state"),
    )
    # the pymc-marketing model is rebuilt from the file for its optimizer
    assert loaded.model is None
    plan = loaded.optimize_budget(3000.0)
    assert loaded.model is not None and plan["optimal_spend"].sum() == pytest.approx(3000.0)
    before, after = result.diagnostics(), loaded.diagnostics()
    for key in ("r_hat_max", "ess_bulk_min", "divergences", "sampling_seconds"):
        assert after[key] == before[key]
    with pytest.raises(ValueError, match="no saved MMM"):
        MMMResult.load(tmp_path / "missing.nc")
    result.idata.to_netcdf(str(tmp_path / "plain.nc"))
    with pytest.raises(ValueError, match="not written by"):
        MMMResult.load(tmp_path / "plain.nc")


# ---- helpers ---------------------------------------------------------------------------


def test_hdi_matches_arviz() -> None:
    import arviz as az

    rng = np.random.default_rng(5)
    draws = rng.gamma(2.0, 1.0, size=(400, 3))
    low, high = hdi(draws)
    reference = np.array([az.hdi(draws[:, j], hdi_prob=0.94) for j in range(3)])
    np.testing.assert_allclose(low, reference[:, 0], rtol=1e-12)
    np.testing.assert_allclose(high, reference[:, 1], rtol=1e-12)


def test_import_does_not_load_pymc() -> None:
    code = (
        "import sys, cfap_orchestration.causal.mmm\n"
        "heavy = [m for m in ('pymc', 'pymc_marketing', 'arviz', 'pytensor', 'pymc_extras',"
        " 'jax', 'numpyro')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- input errors (all raised before any sampling) -------------------------------------


def _fit(frame: pd.DataFrame, **kwargs: object) -> None:
    args: dict[str, object] = {
        "date": "week",
        "channels": CHANNELS,
        "target": "sales",
        "draws": 10,
        "tune": 10,
        "chains": 1,
    }
    args.update(kwargs)
    fit_mmm(frame, **args)  # type: ignore[arg-type]


def _with(frame: pd.DataFrame, column: str, row: int, value: Any) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(object) if isinstance(value, str) else out[column]
    out.loc[row, column] = value
    return out


@pytest.mark.parametrize(
    ("change", "kwargs", "match"),
    [
        (lambda f: f.drop(columns="search"), {}, r"missing column\(s\) \['search'\]"),
        (lambda f: _with(f, "tv", 3, -1.0), {}, "negative spend"),
        (lambda f: _with(f, "search", 3, np.nan), {}, "missing"),
        (lambda f: _with(f, "sales", 5, np.nan), {}, "missing"),
        (lambda f: f.head(23), {}, "at least adstock_max_lag"),
        (lambda f: f.assign(sales=1.0), {}, "zero variance"),
        (lambda f: f.assign(week=f["week"].iloc[0]), {}, "duplicated dates"),
        (lambda f: f.drop(index=[10, 11]), {}, "equally spaced"),
        (
            lambda f: f.assign(week=pd.date_range("2020-01-01", periods=len(f), freq="MS")),
            {},
            "daily or weekly",
        ),
        (lambda f: _with(f, "week", 2, "not a date"), {}, "could not be parsed"),
        (lambda f: f.assign(tv=0.0), {}, "no spend at all"),
        (lambda f: f.assign(tv="a lot"), {}, "must be numeric"),
        (lambda f: f.assign(flat=1.0), {"controls": ["flat"]}, "control column 'flat'"),
        (lambda f: f, {"controls": "trend"}, "not a single string"),
        (lambda f: f, {"channels": []}, "non-empty"),
        (lambda f: f, {"channels": ["tv", "tv"]}, "more than once"),
        (lambda f: f.rename(columns={"tv": "y"}), {"channels": ["y", "search"]}, "'y'"),
        (lambda f: f, {"sampler": "metropolis"}, "sampler must be one of"),
        (lambda f: f, {"parameterisation": "polar"}, "parameterisation must be one of"),
        (lambda f: f, {"draws": 0}, "draws must be an integer"),
        (lambda f: f, {"adstock_max_lag": 0}, "adstock_max_lag"),
        (lambda f: f, {"yearly_seasonality": -1}, "yearly_seasonality"),
        (lambda f: f, {"priors": {"saturation_gamma": 1}}, "unknown prior key"),
        (lambda f: f, {"priors": [1, 2]}, "priors must be a dict"),
        (lambda f: "not a frame", {}, "must be a pandas DataFrame"),
    ],
)
def test_input_errors(
    data: tuple[pd.DataFrame, dict[str, float]],
    change: object,
    kwargs: dict[str, object],
    match: str,
) -> None:
    frame = change(data[0].copy())  # type: ignore[operator]
    with pytest.raises(ValueError, match=match):
        _fit(frame, **kwargs)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop(columns="sigma"), r"missing column\(s\) \['sigma'\]"),
        (lambda t: t.assign(channel="radio"), "radio"),
        (lambda t: t.assign(delta_y=1.0), "sign of delta_x"),
        (lambda t: t.assign(delta_y=0.0), "non-zero"),
        (lambda t: t.assign(sigma=0.0), "sigma"),
        (lambda t: t.assign(delta_x=-2 * t["x"]), "x \\+ delta_x"),
        (lambda t: t.assign(x=np.nan), "missing"),
        (lambda t: t.iloc[0:0], "empty"),
    ],
)
def test_lift_test_errors(
    data: tuple[pd.DataFrame, dict[str, float]], lift: pd.DataFrame, change: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _fit(data[0], lift_tests=change(lift.copy()))  # type: ignore[operator]


@pytest.mark.parametrize(("sampler", "package"), [("nutpie", "nutpie"), ("numpyro", "numpyro")])
def test_missing_sampler_package_is_named(
    data: tuple[pd.DataFrame, dict[str, float]],
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    package: str,
) -> None:
    real = mmm_module.importlib.util.find_spec

    def fake_find_spec(name: str, *args: object) -> object:
        return None if name == package else real(name)

    monkeypatch.setattr(mmm_module.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(ValueError, match=f"pip install {package}"):
        _fit(data[0], sampler=sampler)


def test_dimensionless_user_priors_get_their_dims() -> None:
    """Without dims pymc-marketing would give every control one shared coefficient."""
    from pymc_extras.prior import Prior

    user = {
        "gamma_control": Prior("Normal", mu=0, sigma=1),
        "likelihood": Prior("StudentT", nu=5, sigma=Prior("HalfNormal", sigma=1)),
        "saturation_lam": Prior("Gamma", alpha=2, beta=1),
    }
    fixed = mmm_module._with_default_dims(user)
    assert fixed["gamma_control"].dims == ("control",)
    assert fixed["likelihood"].dims == ("date",)
    assert fixed["saturation_lam"] is user["saturation_lam"]  # pymc-marketing fills these
    assert not user["gamma_control"].dims  # the caller's object is left alone


# ---- simulation study (the full run: benchmarks/causal_validation.py --only mmm) ------


def test_simulation_scenario_scores_an_estimate_against_its_truth() -> None:
    from cfap_orchestration.causal.simulation import make_rng
    from cfap_orchestration.causal.simulation.mmm import SCENARIOS

    rng = make_rng(7)
    replication = SCENARIOS["search_roas_calibrated"](rng, scale="fast")
    est = replication.estimate
    assert est.ci_lower < est.effect < est.ci_upper
    assert 0.5 < est.effect / replication.truth < 1.5  # one noisy lift test, 80 weeks
    with pytest.raises(ValueError, match="scale must be"):
        SCENARIOS["search_roas"](rng, scale="huge")
