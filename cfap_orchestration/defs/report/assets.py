"""The report assets: the results workbook with its CSVs, and the estimates report.

Both read the results tables the measurement assets write, so those assets are their
deps; with the sandbox, they also read the scorecard against the simulated brand's truth.
Files go to `reports/` under the artifacts location (`$CFAP_HOME` locally, the artifacts
bucket in prod), each replaced atomically.
"""

from pathlib import Path
from typing import Any

import dagster as dg

from cfap_orchestration.artifacts import ArtifactPath
from cfap_orchestration.defs.measure.calendar import KEY as TEMPORAL_KEY
from cfap_orchestration.defs.measure.experiments import CUPED_KEY, DID_KEY, SC_KEY
from cfap_orchestration.defs.measure.journeys import markov_attribution, shapley_attribution
from cfap_orchestration.defs.measure.media_mix import BUDGET_KEY, CONTRIBUTIONS_KEY, ROAS_KEY
from cfap_orchestration.defs.measure.scoring import estimates_vs_truth
from cfap_orchestration.defs.quality.assets import data_quality_report
from cfap_orchestration.settings import get_settings
from cfap_orchestration.studies.reports import (
    Sheet,
    estimates_report,
    report_sheets,
    sheets_markdown,
    write_csvs,
    write_text,
    write_workbook,
)

WORKBOOK_KEY = dg.AssetKey(["reports", "results_workbook"])
ESTIMATES_REPORT_KEY = dg.AssetKey(["reports", "estimates_report"])
WORKBOOK_FILE = "cfap_results.xlsx"
ESTIMATES_FILE = "estimates_report.md"
# Every asset that writes rows of causal.lift_analysis_results.
RESULTS_WRITERS = [
    DID_KEY,
    SC_KEY,
    CUPED_KEY,
    shapley_attribution.key,
    markov_attribution.key,
    TEMPORAL_KEY,
    ROAS_KEY,
    CONTRIBUTIONS_KEY,
]
SCORECARD_KEY = estimates_vs_truth.key


def workbook_deps(*, sandbox: bool) -> list[dg.AssetKey]:
    extra = [SCORECARD_KEY] if sandbox else []
    return [*RESULTS_WRITERS, BUDGET_KEY, data_quality_report.key, *extra]


def estimates_report_deps(*, sandbox: bool) -> list[dg.AssetKey]:
    return [*RESULTS_WRITERS, *([SCORECARD_KEY] if sandbox else [])]


def _file_metadata(path: ArtifactPath) -> dict[str, Any]:
    uri = path.as_uri() if isinstance(path, Path) else str(path)  # gs://… in prod
    return {"dagster/uri": uri, "path": dg.MetadataValue.path(str(path))}


def _workbook_metadata(
    path: ArtifactPath, csvs: list[ArtifactPath], sheets: list[Sheet]
) -> dict[str, Any]:
    return {
        **_file_metadata(path),
        "csv_files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in csvs)),
        **{f"rows_{s.name}": s.rows for s in sheets},
        "preview": dg.MetadataValue.md(sheets_markdown(sheets)),
    }


def _results_workbook(*, sandbox: bool) -> dg.AssetsDefinition:
    truth = " and the scorecard against the simulated brand's truth" if sandbox else ""

    @dg.asset(
        key=WORKBOOK_KEY,
        group_name="report",
        deps=workbook_deps(sandbox=sandbox),
        kinds={"python", "excel"},
        required_resource_keys={"warehouse"},
        description=(
            "The measurement results for people outside Dagster: one Excel workbook "
            f"(reports/{WORKBOOK_FILE} under the artifacts location) with a sheet each for "
            "the latest causal estimates, the media-mix ROAS and budget plan, attribution by "
            f"method, data quality{truth}, and the same sheets as CSVs beside it. A sheet "
            "whose source has not been built yet says so instead of failing."
        ),
    )
    def results_workbook(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        sheets = report_sheets(context.resources.warehouse.get(), sandbox=sandbox)
        folder = get_settings().reports_dir
        path = write_workbook(sheets, folder / WORKBOOK_FILE)
        csvs = write_csvs(sheets, folder)
        context.log.info(f"wrote {path} and {len(csvs)} CSVs")
        return dg.MaterializeResult(metadata=_workbook_metadata(path, csvs, sheets))

    return results_workbook


def _estimates_report(*, sandbox: bool) -> dg.AssetsDefinition:
    truth = ", each beside its true value in the simulated brand" if sandbox else ""

    @dg.asset(
        key=ESTIMATES_REPORT_KEY,
        group_name="report",
        deps=estimates_report_deps(sandbox=sandbox),
        kinds={"python"},
        required_resource_keys={"warehouse"},
        description=(
            "What the latest measurement says, readable in the UI: every current estimate "
            f"with its interval, incremental revenue and ROAS, one table per model{truth}. "
            f"Also written to reports/{ESTIMATES_FILE} under the artifacts location."
        ),
    )
    def estimates_report_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        text, estimates = estimates_report(context.resources.warehouse.get(), sandbox=sandbox)
        path = write_text(text, get_settings().reports_dir / ESTIMATES_FILE)
        return dg.MaterializeResult(
            metadata={
                **_file_metadata(path),
                "estimates": estimates,
                "report": dg.MetadataValue.md(text),
            }
        )

    return estimates_report_asset


def report_assets(*, sandbox: bool) -> list[dg.AssetsDefinition]:
    return [_results_workbook(sandbox=sandbox), _estimates_report(sandbox=sandbox)]
