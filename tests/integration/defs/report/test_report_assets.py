"""The report assets end to end: sandbox APIs -> raw -> dbt marts -> the quick estimators and
the scorecard -> the results workbook, its CSVs and the estimates report under
$CFAP_HOME/reports. The media-mix rows are written through the real results writers (its
fit has its own, slow test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import openpyxl
import pandas as pd
import pytest
from tests_support import asset_job, sandbox_marts

from cfap_orchestration.defs.report import report_definitions
from cfap_orchestration.resources import build_resources
from cfap_orchestration.settings import get_settings
from cfap_orchestration.studies.media_mix import roas_rows
from cfap_orchestration.studies.results import results_frame, write_results
from cfap_orchestration.warehouse import DuckDBWarehouse

pytestmark = pytest.mark.slow

RANGE = ("2025-02-10", "2025-05-10")
QUICK = [
    dg.AssetKey(["causal", name])
    for name in ("cuped", "shapley_attribution", "markov_attribution", "temporal_effects")
]
SCORECARD = dg.AssetKey(["causal", "estimates_vs_truth"])
WORKBOOK = dg.AssetKey(["reports", "results_workbook"])
REPORT = dg.AssetKey(["reports", "estimates_report"])
# A 2,000-customer brand over 90 days: smaller than the production minimums.
SMALL = {
    "causal__cuped": {"config": {"min_arm_size": 50}},
    "causal__shapley_attribution": {"config": {"min_conversions": 1}},
    "causal__markov_attribution": {"config": {"min_conversions": 1}},
    "causal__temporal_effects": {"config": {"start_date": RANGE[0]}},
}
SHEETS = ["contents", "lift_results", "mmm_roas", "mmm_budget_plan", "attribution"]
SHEETS += ["data_quality", "truth_scorecard"]


@dataclass
class Reported:
    home: Path
    warehouse: DuckDBWarehouse
    graph_keys: set[dg.AssetKey]
    production: dg.ExecuteInProcessResult
    production_workbook: list[str]
    production_markdown: str
    sandbox: dg.ExecuteInProcessResult
    first_csvs: dict[str, bytes]
    again: dg.ExecuteInProcessResult


def _write_media_mix(warehouse: DuckDBWarehouse) -> None:
    """What causal/mmm_channel_roas and mmm_budget_plan publish, through the same writers."""
    roas = pd.DataFrame(
        {
            "channel": ["paid_search", "paid_social"],
            "mean": [2.4, 1.3],
            "hdi_low": [1.6, 0.9],
            "hdi_high": [3.3, 1.8],
            "contribution": [41_000.0, 36_000.0],
        }
    )
    frame = results_frame(
        roas_rows(roas, n_obs=12),
        run_id="mmm-run",
        model_name="media_mix_model",
        model_version="1",
        params={"start_date": "2025-02-10", "end_date": "2025-05-04", "variant": "calibrated"},
    )
    write_results(warehouse, model_name="media_mix_model", results=frame, by_metric=True)
    plan = pd.DataFrame(
        {
            "channel": ["paid_search", "paid_social"],
            "current_spend": [1_500.0, 2_800.0],
            "optimal_spend": [1_900.0, 2_400.0],
            "expected_contribution": [3_900.0, 3_300.0],
            "hdi_low": [3_000.0, 2_700.0],
            "hdi_high": [4_800.0, 3_900.0],
            "current_contribution": [3_400.0, 3_500.0],
        }
    )
    warehouse.replace_table(
        "causal", "mmm_budget_plan", plan.assign(model_name="media_mix_model", run_id="mmm-run")
    )


def _report_job(*, sandbox: bool) -> dg.JobDefinition:
    resources = dg.Definitions(resources=build_resources(get_settings()))
    return asset_job(dg.Definitions.merge(report_definitions(sandbox=sandbox), resources))


def _csvs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    home = tmp_path_factory.mktemp("cfap")
    with sandbox_marts(home, *RANGE) as (defs, instance):
        warehouse = DuckDBWarehouse(home / "warehouse.duckdb")
        job = asset_job(defs)
        job.execute_in_process(instance=instance, asset_selection=QUICK, run_config={"ops": SMALL})
        _write_media_mix(warehouse)
        job.execute_in_process(instance=instance, asset_selection=[SCORECARD])
        production = _report_job(sandbox=False).execute_in_process(instance=instance)
        reports = get_settings().reports_dir
        production_workbook = openpyxl.load_workbook(reports / "cfap_results.xlsx").sheetnames
        production_markdown = (reports / "estimates_report.md").read_text()
        sandbox = _report_job(sandbox=True).execute_in_process(instance=instance)
        first_csvs = _csvs(reports)
        again = _report_job(sandbox=True).execute_in_process(instance=instance)
        yield Reported(
            home,
            warehouse,
            set(defs.resolve_asset_graph().get_all_asset_keys()),
            production,
            production_workbook,
            production_markdown,
            sandbox,
            first_csvs,
            again,
        )


def _metadata(run: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    [materialization] = run.asset_materializations_for_node("__".join(key.path))
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_each_dep_is_an_asset_of_the_project(reported: Reported) -> None:
    for sandbox in (True, False):
        graph = dg.Definitions.merge(
            report_definitions(sandbox=sandbox),
            dg.Definitions(resources=build_resources(get_settings())),
        ).resolve_asset_graph()
        for key in (WORKBOOK, REPORT):
            parents = graph.get(key).parent_keys
            assert parents <= reported.graph_keys, parents - reported.graph_keys
            assert (SCORECARD in parents) is sandbox
            assert graph.get(key).group_name == "report"


def test_the_workbook_holds_the_results_tables(reported: Reported) -> None:
    path = reported.home / "reports" / "cfap_results.xlsx"
    book = pd.read_excel(path, sheet_name=None)
    assert list(book) == SHEETS
    results = reported.warehouse.query("SELECT * FROM causal.lift_analysis_results")
    lift = book["lift_results"]
    assert len(lift) == len(results)
    assert set(lift["model_name"]) == {
        "cuped", "shapley_attribution", "markov_attribution", "temporal_effects",
        "media_mix_model",
    }  # fmt: skip
    email = lift[(lift["model_name"] == "cuped") & (lift["subject"] == "email")].iloc[0]
    stored = results[(results["model_name"] == "cuped") & (results["subject"] == "email")]
    assert email["effect"] == pytest.approx(stored["effect"].iloc[0])
    attribution = book["attribution"]
    assert set(attribution["method"]) == {"shapley", "markov"}
    per_method = attribution.groupby("method")["share"].sum()
    assert per_method.to_numpy() == pytest.approx([1.0, 1.0])
    assert set(book["mmm_roas"]["channel"]) == {"paid_search", "paid_social"}
    assert book["mmm_budget_plan"]["spend_change"].tolist() == [400.0, -400.0]
    quality = book["data_quality"]
    assert {"completeness", "accuracy"} == set(quality["dimension"])
    assert quality["score"].between(0, 1).all()
    scorecard = reported.warehouse.query("SELECT * FROM causal.estimates_vs_truth")
    assert len(book["truth_scorecard"]) == len(scorecard)
    assert "media_mix_model" in set(book["truth_scorecard"]["model_name"])


def test_metadata_links_the_files_and_counts_each_sheet(reported: Reported) -> None:
    path = reported.home / "reports" / "cfap_results.xlsx"
    metadata = _metadata(reported.sandbox, WORKBOOK)
    assert metadata["dagster/uri"] == path.as_uri()
    assert metadata["path"] == str(path)
    book = openpyxl.load_workbook(path)
    for name in SHEETS:
        assert metadata[f"rows_{name}"] == book[name].max_row - 1
        assert f"- `{path.parent / (name + '.csv')}`" in metadata["csv_files"]
    assert "### lift_results" in metadata["preview"]
    assert "### truth_scorecard" in metadata["preview"]


def _without_stamp(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("Generated "))


def test_the_estimates_report_sets_each_estimate_beside_its_truth(reported: Reported) -> None:
    metadata = _metadata(reported.sandbox, REPORT)
    text = metadata["report"]
    # The file is the later rerun's: the same report up to its "Generated <minute>" line.
    written = (reported.home / "reports" / "estimates_report.md").read_text()
    assert _without_stamp(written) == _without_stamp(text)
    assert metadata["estimates"] == len(
        reported.warehouse.query("SELECT * FROM causal.lift_analysis_results")
    )
    for model in ("cuped", "shapley_attribution", "temporal_effects", "media_mix_model"):
        assert f"## {model}\n" in text
    cuped = text.split("## cuped\n")[1].split("\n## ")[0]
    assert "true value" in cuped and "revenue per recipient" in cuped
    assert "estimates scored against the simulated brand's truth" in text


def test_production_reports_leave_the_truth_out(reported: Reported) -> None:
    assert reported.production.success
    assert reported.production_workbook == SHEETS[:-1]
    assert "## cuped" in reported.production_markdown
    assert "true value" not in reported.production_markdown
    assert "simulated brand" not in reported.production_markdown


def test_rematerializing_overwrites_the_files_with_the_same_content(reported: Reported) -> None:
    assert reported.again.success
    folder = reported.home / "reports"
    assert _csvs(folder) == reported.first_csvs
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["cfap_results.xlsx", "estimates_report.md", *(f"{name}.csv" for name in SHEETS)]
    )  # the sandbox run replaced the production files; no temporary file is left
