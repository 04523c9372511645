"""`geo_lift_analysis`: a geo lift readout launched with parameters, for a registered geo
experiment or for a design described in the run config.

The op checks the request against the warehouse (`studies/adhoc_geo_analysis.py`), builds
the panel, runs the chosen geo holdout estimator and writes one row to
`causal.lift_analysis_results` (model `adhoc_<method>`) and its fit to
`causal.causal_model_registry`. A request that cannot run fails with a `dg.Failure` that
names each problem.
"""

from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from cfap_orchestration.defs.measure.publish import SHOWN_COLUMNS, image_markdown
from cfap_orchestration.studies import plots
from cfap_orchestration.studies.adhoc_geo_analysis import (
    DEFAULT_PRE_PERIOD_DAYS,
    GeoDesign,
    GeoLiftRequest,
    GeoLiftRequestError,
    adhoc_model_name,
    analysis_params,
    estimate_geo_lift,
    load_catalog,
    load_panel,
    publish_geo_lift,
    resolve_request,
)
from cfap_orchestration.studies.results import LIFT_ANALYSIS_RESULTS, StudyRow
from cfap_orchestration.warehouse import Warehouse


class GeoLiftAnalysisConfig(dg.Config):
    """A registered geo experiment (experiment_id) or an ad-hoc design (treated_units, ...)."""

    experiment_id: str | None = Field(
        default=None,
        description="A registered geo experiment (dbt_project/seeds/experiment_registry.csv), "
        "e.g. geo_holdout_google_ads_2024. Leave out for an ad-hoc design.",
    )
    treated_units: list[str] | None = Field(
        default=None,
        description="Ad-hoc design: the regions where the platform's spend was withheld, "
        "geo ids such as US-CA (dbt_project/seeds/geo_regions.csv). The other regions of "
        "their market with orders are the controls.",
    )
    start_date: str | None = Field(
        default=None, description="Ad-hoc design: first day of the test (YYYY-MM-DD)."
    )
    end_date: str | None = Field(
        default=None, description="Ad-hoc design: last day of the test, inclusive (YYYY-MM-DD)."
    )
    pre_period_days: int | None = Field(
        default=None,
        description="Ad-hoc design: days before start_date to compare with (at least 28; "
        f"{DEFAULT_PRE_PERIOD_DAYS} when left out, as for the registered panels).",
    )
    platform: str | None = Field(
        default=None,
        description="Ad-hoc design: the platform whose spend was withheld (meta, google_ads).",
    )
    method: Literal["difference_in_differences", "synthetic_control"] = Field(
        default="difference_in_differences", description="The geo holdout estimator."
    )
    metric: Literal["revenue", "orders"] = Field(
        default="revenue", description="Outcome: net revenue or orders per region and day."
    )
    alpha: float = Field(
        default=0.05, description="1 - confidence level of the interval (between 0 and 0.5)."
    )
    inference: Literal["randomization", "cluster"] = Field(
        default="randomization",
        description="Difference in differences only: permute the held-out regions (exact "
        "under random assignment) or cluster-robust CR1 by region.",
    )

    def to_request(self) -> GeoLiftRequest:
        return GeoLiftRequest(
            experiment_id=self.experiment_id,
            treated_units=self.treated_units,
            start_date=self.start_date,
            end_date=self.end_date,
            pre_period_days=self.pre_period_days,
            platform=self.platform,
            alpha=self.alpha,
        )


@dg.op(
    required_resource_keys={"warehouse"},
    out=dg.Out(dg.Nothing, description="One row written to causal.lift_analysis_results."),
    description="Check the request, build the geo panel, estimate the ads' effect, write it.",
)
def analyze_geo_lift(
    context: dg.OpExecutionContext, config: GeoLiftAnalysisConfig
) -> dg.Output[None]:
    warehouse: Warehouse = context.resources.warehouse.get()
    design = _checked_design(warehouse, config.to_request())
    context.log.info(f"Analysing {design.subject}: {_design_summary(design)}")
    row = _estimate(warehouse, design, config)
    params = analysis_params(
        design,
        method=config.method,
        metric=config.metric,
        alpha=config.alpha,
        inference=config.inference,
    )
    results = publish_geo_lift(
        warehouse, row, run_id=context.run_id, method=config.method, params=params
    )
    context.log.info(_readout_line(design, row, config))
    link = _results_query(warehouse, design, config, context.run_id)
    context.log.info(f"Results: {link}")
    return dg.Output(None, metadata=_metadata(results, row, config, link))


