"""Level coordinates are a change of variables with a unit Jacobian: at corresponding points
the reparameterised log density equals the model's own and the model's variables come back
unchanged. Plus the JAX device choice that lets numpyro run chains in parallel."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cfap_orchestration.causal.mmm import build_mmm
from cfap_orchestration.causal.mmm_sampling import level_coordinates

CHANNELS = ["tv", "search"]


@pytest.fixture(scope="module")
def model() -> Any:
    rng = np.random.default_rng(2)
    n = 40
    frame = pd.DataFrame(
        {
            "week": pd.date_range("2023-01-02", periods=n, freq="7D"),
            "tv": rng.lognormal(8, 0.4, n),
            "search": rng.lognormal(7, 0.6, n),
            "sales": rng.normal(40_000, 3_000, n),
            "trend": np.arange(n, dtype=float),
        }
    )
    x = float(frame["tv"].mean())
    lift = pd.DataFrame(
        {"channel": ["tv"], "x": [x], "delta_x": [-x], "delta_y": [-4000.0], "sigma": [400.0]}
    )
    spec = build_mmm(
        frame,
        date="week",
        channels=CHANNELS,
        target="sales",
        controls=["trend"],
        adstock_max_lag=4,
        yearly_seasonality=1,
        lift_tests=lift,
    )
    return spec.model.model


def _random_points(model: Any, n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    start = model.initial_point()
    return [
        {name: value + rng.normal(0, 0.5, np.shape(value)) for name, value in start.items()}
        for _ in range(n)
    ]


def _function(model: Any, name: str) -> Any:
    """A variable of the model as a function of a point of all its value variables."""
    (output,) = model.replace_rvs_by_values([model[name]])
    return model.compile_fn(
        output, inputs=model.value_vars, on_unused_input="ignore", point_fn=True
    )


def _level_point(model: Any, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The point's level coordinates, computed from the model's own contributions."""
    contribution = _function(model, "channel_contribution")(point)
    log_mean = np.log(np.asarray(contribution).mean(axis=0))
    level = {f"u_{name.rstrip('_')}": value for name, value in point.items()}
    level.pop("u_intercept_contribution")
    level.pop("u_saturation_beta_log")
    level["u_level"] = point["intercept_contribution"] + np.exp(log_mean).sum()
    level["u_log_contribution"] = log_mean
    return level


def test_same_log_density_at_corresponding_points(model: Any) -> None:
    level = level_coordinates(model)
    own_logp, level_logp = model.compile_logp(), level.compile_logp()
    for point in _random_points(model, 5):
        mapped = _level_point(model, point)
        assert set(mapped) == {v.name for v in level.value_vars}
        np.testing.assert_allclose(level_logp(mapped), own_logp(point), rtol=1e-9)


def test_the_model_variables_come_back_unchanged(model: Any) -> None:
    level = level_coordinates(model)
    for point in _random_points(model, 3):
        mapped = _level_point(model, point)
        for name, transformed in (
            ("intercept_contribution", point["intercept_contribution"]),
            ("saturation_beta", np.exp(point["saturation_beta_log__"])),
            ("saturation_lam", np.exp(point["saturation_lam_log__"])),
            ("gamma_control", point["gamma_control"]),
        ):
            value = _function(level, name)(mapped)
            np.testing.assert_allclose(np.asarray(value), transformed, rtol=1e-9)


def test_a_model_without_the_expected_variables_is_refused() -> None:
    import pymc as pm

    with pm.Model() as other:
        pm.Normal("mu")
    with pytest.raises(ValueError, match="level coordinates need a scalar intercept"):
        level_coordinates(other)


@pytest.mark.parametrize(
    ("prelude", "expected"),
    [
        ("", "parallel"),  # the flag set before jax loads: one CPU device per chain
        ("import jax\n", "vectorized"),  # too late: jax already chose one device
    ],
)
def test_numpyro_chains_run_in_parallel_when_jax_is_not_loaded_yet(
    prelude: str, expected: str
) -> None:
    code = (
        "import os\nos.environ.pop('XLA_FLAGS', None)\n"
        f"{prelude}"
        "from cfap_orchestration.causal.mmm_sampling import prepare_jax_devices\n"
        "print(prepare_jax_devices(2))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == expected
