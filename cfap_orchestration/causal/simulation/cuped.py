"""CUPED scenario with a known effect (see the package docstring).

``holdout_90_10``: a user-level email campaign with a randomized 10% holdout. Each user has
a latent order propensity lambda_i ~ Gamma (mean ~4% per two-week campaign window, heavy
right tail) and an order-value multiplier m_i ~ lognormal; an order's value is
m_i x lognormal (mean about $80 overall). The covariate is revenue in the 12 weeks before the
send (Poisson(6 lambda_i) orders); the outcome is revenue in the campaign window: one order
with probability p_i = lambda_i for the holdout and min(1, p_i (1 + uplift)) for
recipients, uplift = +20%. Most outcomes are zero, as in real email revenue.

The truth is the mean over the replication's users of each user's expected uplift in
revenue, (p_i^treated - p_i^control) x E[order value | i].
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cfap_orchestration.causal.cuped import cuped
from cfap_orchestration.causal.simulation import Replication, Scenario

HOLDOUT_SHARE = 0.10
UPLIFT = 0.20
MEAN_ORDER_PROBABILITY = 0.04
PROPENSITY_SHAPE = 0.3
PRE_WINDOWS = 6  # twelve weeks of two-week windows
VALUE_SIGMA, USER_VALUE_SIGMA, MEAN_ORDER_VALUE = 0.8, 0.5, 80.0


def _revenue(rng: np.random.Generator, n_orders: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """Each user's summed order values, for integer order counts."""
    total = int(n_orders.sum())
    owner = np.repeat(np.arange(n_orders.size), n_orders)
    mu = math.log(MEAN_ORDER_VALUE) - 0.5 * (VALUE_SIGMA**2 + USER_VALUE_SIGMA**2)
    values = rng.lognormal(mu, VALUE_SIGMA, total) * multiplier[owner]
    return np.bincount(owner, weights=values, minlength=n_orders.size)


def holdout_90_10(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Email send to 90% of users, 10% randomized holdout, revenue per user as outcome."""
    if scale not in ("full", "fast"):
        raise ValueError(f"scale must be 'full' or 'fast', got {scale!r}")
    n_users = 400_000 if scale == "full" else 60_000
    propensity = rng.gamma(
        PROPENSITY_SHAPE, MEAN_ORDER_PROBABILITY / PROPENSITY_SHAPE, n_users
    ).clip(max=0.9)
    multiplier = rng.lognormal(0.0, USER_VALUE_SIGMA, n_users)
    pre_revenue = _revenue(rng, rng.poisson(PRE_WINDOWS * propensity), multiplier)
    treated = rng.random(n_users) >= HOLDOUT_SHARE
    p_treated = np.minimum(1.0, propensity * (1 + UPLIFT))
    ordered = rng.random(n_users) < np.where(treated, p_treated, propensity)
    revenue = _revenue(rng, ordered.astype(np.int64), multiplier)
    df = pd.DataFrame(
        {"recipient": treated.astype(int), "pre_revenue": pre_revenue, "revenue": revenue}
    )
    estimate = cuped(df, outcome="revenue", covariate="pre_revenue", treatment="recipient")
    expected_value = MEAN_ORDER_VALUE * multiplier / math.exp(0.5 * USER_VALUE_SIGMA**2)
    truth = float(np.mean((p_treated - propensity) * expected_value))
    return Replication(estimate, truth)


SCENARIOS: dict[str, Scenario] = {"holdout_90_10": holdout_90_10}
