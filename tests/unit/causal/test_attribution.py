"""Shapley, Markov and heuristic path attribution against hand-solved cases and properties."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

from cfap_orchestration.causal.attribution import (
    MAX_SHAPLEY_CHANNELS,
    _edge_incidence,
    _markov_credits_batch,
    _prepare,
    _transition_counts,
    attribution_intervals,
    heuristic_attribution,
    markov_attribution,
    markov_transition_matrix,
    paths_from_journeys,
    shapley_attribution,
)
from cfap_orchestration.causal.simulation import make_rng
from cfap_orchestration.causal.simulation.attribution import SCENARIOS

TOL = 1e-10
Method = Literal["shapley", "markov"]


def frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    columns = ["path", "conversions", "nulls", "value"][: len(rows[0])]
    return pd.DataFrame(rows, columns=columns)


def credits(out: pd.DataFrame, column: str = "conversions") -> dict[str, float]:
    return dict(zip(out["channel"], out[column], strict=True))


def random_paths(rng: np.random.Generator, n: int, k: int) -> pd.DataFrame:
    channels = [f"ch{i}" for i in range(k)]
    paths = [list(rng.choice(channels, size=rng.integers(1, 6))) for _ in range(n)]
    return pd.DataFrame(
        {
            "path": paths,
            "conversions": rng.poisson(3, n),
            "nulls": rng.poisson(30, n),
            "value": rng.gamma(2.0, 40.0, n),
        }
    )


# ---- Shapley -------------------------------------------------------------------------


def test_shapley_two_channels_by_hand() -> None:
    # v(a) = 10, v(b) = 4, v(ab) = 20
    # phi_a = 1/2 (v(a) - 0) + 1/2 (v(ab) - v(b)) = 5 + 8 = 13; phi_b = 2 + 5 = 7
    paths = frame([("a", 10), ("b", 4), ("a > b", 6)])
    assert credits(shapley_attribution(paths)) == pytest.approx({"a": 13, "b": 7}, abs=TOL)


def test_shapley_three_channels_by_hand() -> None:
    paths = frame([("a", 6), ("b", 3), ("a > b", 4), ("b > c", 2), ("a > b > c", 3), ("c > a", 0)])
    v = {"": 0, "a": 6, "b": 3, "c": 0, "ab": 13, "ac": 6, "bc": 5, "abc": 18}
    phi_a = (v["a"] - v[""]) / 3 + (v["ab"] - v["b"]) / 6 + (v["ac"] - v["c"]) / 6
    phi_a += (v["abc"] - v["bc"]) / 3
    phi_b = (v["b"] - v[""]) / 3 + (v["ab"] - v["a"]) / 6 + (v["bc"] - v["c"]) / 6
    phi_b += (v["abc"] - v["ac"]) / 3
    phi_c = (v["c"] - v[""]) / 3 + (v["ac"] - v["a"]) / 6 + (v["bc"] - v["b"]) / 6
    phi_c += (v["abc"] - v["ab"]) / 3
    assert (phi_a, phi_b, phi_c) == pytest.approx((9, 7, 2))
    out = credits(shapley_attribution(paths))
    assert out == pytest.approx({"a": phi_a, "b": phi_b, "c": phi_c}, abs=TOL)


def test_shapley_efficiency_and_equal_split_form() -> None:
    paths = random_paths(np.random.default_rng(3), 300, 8)
    out = shapley_attribution(paths, value_col="value")
    assert out["conversions"].sum() == pytest.approx(paths["conversions"].sum(), abs=1e-8)
    assert out["value"].sum() == pytest.approx(paths["value"].sum(), rel=1e-12)
    # the game is a sum of unanimity games: each path's total is split over its distinct channels
    expected = dict.fromkeys(out["channel"], 0.0)
    for path, conv in zip(paths["path"], paths["conversions"], strict=True):
        for c in set(path):
            expected[c] += conv / len(set(path))
    assert credits(out) == pytest.approx(expected, abs=1e-8)


def test_shapley_symmetry_and_null_player() -> None:
    paths = frame(
        [("x", 5), ("y", 5), ("x > z", 3), ("z > y", 3), ("x > y > z", 4), ("w > x", 0), ("w", 0)]
    )
    out = credits(shapley_attribution(paths))
    assert out["x"] == pytest.approx(out["y"], abs=TOL)
    assert out["w"] == 0.0
    assert sum(out.values()) == pytest.approx(20, abs=TOL)


def test_shapley_channel_limit() -> None:
    ok = frame([(f"c{i:02d}", 1) for i in range(MAX_SHAPLEY_CHANNELS)])
    assert len(shapley_attribution(ok)) == MAX_SHAPLEY_CHANNELS
    too_many = frame([(f"c{i:02d}", 1) for i in range(MAX_SHAPLEY_CHANNELS + 1)])
    with pytest.raises(ValueError, match="at most 20 channels"):
        shapley_attribution(too_many)
    with pytest.raises(ValueError, match="at most 20 channels"):
        attribution_intervals(too_many, method="shapley")


# ---- Markov --------------------------------------------------------------------------


def test_markov_by_hand_without_nulls() -> None:
    # counts: start->a 5, start->b 1, a->b 3, a->conv 2, b->conv 4
    # P(start->a) = 5/6, P(start->b) = 1/6, P(a->b) = 3/5, P(a->conv) = 2/5, P(b->conv) = 1
    # P_conv = 1; without a: 1/6 -> RE_a = 5/6; without b: 5/6 * 2/5 = 1/3 -> RE_b = 2/3
    paths = frame([("a > b", 3), ("b", 1), ("a", 2)])
    out = markov_attribution(paths)
    assert out.attrs["p_conversion"] == pytest.approx(1.0, abs=TOL)
    assert out.attrs["removal_effects"] == pytest.approx({"a": 5 / 6, "b": 2 / 3}, abs=TOL)
    total_re = 5 / 6 + 2 / 3
    expected = {"a": 6 * (5 / 6) / total_re, "b": 6 * (2 / 3) / total_re}
    assert credits(out) == pytest.approx(expected, abs=TOL)
    assert expected == pytest.approx({"a": 10 / 3, "b": 8 / 3}, abs=TOL)


def test_markov_by_hand_with_nulls() -> None:
    # paths (conversions, non-converting): a>b (2, 1), b>a (1, 1), a (0, 2), b (1, 0)
    # start: ->a 5, ->b 3                  => 5/8, 3/8
    # a: ->b 3, ->conv 1, ->null 1 + 2     => 3/7, 1/7, 3/7
    # b: ->conv 2 + 1, ->null 1, ->a 2     => 1/2, 1/6, 1/3
    # x_a = 3/7 x_b + 1/7, x_b = 1/2 + 1/3 x_a  => x_a = 5/12, x_b = 23/36
    # P_conv = 5/8 * 5/12 + 3/8 * 23/36 = 1/2
    # without a: x_b = 1/2, P = 3/8 * 1/2 = 3/16 -> RE_a = 5/8
    # without b: x_a = 1/7, P = 5/8 * 1/7 = 5/56 -> RE_b = 23/28
    paths = frame(
        [("a > b", 2, 1, 30.0), ("b > a", 1, 1, 10.0), ("a", 0, 2, 0.0), ("b", 1, 0, 20.0)]
    )
    transitions = markov_transition_matrix(paths, null_col="nulls")
    rows = transitions.to_dict("index")
    assert rows["start"] == pytest.approx(
        {"a": 5 / 8, "b": 3 / 8, "conversion": 0, "null": 0}, abs=TOL
    )
    assert rows["a"] == pytest.approx(
        {"a": 0, "b": 3 / 7, "conversion": 1 / 7, "null": 3 / 7}, abs=TOL
    )
    assert rows["b"] == pytest.approx(
        {"a": 1 / 3, "b": 0, "conversion": 1 / 2, "null": 1 / 6}, abs=TOL
    )
    out = markov_attribution(paths, null_col="nulls", value_col="value")
    assert out.attrs["p_conversion"] == pytest.approx(0.5, abs=TOL)
    assert out.attrs["removal_effects"] == pytest.approx({"a": 5 / 8, "b": 23 / 28}, abs=TOL)
    total_re = 5 / 8 + 23 / 28
    assert credits(out) == pytest.approx({"a": 140 / 81, "b": 184 / 81}, abs=TOL)
    share_a = (5 / 8) / total_re
    assert credits(out, "value") == pytest.approx({"a": 60 * share_a, "b": 60 * (1 - share_a)})


def test_markov_classic_three_path_example() -> None:
    # c1>c2>c3 converts, c1 and c2>c3 do not: credits 0.2, 0.4, 0.4 of the one conversion
    paths = frame([("c1 > c2 > c3", 1, 0), ("c1", 0, 1), ("c2 > c3", 0, 1)])
    out = markov_attribution(paths, null_col="nulls")
    assert out.attrs["p_conversion"] == pytest.approx(1 / 3, abs=TOL)
    assert credits(out) == pytest.approx({"c1": 0.2, "c2": 0.4, "c3": 0.4}, abs=TOL)


def test_markov_self_loops_do_not_change_credit() -> None:
    plain = frame([("a > b", 2, 1), ("b > a", 1, 1), ("a", 0, 2), ("b", 1, 0)])
    looped = frame([("a > a > b", 2, 1), ("b > b > b > a", 1, 1), ("a > a", 0, 2), ("b", 1, 0)])
    base = markov_attribution(plain, null_col="nulls")
    loops = markov_attribution(looped, null_col="nulls")
    assert loops.attrs["p_conversion"] == pytest.approx(base.attrs["p_conversion"], abs=TOL)
    assert credits(loops) == pytest.approx(credits(base), abs=TOL)


def test_markov_bootstrap_formula_matches_removal_definition() -> None:
    paths = random_paths(np.random.default_rng(11), 400, 7)
    out = markov_attribution(paths, null_col="nulls")
    data = _prepare(
        paths,
        path_col="path",
        conversions_col="conversions",
        null_col="nulls",
        value_col=None,
        max_channels=None,
        method="test",
    )
    counts = _transition_counts(_edge_incidence(data), data.conversions, data.nulls, data.k)
    shares = _markov_credits_batch(counts)[0]
    assert out["conversions"].to_numpy() == pytest.approx(
        shares * paths["conversions"].sum(), abs=1e-9
    )
    assert out["conversions"].sum() == pytest.approx(paths["conversions"].sum(), abs=1e-9)


# ---- heuristics and input forms ------------------------------------------------------


def test_heuristics_by_hand() -> None:
    paths = frame([("a > b > a", 2, 0, 90.0), ("b", 1, 0, 30.0), ("c > b", 0, 5, 0.0)])
    out = heuristic_attribution(paths, value_col="value").set_index("channel")
    assert out["first_touch"].to_dict() == {"a": 2, "b": 1, "c": 0}
    assert out["last_touch"].to_dict() == {"a": 2, "b": 1, "c": 0}
    assert out["linear"].to_dict() == pytest.approx({"a": 4 / 3, "b": 5 / 3, "c": 0})
    assert out["linear_value"].to_dict() == pytest.approx({"a": 60, "b": 60, "c": 0})
    assert out["first_touch_value"].to_dict() == pytest.approx({"a": 90, "b": 30, "c": 0})


def test_list_and_string_paths_agree_and_duplicates_sum() -> None:
    strings = frame([("a > b", 2, 3), ("b", 1, 4), ("a > b", 1, 1), (" a>c ", 2, 0)])
    lists = frame([(["a", "b"], 3, 4), (("b",), 1, 4), (np.array(["a", "c"]), 2, 0)])
    for estimator in (shapley_attribution, heuristic_attribution):
        pd.testing.assert_frame_equal(estimator(strings), estimator(lists))
    pd.testing.assert_frame_equal(
        markov_attribution(strings, null_col="nulls"), markov_attribution(lists, null_col="nulls")
    )
    methods: tuple[Method, ...] = ("shapley", "markov")
    for method in methods:
        pd.testing.assert_frame_equal(
            attribution_intervals(strings, method=method, null_col="nulls", n_boot=50),
            attribution_intervals(lists, method=method, null_col="nulls", n_boot=50),
        )


def test_paths_from_journeys_collapses_the_mart() -> None:
    journeys = pd.DataFrame(
        {
            "path": ["a > b", "a>b", "b", "b", ["a", "b"], "c"],
            "conversions": [1, 0, 1, 1, 0, 0],
            "conversion_value": [50.0, 0.0, 20.0, 30.0, 0.0, 0.0],
        }
    )
    paths = paths_from_journeys(journeys, value_col="conversion_value")
    assert paths.to_dict("list") == {
        "path": ["a > b", "b", "c"],
        "conversions": [1, 2, 0],
        "non_conversions": [2, 0, 1],
        "value": [50.0, 50.0, 0.0],
    }
    journeys["null"] = 1 - journeys["conversions"]
    pd.testing.assert_frame_equal(
        markov_attribution(paths, null_col="non_conversions"),
        markov_attribution(journeys, null_col="null"),
    )
    with pytest.raises(ValueError, match="must be 0/1"):
        paths_from_journeys(journeys.assign(conversions=2))


# ---- bootstrap -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["shapley", "markov"])
def test_intervals_contain_estimate_and_shrink_with_data(method: Method) -> None:
    paths = random_paths(np.random.default_rng(5), 200, 5)
    small = attribution_intervals(paths, method=method, null_col="nulls", n_boot=400)
    if method == "markov":
        point = markov_attribution(paths, null_col="nulls")
    else:
        point = shapley_attribution(paths)
    pd.testing.assert_series_equal(small["conversions"], point["conversions"])
    inside = (small["ci_lower"] < small["conversions"]) & (small["conversions"] < small["ci_upper"])
    assert inside.all()
    big_paths = paths.assign(conversions=paths["conversions"] * 16, nulls=paths["nulls"] * 16)
    big = attribution_intervals(big_paths, method=method, null_col="nulls", n_boot=400)
    relative_small = small["std_error"] / small["conversions"]
    relative_big = big["std_error"] / big["conversions"]
    # 16 times the journeys: the relative standard error falls about four-fold
    assert np.allclose(relative_big / relative_small, 0.25, atol=0.07)
    assert big.attrs["resampled"] == "journeys"


def test_shapley_bootstrap_matches_multinomial_variance() -> None:
    paths = frame([("a", 30, 300), ("a > b", 20, 150), ("b", 10, 400), ("c > b", 5, 85)])
    out = attribution_intervals(paths, method="shapley", null_col="nulls", n_boot=4000, seed=1)
    # credit of a = sum over journeys of converted * weight: weights 1 (a), 1/2 (a > b)
    n = 1000
    p = np.array([30, 20]) / n
    w = np.array([1.0, 0.5])
    analytic = np.sqrt(n * (np.sum(p * w**2) - np.sum(p * w) ** 2))
    se_a = credits(out, "std_error")["a"]
    assert se_a == pytest.approx(analytic, rel=0.05)


def test_intervals_without_nulls_condition_on_total_and_are_reproducible() -> None:
    paths = frame([("a", 30), ("a > b", 20), ("b", 10), ("c > b", 5)])
    first = attribution_intervals(paths, method="markov", n_boot=100, seed=3)
    again = attribution_intervals(paths, method="markov", n_boot=100, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert first.attrs["resampled"] == "converting journeys"
    assert (first["std_error"] > 0).all()


# ---- input checks --------------------------------------------------------------------


GOOD = frame([("a > b", 2, 1), ("b", 1, 3)])


def with_paths(paths: list[Any]) -> pd.DataFrame:
    return GOOD.assign(path=pd.Series(paths, dtype=object))


@pytest.mark.parametrize(
    ("paths", "kwargs", "message"),
    [
        ([1, 2], {}, "must be a pandas DataFrame"),
        (GOOD.iloc[:0], {}, "is empty"),
        (GOOD.drop(columns="conversions"), {}, "missing column"),
        (GOOD, {"null_col": "nope"}, "missing column"),
        (GOOD.assign(conversions=[1.0, np.nan]), {}, "missing \\(NaN\\)"),
        (with_paths(["a", None]), {}, "missing \\(NaN\\)"),
        (GOOD.assign(conversions=[-1, 2]), {}, "negative"),
        (GOOD.assign(nulls=[-1, 2]), {"null_col": "nulls"}, "negative"),
        (GOOD.assign(conversions=["1", "2"]), {}, "must be numeric"),
        (GOOD.assign(conversions=[np.inf, 2]), {}, "infinite"),
        (with_paths([["a", 3], "b"]), {}, "must be strings"),
        (with_paths(["", "b"]), {}, "empty path"),
        (with_paths([[], "b"]), {}, "empty path"),
        (with_paths(["a > > b", "b"]), {}, "empty channel name"),
        (with_paths([["a>b"], "b"]), {}, "must not contain"),
        (with_paths([7, "b"]), {}, "must be a list of channel names"),
        (GOOD.assign(conversions=[0, 0]), {}, "no conversions"),
    ],
)
def test_bad_input_raises(paths: Any, kwargs: dict[str, Any], message: str) -> None:
    for estimator in (shapley_attribution, heuristic_attribution):
        if not kwargs:  # these have no null_col
            with pytest.raises(ValueError, match=message):
                estimator(paths)
    with pytest.raises(ValueError, match=message):
        markov_attribution(paths, **kwargs)
    with pytest.raises(ValueError, match=message):
        attribution_intervals(paths, method="markov", n_boot=20, **kwargs)


def test_bad_bootstrap_arguments_raise() -> None:
    with pytest.raises(ValueError, match="method must be"):
        attribution_intervals(GOOD, method="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_boot must be"):
        attribution_intervals(GOOD, method="shapley", n_boot=5)
    with pytest.raises(ValueError, match="alpha"):
        attribution_intervals(GOOD, method="shapley", alpha=1.5)
    with pytest.raises(ValueError, match="whole journey counts"):
        attribution_intervals(GOOD.assign(conversions=[1.5, 2]), method="shapley")


# ---- simulation study ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_simulation_bias_and_coverage(name: str) -> None:
    rng = make_rng(20240601)
    reps = [SCENARIOS[name](rng, scale="fast") for _ in range(50)]
    truth = reps[0].truth
    effects = np.array([r.estimate.effect for r in reps])
    coverage = np.mean([r.estimate.contains(r.truth) for r in reps])
    assert all(r.truth == truth for r in reps)
    assert abs(effects.mean() - truth) < 0.10 * truth
    assert coverage >= 0.85
    with pytest.raises(ValueError, match="scale must be"):
        SCENARIOS[name](rng, scale="huge")
