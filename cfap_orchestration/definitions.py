"""The one Definitions root: workspace.yaml and `dagster ... -m cfap_orchestration.definitions`."""

import dagster as dg

from cfap_orchestration.defs.analysis import analysis_definitions
from cfap_orchestration.defs.automation import automation_definitions
from cfap_orchestration.defs.automation.freshness import with_daily_freshness
from cfap_orchestration.defs.dbt import dbt_definitions
from cfap_orchestration.defs.ingest import ingest_definitions
from cfap_orchestration.defs.kubernetes import kubernetes_executor
from cfap_orchestration.defs.measure import measure_definitions
from cfap_orchestration.defs.quality import quality_definitions
from cfap_orchestration.defs.reference import reference_definitions
from cfap_orchestration.defs.report import report_definitions
from cfap_orchestration.resources import build_resources
from cfap_orchestration.settings import get_settings


@dg.definitions
def defs() -> dg.Definitions:
    settings = get_settings()
    merged = dg.Definitions.merge(
        ingest_definitions(),
        reference_definitions(),
        dbt_definitions(),
        quality_definitions(),
        measure_definitions(sandbox=settings.env == "local"),
        report_definitions(sandbox=settings.env == "local"),
        analysis_definitions(),
        automation_definitions(),
        dg.Definitions(resources=build_resources(settings)),
    ).map_asset_specs(func=with_daily_freshness)
    # Locally every step shares one DuckDB file, which takes one writer at a time. In
    # production each step is a Kubernetes job running as its domain's service account.
    executor = dg.in_process_executor if settings.env == "local" else kubernetes_executor(merged)
    return dg.Definitions.merge(merged, dg.Definitions(executor=executor))
