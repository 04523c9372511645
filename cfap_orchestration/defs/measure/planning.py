"""Power of the geo holdouts registered for the future, replayed on the regions' history."""

import dagster as dg
from pydantic import Field

from cfap_orchestration.defs.measure.experiments import DID_KEY
from cfap_orchestration.studies.experiment_planning import (
    load_planning_inputs,
    plan_experiment_power,
)

KEY = dg.AssetKey(["causal", "geo_test_power_plan"])


class PowerPlanConfig(dg.Config):
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1, description="Target power.")
    seed: int = Field(default=0, description="Seed of the replays.")


@dg.asset(
    key=KEY,
    group_name="measure",
    deps=[
        dg.AssetKey(["marts", "fct_orders_daily"]),
        dg.AssetKey(["staging", "stg_reference__experiment_registry"]),
        DID_KEY,
    ],
    kinds={"python"},
    required_resource_keys={"warehouse"},
    check_specs=[
        dg.AssetCheckSpec(
            "planned_tests_are_powered",
            asset=KEY,
            description="Each planned test reaches the target power at the lift its channel's "
            "latest readout measured.",
        )
    ],
    description=(
        "For each registered geo holdout that has not started yet: the smallest revenue "
        "lift it can detect (replayed on the regions' daily history with its holdout "
        "regions and duration) and its power at the lift the channel's latest completed "
        "test measured. Written to causal.geo_test_power_plan."
    ),
)
def geo_test_power_plan(
    context: dg.AssetExecutionContext, config: PowerPlanConfig
) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    plan = plan_experiment_power(
        load_planning_inputs(warehouse), alpha=config.alpha, power=config.power, seed=config.seed
    )
    warehouse.replace_table("causal", "geo_test_power_plan", plan)
    weak = plan[plan["power_at_expected"].fillna(0) < config.power]["experiment_id"].tolist()
    return dg.MaterializeResult(
        metadata={
            "plan": dg.MetadataValue.md(plan.to_markdown(index=False, floatfmt=".3g")),
            "planned_tests": len(plan),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="planned_tests_are_powered",
                passed=not weak,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"underpowered": ", ".join(weak) or "none"},
            )
        ],
    )
