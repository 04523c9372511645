"""Data-generating processes with a known effect, one module per estimator.

Each module exposes ``SCENARIOS``: a mapping from a scenario name to a function
``replicate(rng: numpy.random.Generator, *, scale: str = "full") -> Replication``. One call
simulates one data set with a known true effect, runs the estimator on it and returns the
estimate beside the truth. ``benchmarks/causal_validation.py`` runs hundreds of
replications per scenario and prints bias and interval coverage; the test suite runs a
few dozen with ``scale="fast"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cfap_orchestration.causal.estimate import EffectEstimate


@dataclass(frozen=True)
class Replication:
    estimate: EffectEstimate
    truth: float


Scenario = Callable[..., Replication]


def make_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)
