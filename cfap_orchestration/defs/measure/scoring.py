"""The sandbox's scorecard: every estimate beside the causal truth of the simulated brand."""

from datetime import timedelta

import dagster as dg

from cfap_orchestration.settings import get_settings
from cfap_orchestration.studies.calendar import load_calendar
from cfap_orchestration.studies.results import LIFT_ANALYSIS_RESULTS
from cfap_orchestration.studies.truth import estimates_vs_truth as score_against_truth

MEASURE_ASSETS = [
    dg.AssetKey(["causal", name])
    for name in (
        "difference_in_differences",
        "synthetic_control",
        "cuped",
        "shapley_attribution",
        "markov_attribution",
        "temporal_effects",
        "mmm_channel_roas",
    )
]


@dg.asset(
    key=["causal", "estimates_vs_truth"],
    group_name="measure",
    deps=MEASURE_ASSETS,
    kinds={"python"},
    required_resource_keys={"warehouse"},
    description=(
        "Sandbox only: each estimate in causal.lift_analysis_results beside the true value "
        "the simulated brand was built with, whether the 95% interval covers it, and the "
        "error. Attribution is scored on channel shares against the causal share: a gap "
        "there is attribution's bias, which no interval accounts for."
    ),
)
def estimates_vs_truth(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from cfap_orchestration.sandbox.world import SandboxWorld

    settings = get_settings()
    warehouse = context.resources.warehouse.get()
    table = LIFT_ANALYSIS_RESULTS
    results = warehouse.query(f"SELECT * FROM {warehouse.relation(table.schema, table.name)}")
    end = settings.sandbox_as_of.date() - timedelta(days=1)
    scored = score_against_truth(
        results,
        SandboxWorld(settings.sandbox),
        start=settings.start_date,
        end=end,
        calendar=load_calendar(warehouse),
    )
    warehouse.replace_table("causal", "estimates_vs_truth", scored)
    experiments = scored[~scored["model_name"].str.endswith("_attribution")]
    return dg.MaterializeResult(
        metadata={
            "scorecard": dg.MetadataValue.md(scored.to_markdown(index=False, floatfmt=".4g")),
            "estimates_scored": len(scored),
            "experiment_coverage": float(experiments["covered"].mean())
            if len(experiments)
            else None,
        }
    )
