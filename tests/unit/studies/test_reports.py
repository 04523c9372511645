"""The report frames, workbook, CSVs and markdown, on a real DuckDB file: results written by
the real results writers, the workbook reopened with openpyxl and pandas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.quality import DAILY_SOURCES
from cfap_orchestration.studies.reports import (
    EXCEL_CELL_LIMIT,
    Sheet,
    estimates_markdown,
    estimates_report,
    read_lift_results,
    report_sheets,
    write_csvs,
    write_workbook,
)
from cfap_orchestration.studies.results import StudyRow, results_frame, write_results
from cfap_orchestration.warehouse import DuckDBWarehouse

WRITTEN = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)
PERIOD = {"start_date": "2025-01-06", "end_date": "2025-04-27"}
SHEETS = [
    "contents",
    "lift_results",
    "mmm_roas",
    "mmm_budget_plan",
    "attribution",
    "data_quality",
    "truth_scorecard",
]


def _row(
    subject: str,
    metric: str,
    effect: float,
    ci: tuple[float, float],
    *,
    p_value: float = float("nan"),
    relative: float | None = None,
    details: dict[str, object] | None = None,
    value: float | None = None,
    roas: float | None = None,
) -> StudyRow:
    estimate = EffectEstimate(
        effect=effect,
        ci_lower=ci[0],
        ci_upper=ci[1],
        p_value=p_value,
        std_error=1.0,
        n_obs=100,
        method="test",
        effect_relative=relative,
        details=details or {},
    )
    return StudyRow(subject, metric, estimate, incremental_value=value, incremental_roas=roas)


def _write(
    warehouse: DuckDBWarehouse, model: str, rows: list[StudyRow], *, by_metric: bool = False
) -> None:
    frame = results_frame(
        rows,
        run_id=f"run-{model}",
        model_name=model,
        model_version="1",
        params={**PERIOD, "model": model},
        created_at=WRITTEN,
    )
    write_results(warehouse, model_name=model, results=frame, by_metric=by_metric)


def _results(warehouse: DuckDBWarehouse) -> None:
    _write(
        warehouse,
        "difference_in_differences",
        [_row("geo_test", "revenue", 120.0, (40.0, 200.0), p_value=0.01, value=10_080.0)],
    )
    _write(
        warehouse,
        "media_mix_model",
        [
            _row("paid_search", "roas", 2.5, (1.9, 3.1), value=50_000.0, roas=2.5),
            _row("paid_social", "roas", 1.2, (0.8, 1.7), value=30_000.0, roas=1.2),
        ],
        by_metric=True,
    )
    _write(
        warehouse,
        "media_mix_model",
        [_row("paid_search", "incremental_revenue", 50_000.0, (40_000.0, 61_000.0))],
        by_metric=True,
    )
    _write(
        warehouse,
        "media_mix_model_uncalibrated",
        [_row("paid_search", "roas", 3.4, (2.0, 4.9), value=68_000.0, roas=3.4)],
        by_metric=True,
    )
    for model, credits in {
        "shapley_attribution": {"email": 60.0, "paid_search": 40.0},
        "markov_attribution": {"email": 55.0, "paid_search": 45.0},
    }.items():
        rows = [
            _row(
                channel,
                "conversions",
                conversions,
                (conversions - 5, conversions + 5),
                relative=conversions / 100,
                details={"attributed_value": conversions * 80, "share": conversions / 100},
            )
            for channel, conversions in credits.items()
        ]
        _write(warehouse, model, rows)


BUDGET_PLAN = pd.DataFrame(
    {
        "channel": ["paid_search", "paid_social"],
        "current_spend": [1_000.0, 2_000.0],
        "optimal_spend": [1_400.0, 1_600.0],
        "expected_contribution": [3_300.0, 2_100.0],
        "hdi_low": [2_900.0, 1_800.0],
        "hdi_high": [3_700.0, 2_400.0],
        "current_contribution": [2_500.0, 2_400.0],
        "model_name": "media_mix_model",
        "run_id": "run-budget",
    }
)
SCORECARD = pd.DataFrame(
    {
        "model_name": ["difference_in_differences", "media_mix_model", "shapley_attribution"],
        "subject": ["geo_test", "paid_search", "email"],
        "metric": ["revenue", "roas", "conversions"],
        "unit": ["revenue per holdout region-day", "revenue per unit of spend", "share"],
        "estimate": [120.0, 2.5, 0.6],
        "ci_lower": [40.0, 1.9, 0.55],
        "ci_upper": [200.0, 3.1, 0.65],
        "true_value": [150.0, 3.5, 0.5],
        "error": [-30.0, -1.0, 0.1],
        "covered": [True, False, False],
        "truth": ["t1", "t2", "t3"],
    }
)


def _quality_inputs(warehouse: DuckDBWarehouse, *, missing_day: str) -> None:
    """Raw, staging and marts tables as quality.assess reads them: three days loaded,
    one source without `missing_day`; spend and orders that reconcile."""
    days = pd.to_datetime(["2025-03-01", "2025-03-02", "2025-03-03"])
    for table in DAILY_SOURCES:
        loaded = days[days != pd.Timestamp(missing_day)] if table == "klaviyo_events" else days
        frame = pd.DataFrame({"partition_date": loaded})
        if table == "meta_ads_insights":
            frame["spend"] = "100.00"
        if table == "google_ads_campaign_stats":
            frame["metrics_cost_micros"] = "50000000"
        warehouse.replace_table("raw", table, frame)
    marketing = pd.DataFrame(
        {"platform": ["meta", "google_ads"], "spend": [270.0, 150.0], "fx_rate": [0.9, 1.0]}
    )
    warehouse.replace_table("marts", "fct_marketing_daily", marketing)
    orders = pd.DataFrame(
        {"order_id": ["a", "b", "c"], "is_cancelled": [False, False, True], "order_date": days}
    )
    warehouse.replace_table("staging", "stg_shopify__orders", orders)
    warehouse.replace_table(
        "marts", "fct_orders_daily", pd.DataFrame({"date_day": days, "orders": [1, 1, 0]})
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> DuckDBWarehouse:
    """Every input filled; only read by the tests that use it."""
    warehouse = DuckDBWarehouse(tmp_path_factory.mktemp("filled") / "warehouse.duckdb")
    _results(warehouse)
    warehouse.replace_table("causal", "mmm_budget_plan", BUDGET_PLAN)
    warehouse.replace_table("causal", "estimates_vs_truth", SCORECARD)
    _quality_inputs(warehouse, missing_day="2025-03-02")
    return warehouse


def _sheets(warehouse: DuckDBWarehouse, *, sandbox: bool = True) -> dict[str, Sheet]:
    return {s.name: s for s in report_sheets(warehouse, sandbox=sandbox, generated_at=WRITTEN)}


def test_workbook_has_one_sheet_each_with_frozen_header_and_fitted_widths(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    path = write_workbook(list(_sheets(warehouse).values()), tmp_path / "out" / "cfap.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == SHEETS
    for name in SHEETS:
        sheet = book[name]
        assert sheet.freeze_panes == "A2"
        widths = [d.width for d in sheet.column_dimensions.values()]
        assert widths and all(8 <= w <= 60 for w in widths)
    contents = book["contents"]
    header = [c.value for c in contents[1]]
    description_width = contents.column_dimensions["C"].width
    assert header[:3] == ["sheet", "rows", "description"]
    assert description_width > contents.column_dimensions["B"].width
    assert [p.name for p in path.parent.iterdir()] == ["cfap.xlsx"]  # no temp file left


def test_lift_results_sheet_holds_every_latest_estimate_with_its_period(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    path = write_workbook(list(_sheets(warehouse).values()), tmp_path / "cfap.xlsx")
    lift = pd.read_excel(path, sheet_name="lift_results")
    assert len(lift) == 9
    did = lift[lift["model_name"] == "difference_in_differences"].iloc[0]
    assert (did["subject"], did["effect"], did["ci_lower"], did["ci_upper"]) == (
        "geo_test", 120.0, 40.0, 200.0,
    )  # fmt: skip
    assert did["p_value"] == pytest.approx(0.01)
    assert did["incremental_value"] == 10_080.0
    assert (did["period_start"], did["period_end"]) == ("2025-01-06", "2025-04-27")
    # Excel holds no time zone: the instant, in UTC.
    assert did["created_at"] == pd.Timestamp("2025-05-01 12:30:00")
    assert json.loads(did["params"])["model"] == "difference_in_differences"


def test_mmm_roas_and_budget_plan_sheets(warehouse: DuckDBWarehouse, tmp_path: Path) -> None:
    path = write_workbook(list(_sheets(warehouse).values()), tmp_path / "cfap.xlsx")
    roas = pd.read_excel(path, sheet_name="mmm_roas")
    # The roas rows of both fits; not the contributions the same model published.
    assert sorted(zip(roas["variant"], roas["channel"], roas["roas"], strict=True)) == [
        ("calibrated", "paid_search", 2.5),
        ("calibrated", "paid_social", 1.2),
        ("uncalibrated", "paid_search", 3.4),
    ]
    search = roas[(roas["variant"] == "calibrated") & (roas["channel"] == "paid_search")].iloc[0]
    assert (search["hdi_low"], search["hdi_high"], search["incremental_revenue"]) == (
        1.9, 3.1, 50_000.0,
    )  # fmt: skip
    plan = pd.read_excel(path, sheet_name="mmm_budget_plan").set_index("channel")
    assert plan.loc["paid_search", "spend_change"] == pytest.approx(400.0)
    assert plan.loc["paid_social", "contribution_gain"] == pytest.approx(-300.0)
    assert plan.loc["paid_search", "hdi_high"] == 3_700.0


def test_attribution_sheet_puts_the_methods_side_by_side_per_channel(
    warehouse: DuckDBWarehouse,
) -> None:
    frame = _sheets(warehouse)["attribution"].frame
    assert list(zip(frame["channel"], frame["method"], strict=True)) == [
        ("email", "markov"),
        ("email", "shapley"),
        ("paid_search", "markov"),
        ("paid_search", "shapley"),
    ]
    email = frame[(frame["channel"] == "email") & (frame["method"] == "shapley")].iloc[0]
    assert (email["conversions"], email["share"], email["attributed_value"]) == (60, 0.6, 4800)
    assert frame["journeys"].eq(100).all()


def test_data_quality_sheet_scores_the_warehouse(warehouse: DuckDBWarehouse) -> None:
    sheet = _sheets(warehouse)["data_quality"]
    findings = sheet.frame.set_index(["table", "check"])
    klaviyo = ("raw.klaviyo_events", "days_present")
    assert findings.loc[klaviyo, "score"] == pytest.approx(2 / 3)
    assert findings.loc[klaviyo, "severity"] == "warning"
    assert findings.loc[("marts.fct_orders_daily", "orders_counted_once"), "score"] == 1.0
    assert findings.loc[("marts.fct_marketing_daily", "meta_spend_matches_raw"), "score"] == 1.0
    assert sheet.note is not None and "1 issue(s)" in sheet.note


def test_contents_lists_each_sheet_with_its_rows_and_source(warehouse: DuckDBWarehouse) -> None:
    sheets = _sheets(warehouse)
    contents = sheets["contents"].frame.set_index("sheet")
    assert list(contents.index) == SHEETS[1:]
    for name in SHEETS[1:]:
        assert contents.loc[name, "rows"] == sheets[name].rows
    assert contents.loc["truth_scorecard", "source"] == "causal.estimates_vs_truth"
    assert sheets["contents"].note == "generated 2025-05-01 12:30 UTC"


def test_without_the_sandbox_there_is_no_truth_sheet(warehouse: DuckDBWarehouse) -> None:
    assert list(_sheets(warehouse, sandbox=False)) == SHEETS[:-1]


def test_csvs_one_per_sheet_beside_the_workbook_and_rewrites_are_identical(
    warehouse: DuckDBWarehouse, tmp_path: Path
) -> None:
    sheets = list(_sheets(warehouse).values())
    folder = tmp_path / "reports"
    first = write_csvs(sheets, folder)
    assert [p.name for p in first] == [f"{name}.csv" for name in SHEETS]
    before = {p.name: p.read_bytes() for p in first}
    write_csvs(sheets, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    roas = pd.read_csv(folder / "mmm_roas.csv")
    assert set(roas["channel"]) == {"paid_search", "paid_social"}
    truth = pd.read_csv(folder / "truth_scorecard.csv")
    assert list(truth["true_value"]) == [150.0, 3.5, 0.5]


def test_only_the_latest_row_of_an_estimate_is_reported(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    older, newer = (
        results_frame(
            [_row("geo_test", "revenue", effect, (0.0, 300.0))],
            run_id=run,
            model_name="synthetic_control",
            model_version="1",
            params=PERIOD,
            created_at=at,
        )
        for effect, run, at in [(90.0, "old", WRITTEN - timedelta(days=7)), (110.0, "new", WRITTEN)]
    )
    # A row another writer left behind, beside the current one.
    warehouse.replace_table("causal", "lift_analysis_results", pd.concat([newer, older]))
    latest = read_lift_results(warehouse)
    assert latest is not None
    assert list(zip(latest["run_id"], latest["effect"], strict=True)) == [("new", 110.0)]


def test_missing_tables_give_empty_sheets_that_say_what_to_run(tmp_path: Path) -> None:
    empty = DuckDBWarehouse(tmp_path / "never_created.duckdb")
    sheets = _sheets(empty)
    for name in SHEETS[1:]:
        assert sheets[name].rows == 0 and sheets[name].note
    assert "causal/mmm_budget_plan" in str(sheets["mmm_budget_plan"].note)
    assert "causal/estimates_vs_truth" in str(sheets["truth_scorecard"].note)
    quality_note = str(sheets["data_quality"].note)
    assert "raw.meta_ads_insights" in quality_note and "marts.fct_orders_daily" in quality_note
    path = write_workbook(list(sheets.values()), tmp_path / "cfap.xlsx")
    budget = pd.read_excel(path, sheet_name="mmm_budget_plan")
    assert list(budget.columns) == ["note"]
    assert "does not exist yet" in budget["note"].iloc[0]
    assert not (tmp_path / "never_created.duckdb").exists()  # reading created nothing


def test_a_results_table_that_breaks_its_contract_is_an_error_naming_the_columns(
    tmp_path: Path,
) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.replace_table(
        "causal", "lift_analysis_results", pd.DataFrame({"model_name": ["cuped"], "effect": [1.0]})
    )
    with pytest.raises(ValueError, match=r"lift_analysis_results lacks columns \['run_id'"):
        report_sheets(warehouse, sandbox=False)
    warehouse = DuckDBWarehouse(tmp_path / "no_results.duckdb")
    warehouse.replace_table("causal", "mmm_budget_plan", BUDGET_PLAN.drop(columns="optimal_spend"))
    with pytest.raises(
        ValueError, match=r"causal.mmm_budget_plan lacks columns \['optimal_spend'\]"
    ):
        report_sheets(warehouse, sandbox=False)


def test_bad_sheet_names_and_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'roas/week' is not a valid Excel sheet name"):
        Sheet("roas/week", "", "", pd.DataFrame())
    with pytest.raises(ValueError, match="not a valid Excel sheet name"):
        Sheet("x" * 32, "", "", pd.DataFrame())
    twins = [Sheet("ROAS", "", "", pd.DataFrame()), Sheet("roas", "", "", pd.DataFrame())]
    with pytest.raises(ValueError, match=r"repeated: \['roas'\]"):
        write_workbook(twins, tmp_path / "cfap.xlsx")
    with pytest.raises(ValueError, match=r"must end in \.xlsx"):
        write_workbook(twins[:1], tmp_path / "cfap.xls")
    with pytest.raises(ValueError, match="no sheets"):
        write_csvs([], tmp_path)


def test_a_failed_write_leaves_the_previous_workbook_whole(tmp_path: Path) -> None:
    path = tmp_path / "cfap.xlsx"
    write_workbook([Sheet("one", "", "", pd.DataFrame({"a": [1]}))], path)
    # A time-zone-aware time among text: Excel cannot hold it, the write fails part-way.
    unwritable = Sheet("one", "", "", pd.DataFrame({"a": ["fine", WRITTEN]}))
    with pytest.raises(ValueError, match="timezones"):
        write_workbook([unwritable], path)
    assert pd.read_excel(path, sheet_name="one")["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["cfap.xlsx"]


def test_text_excel_cannot_hold_is_fixed_in_excel_and_whole_in_the_csv(tmp_path: Path) -> None:
    long = "x" * (EXCEL_CELL_LIMIT + 10)
    sheet = Sheet("long", "", "", pd.DataFrame({"diagnostics": [long, "bell\x07 in an error"]}))
    book = openpyxl.load_workbook(write_workbook([sheet], tmp_path / "cfap.xlsx"))
    assert len(book["long"]["A2"].value) == EXCEL_CELL_LIMIT
    assert book["long"]["A3"].value == "bell in an error"
    assert len(pd.read_csv(write_csvs([sheet], tmp_path)[0])["diagnostics"].iloc[0]) == (
        EXCEL_CELL_LIMIT + 10
    )


def _model_table(text: str, model: str) -> list[dict[str, str]]:
    """The rows of one model's table in the estimates markdown, by column header."""
    section = text.split(f"## {model}\n")[1].split("\n## ")[0]
    lines = [line for line in section.strip().splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]


