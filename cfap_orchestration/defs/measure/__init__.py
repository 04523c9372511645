"""Measurement: the causal estimators run over the marts, written to the results tables."""

import dagster as dg

from cfap_orchestration.defs.measure.calendar import temporal_effects
from cfap_orchestration.defs.measure.experiments import (
    cuped,
    difference_in_differences,
    synthetic_control,
)
from cfap_orchestration.defs.measure.journeys import markov_attribution, shapley_attribution
from cfap_orchestration.defs.measure.media_mix import (
    mmm_budget_plan,
    mmm_channel_roas,
    mmm_contributions,
    mmm_fit,
    mmm_roas_covers_the_truth,
)
from cfap_orchestration.defs.measure.planning import geo_test_power_plan
from cfap_orchestration.defs.measure.scoring import estimates_vs_truth


def measure_definitions(*, sandbox: bool) -> dg.Definitions:
    """Every estimator asset; with the sandbox, also the scorecard against its truth and
    the check that the media-mix ROAS intervals cover it."""
    assets = [
        difference_in_differences,
        synthetic_control,
        cuped,
        shapley_attribution,
        markov_attribution,
        temporal_effects,
        geo_test_power_plan,
        mmm_fit,
        mmm_channel_roas,
        mmm_contributions,
        mmm_budget_plan,
    ]
    checks = []
    if sandbox:
        assets.append(estimates_vs_truth)
        checks.append(mmm_roas_covers_the_truth)
    return dg.Definitions(assets=assets, asset_checks=checks)