def _checked_design(warehouse: Warehouse, request: GeoLiftRequest) -> GeoDesign:
    try:
        return resolve_request(request, load_catalog(warehouse))
    except GeoLiftRequestError as error:
        raise dg.Failure(
            description=str(error),
            metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in error.problems))},
            allow_retries=False,
        ) from None


def _estimate(warehouse: Warehouse, design: GeoDesign, config: GeoLiftAnalysisConfig) -> StudyRow:
    """The estimate; a panel the estimator cannot fit is a failure naming the reason."""
    try:
        panel = load_panel(warehouse, design)
        return estimate_geo_lift(
            panel,
            method=config.method,
            metric=config.metric,
            alpha=config.alpha,
            inference=config.inference,
        )
    except ValueError as error:
        raise dg.Failure(
            description=f"{config.method} could not be estimated on {design.subject}: {error}",
            allow_retries=False,
        ) from None


def _design_summary(design: GeoDesign) -> str:
    return (
        f"{design.platform} spend withheld in {', '.join(design.treated_units)} from "
        f"{design.start_date} to {design.end_date}, {design.pre_period_days} pre-period days, "
        f"controls {', '.join(design.control_units)} (panel: {design.panel_source})"
    )


def _readout_line(design: GeoDesign, row: StudyRow, config: GeoLiftAnalysisConfig) -> str:
    estimate = row.estimate
    level = f"{1 - config.alpha:.0%}"
    line = (
        f"{adhoc_model_name(config.method)} on {design.subject}: the ads caused "
        f"{estimate.effect:,.4g} {config.metric} per holdout region-day, {level} interval "
        f"[{estimate.ci_lower:,.4g}, {estimate.ci_upper:,.4g}], p = {estimate.p_value:.3g}"
    )
    if row.incremental_value is not None:
        line += f"; incremental revenue {row.incremental_value:,.0f} over the test"
    if row.incremental_roas is not None:
        line += f", incremental ROAS {row.incremental_roas:.3g}"
    return line


def _results_query(
    warehouse: Warehouse, design: GeoDesign, config: GeoLiftAnalysisConfig, run_id: str
) -> str:
    """The query that reads this run's row back (the warehouse's own relation name)."""
    table = warehouse.relation(LIFT_ANALYSIS_RESULTS.schema, LIFT_ANALYSIS_RESULTS.name)
    return (
        f"SELECT * FROM {table} WHERE model_name = '{adhoc_model_name(config.method)}' "
        f"AND subject = '{design.subject}' AND metric = '{config.metric}' "
        f"AND run_id = '{run_id}'"
    )


def _metadata(
    results: pd.DataFrame, row: StudyRow, config: GeoLiftAnalysisConfig, link: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "results": dg.MetadataValue.md(
            results[SHOWN_COLUMNS].to_markdown(index=False, floatfmt=".4g")
        ),
        "table": "causal.lift_analysis_results",
        "model_name": adhoc_model_name(config.method),
        "subject": str(results["subject"].iloc[0]),
        "query": dg.MetadataValue.md(f"```sql\n{link}\n```"),
    }
    details = row.estimate.details
    title = f"{row.subject} ({config.metric})"
    if config.method == "difference_in_differences":
        png = plots.event_study_png(details["event_study"], title=f"{title}: event study")
        metadata["event_study"] = image_markdown(png, alt="event_study")
    else:
        png = plots.synthetic_control_png(details["gap"], title=f"{title}: holdout vs synthetic")
        metadata["treated_vs_synthetic"] = image_markdown(png, alt="treated_vs_synthetic")
    return metadata


@dg.job(
    name="geo_lift_analysis",
    description=(
        "Geo lift readout on demand: a registered geo experiment (experiment_id) or an ad-hoc "
        "design (treated_units, start_date, end_date, pre_period_days, platform), by "
        "difference in differences or synthetic control, on revenue or orders. Writes one "
        "row to causal.lift_analysis_results under model adhoc_<method>, never touching the "
        "scheduled readouts. Sample run config: config/geo_lift_analysis.yaml and "
        "config/geo_lift_analysis_adhoc.yaml."
    ),
)
def geo_lift_analysis() -> None:
    analyze_geo_lift()
