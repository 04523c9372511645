"""The data-quality report: completeness and accuracy scores and the list of issues."""

import dagster as dg

from cfap_orchestration.quality import assess

REPORT_INPUTS = [
    dg.AssetKey(["marts", "fct_marketing_daily"]),
    dg.AssetKey(["marts", "fct_orders_daily"]),
    dg.AssetKey(["marts", "fct_marketing_calendar_daily"]),
    dg.AssetKey(["raw", "first_party_touchpoints"]),
]


@dg.asset(
    key=["marts", "data_quality_report"],
    group_name="marts",
    deps=REPORT_INPUTS,
    kinds={"python"},
    required_resource_keys={"warehouse"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "How far to trust today's numbers. Completeness: the share of days each source "
        "delivered over the span the marts cover. Accuracy: whether the marts still agree "
        "with what the platforms sent (spend converted back to source currency, each order "
        "counted once, every row with an FX rate). Every finding below 1.0 is listed."
    ),
)
def data_quality_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    report = assess(context.resources.warehouse.get())
    table = report.to_frame()
    return dg.MaterializeResult(
        metadata={
            "completeness_score": round(report.completeness, 4),
            "accuracy_score": round(report.accuracy, 4),
            "issues": len(report.issues),
            "findings": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".4f")),
        }
    )