def test_estimates_markdown_with_the_truth_beside_each_scored_estimate(
    warehouse: DuckDBWarehouse,
) -> None:
    text, shown = estimates_report(warehouse, sandbox=True, generated_at=WRITTEN)
    assert shown == 9
    assert text.startswith("# Latest estimates\n\nGenerated 2025-05-01 12:30 UTC")
    assert "9 estimates from 5 models, written 2025-05-01 12:30 to 2025-05-01 12:30 UTC" in text
    assert "3 estimates scored" in text and "1 of 2 experiment and model intervals" in text
    [did] = _model_table(text, "difference_in_differences")
    assert did["effect"] == "120" and did["incremental_value"] == "10,080"
    assert (did["true value"], did["error"], did["covered"]) == ("150", "-30", "yes")
    roas = {r["subject"]: r for r in _model_table(text, "media_mix_model") if r["metric"] == "roas"}
    assert (roas["paid_search"]["true value"], roas["paid_search"]["covered"]) == ("3.5", "no")
    assert roas["paid_social"]["true value"] == ""  # no truth scored for it
    email = _model_table(text, "shapley_attribution")[0]
    assert (email["effect"], email["scored as"], email["scored estimate"]) == ("60", "share", "0.6")
    # Markov has no scored row here: its table carries no empty truth columns.
    assert "true value" not in _model_table(text, "markov_attribution")[0]


