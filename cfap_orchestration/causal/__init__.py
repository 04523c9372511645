"""Causal estimators for marketing measurement: pandas in, `EffectEstimate`s out.

No Dagster here: import these in a notebook. Each function checks its input and raises a
`ValueError` that names the problem.
"""

from cfap_orchestration.causal.attribution import (
    attribution_intervals,
    heuristic_attribution,
    markov_attribution,
    paths_from_journeys,
    shapley_attribution,
)
from cfap_orchestration.causal.cuped import cuped
from cfap_orchestration.causal.did import difference_in_differences
from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.causal.power import holdout_power, power_analysis
from cfap_orchestration.causal.synthetic_control import synthetic_control
from cfap_orchestration.causal.temporal import TemporalEffects, temporal_effects

__all__ = [
    "EffectEstimate",
    "TemporalEffects",
    "attribution_intervals",
    "cuped",
    "difference_in_differences",
    "heuristic_attribution",
    "holdout_power",
    "markov_attribution",
    "paths_from_journeys",
    "power_analysis",
    "shapley_attribution",
    "synthetic_control",
    "temporal_effects",
]
