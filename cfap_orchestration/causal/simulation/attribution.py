"""Visitor journeys whose attribution estimand is known exactly, for `attribution_intervals`.

Both scenarios draw a fixed number of journeys over six channels (paid_social, paid_search,
email, sms, organic_search, direct), collapse them with `paths_from_journeys` as the mart
would be, and bootstrap the method's credits. The truth is the population value of the
method's OWN estimand (the method applied to the expected path counts), computed exactly from
the data-generating probabilities; it is a descriptive allocation, not the causal effect.

- "shapley_paths": the sandbox world's journey model. Each channel is present in a journey
  independently (paid_social 40 %, paid_search 30 %, email 25 %, sms 8 %, organic_search 35 %,
  direct 30 %; an empty journey gets one channel at random), is touched one to three times,
  touches are shuffled, and the journey converts by a noisy-OR:
  1 - 0.99 * prod(1 - lift_c) with lifts 3 %, 5 %, 2 %, 3 %, 2 %, 4 %. Shapley credit depends
  only on the channel set, so the truth per journey is sum over the 63 sets S of
  P(S) * P(convert | S) / |S| for each channel of S; times the number of journeys.
- "markov_paths": journeys walk a true absorbing first-order chain (start probabilities,
  channel-to-channel transitions with self-loops for repeat touches, exits to conversion or
  null). The expected transition counts are proportional to the true transition
  probabilities, so the truth is n * P_conv * RE_c / sum RE from the true chain, with the
  removal effects solved by definition here (independently of the estimator's code).

Each Replication is about one focal channel, paid_social (the largest paid channel and a
mid-sized credit); `details` keeps every channel's estimate, interval and truth so a study
can report all of them. Sizes: 10,000 journeys and 500 bootstrap draws at scale "full";
3,000 and 200 at "fast".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfap_orchestration.causal.attribution import (
    PATH_JOIN,
    attribution_intervals,
    paths_from_journeys,
)
from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.causal.simulation import Replication, Scenario

CHANNELS: tuple[str, ...] = (
    "paid_social",
    "paid_search",
    "email",
    "sms",
    "organic_search",
    "direct",
)
FOCAL_CHANNEL = "paid_social"
SIZES = {"full": (10_000, 500), "fast": (3_000, 200)}  # journeys, bootstrap draws

# set-based (Shapley) journeys, as in the sandbox world
PRESENCE = np.array([0.40, 0.30, 0.25, 0.08, 0.35, 0.30])
LIFT = np.array([0.030, 0.050, 0.020, 0.030, 0.020, 0.040])
BASE_RATE = 0.01

# Markov journeys: start distribution and rows over (channels..., conversion, null)
START = np.array([0.30, 0.22, 0.08, 0.02, 0.25, 0.13])
TRANSITIONS = np.array(
    [
        [0.20, 0.10, 0.05, 0.02, 0.10, 0.05, 0.010, 0.470],
        [0.05, 0.15, 0.05, 0.02, 0.08, 0.10, 0.050, 0.500],
        [0.04, 0.06, 0.15, 0.05, 0.05, 0.15, 0.060, 0.440],
        [0.02, 0.04, 0.10, 0.10, 0.04, 0.20, 0.080, 0.420],
        [0.05, 0.10, 0.05, 0.02, 0.15, 0.10, 0.040, 0.490],
        [0.03, 0.05, 0.05, 0.02, 0.05, 0.10, 0.100, 0.600],
    ]
)
MAX_STEPS = 500  # P(still walking after 500 steps) < 0.6 ** 500


def _sizes(scale: str) -> tuple[int, int]:
    if scale not in SIZES:
        raise ValueError(f"scale must be 'full' or 'fast', got {scale!r}")
    return SIZES[scale]


def _join_paths(owner: np.ndarray, touches: np.ndarray, n: int) -> list[str]:
    """Journey path strings from touches sorted by journey (`owner`) then time."""
    names = np.array(CHANNELS, dtype=object)[touches]
    bounds = np.cumsum(np.bincount(owner, minlength=n))[:-1]
    return [PATH_JOIN.join(group) for group in np.split(names, bounds)]


def _journey_frame(
    rng: np.random.Generator, paths: list[str], converted: np.ndarray
) -> pd.DataFrame:
    value = np.where(converted, np.round(rng.lognormal(4.3, 0.45, len(paths)), 2), 0.0)
    return pd.DataFrame(
        {"path": paths, "conversions": converted.astype(int), "conversion_value": value}
    )


# ---- set-based journeys (Shapley) ----------------------------------------------------


def _set_conversion_probability(touched: np.ndarray) -> np.ndarray:
    return 1 - (1 - BASE_RATE) * np.prod(np.where(touched, 1 - LIFT, 1.0), axis=-1)


def simulate_set_journeys(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """`n` journeys of the sandbox journey model: columns path, conversions, conversion_value."""
    k = len(CHANNELS)
    touched = rng.random((n, k)) < PRESENCE
    empty = ~touched.any(axis=1)
    touched[empty, rng.integers(0, k, int(empty.sum()))] = True
    converted = rng.random(n) < _set_conversion_probability(touched)
    visits = np.where(touched, rng.integers(1, 4, (n, k)), 0)
    rows, cols = np.nonzero(visits)
    owner = np.repeat(rows, visits[rows, cols])
    touches = np.repeat(cols, visits[rows, cols])
    order = np.lexsort((rng.random(len(owner)), owner))  # shuffle within each journey
    return _journey_frame(rng, _join_paths(owner[order], touches[order], n), converted)


def shapley_truth_per_journey() -> np.ndarray:
    """Expected Shapley credit of one journey to each channel (exact over the 63 sets)."""
    k = len(CHANNELS)
    masks = np.arange(1, 1 << k)
    member = ((masks[:, None] >> np.arange(k)) & 1).astype(bool)
    p_set = np.prod(np.where(member, PRESENCE, 1 - PRESENCE), axis=1)
    singleton = member.sum(axis=1) == 1
    p_set[singleton] += np.prod(1 - PRESENCE) / k  # empty journeys get one channel
    per_set = p_set * _set_conversion_probability(member) / member.sum(axis=1)
    return np.asarray(per_set @ member)


# ---- Markov journeys -----------------------------------------------------------------


def simulate_markov_journeys(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """`n` walks of the true chain: columns path, conversions, conversion_value."""
    k = len(CHANNELS)
    cumulative = np.cumsum(TRANSITIONS, axis=1)
    state = rng.choice(k, size=n, p=START)
    owners, touches = [np.arange(n)], [state]
    walking = np.arange(n)
    outcome = np.zeros(n, dtype=int)
    for _ in range(MAX_STEPS):
        u = rng.random(len(walking))
        nxt = (u[:, None] > cumulative[state]).sum(axis=1)
        nxt = np.minimum(nxt, k + 1)  # guard against rounding in the last cumulative entry
        done = nxt >= k
        outcome[walking[done]] = nxt[done] == k  # column k is conversion, k + 1 null
        walking, state = walking[~done], nxt[~done]
        if not len(walking):
            break
        owners.append(walking)
        touches.append(state)
    owner, touch = np.concatenate(owners), np.concatenate(touches)
    order = np.argsort(owner, kind="stable")  # steps were appended in time order
    paths = _join_paths(owner[order], touch[order], n)
    return _journey_frame(rng, paths, outcome.astype(bool))


def markov_truth_per_journey() -> np.ndarray:
    """Expected attributed conversions per journey: P_conv * RE_c / sum RE of the true chain."""
    k = len(CHANNELS)
    q = np.zeros((k + 1, k + 1))
    q[0, 1:] = START
    q[1:, 1:] = TRANSITIONS[:, :k]
    r = np.concatenate([[0.0], TRANSITIONS[:, k]])
    eye = np.eye(k + 1)
    p_conv = np.linalg.solve(eye - q, r)[0]
    removal = np.empty(k)
    for c in range(k):
        without = q.copy()
        without[:, c + 1] = 0.0
        removal[c] = 1 - np.linalg.solve(eye - without, r)[0] / p_conv
    return np.asarray(p_conv * removal / removal.sum())


# ---- replications --------------------------------------------------------------------


def _replication(
    journeys: pd.DataFrame,
    *,
    method: str,
    truth: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
) -> Replication:
    paths = paths_from_journeys(journeys, value_col="conversion_value")
    table = attribution_intervals(
        paths,
        method="shapley" if method == "shapley" else "markov",
        null_col="non_conversions",
        n_boot=n_boot,
        seed=int(rng.integers(2**31)),
    )
    table = table.set_index("channel").reindex(list(CHANNELS)).fillna(0.0)
    table["truth"] = truth
    focal = {str(k): float(v) for k, v in table.to_dict("index")[FOCAL_CHANNEL].items()}
    estimate = EffectEstimate(
        effect=focal["conversions"],
        ci_lower=focal["ci_lower"],
        ci_upper=focal["ci_upper"],
        p_value=float("nan"),
        std_error=focal["std_error"],
        n_obs=len(journeys),
        method=f"{method}_attribution",
        details={
            "channel": FOCAL_CHANNEL,
            "channels": table.reset_index(),
            "distinct_paths": len(paths),
            "total_conversions": int(paths["conversions"].sum()),
        },
    )
    return Replication(estimate=estimate, truth=focal["truth"])


def shapley_paths(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Shapley credit of paid_social on set-based journeys (see the module docstring)."""
    n, n_boot = _sizes(scale)
    journeys = simulate_set_journeys(rng, n)
    truth = n * shapley_truth_per_journey()
    return _replication(journeys, method="shapley", truth=truth, n_boot=n_boot, rng=rng)


def markov_paths(rng: np.random.Generator, *, scale: str = "full") -> Replication:
    """Markov credit of paid_social on journeys of a true first-order chain."""
    n, n_boot = _sizes(scale)
    journeys = simulate_markov_journeys(rng, n)
    truth = n * markov_truth_per_journey()
    return _replication(journeys, method="markov", truth=truth, n_boot=n_boot, rng=rng)


SCENARIOS: dict[str, Scenario] = {"shapley_paths": shapley_paths, "markov_paths": markov_paths}