def test_estimates_markdown_in_production_has_no_truth_columns(
    warehouse: DuckDBWarehouse,
) -> None:
    text, _ = estimates_report(warehouse, sandbox=False, generated_at=WRITTEN)
    assert "true value" not in text and "Sandbox" not in text
    [row] = _model_table(text, "media_mix_model_uncalibrated")
    assert row == {
        "subject": "paid_search",
        "metric": "roas",
        "effect": "3.4",
        "ci_lower": "2",
        "ci_upper": "4.9",
        "incremental_value": "68,000",
        "incremental_roas": "3.4",
        "n_obs": "100",
    }


def test_estimates_markdown_when_the_tables_are_not_built_yet(tmp_path: Path) -> None:
    nothing = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    text, shown = estimates_report(nothing, sandbox=True, generated_at=WRITTEN)
    assert shown == 0 and "No estimates yet: materialize the measurement assets" in text
    _write(nothing, "cuped", [_row("email", "revenue_per_recipient", 0.4, (0.1, 0.7))])
    text, shown = estimates_report(nothing, sandbox=True, generated_at=WRITTEN)
    assert shown == 1
    assert "scorecard against the simulated brand's truth is not built yet" in text
    assert "true value" not in estimates_markdown(read_lift_results(nothing), None)


def test_quality_sheet_is_written_on_a_warehouse_without_results(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    _quality_inputs(warehouse, missing_day="2025-03-09")  # not in the span: all complete
    sheets = _sheets(warehouse, sandbox=False)
    assert sheets["data_quality"].frame["score"].eq(1.0).all()
    assert sheets["lift_results"].note == (
        "causal.lift_analysis_results does not exist yet: no measurement asset has run."
    )
