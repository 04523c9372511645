"""Geo readouts as MMM lift tests, on a real DuckDB file: one test per experiment, the two
methods averaged, scaled from the holdout regions to the national curve, and every readout
left out named with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cfap_orchestration.studies.media_mix import lift_tests_from_readouts
from cfap_orchestration.warehouse import DuckDBWarehouse

WEEKS = pd.DataFrame(
    {
        "week_start": pd.date_range("2025-03-03", periods=12, freq="7D"),
        "spend_paid_social": 9_000.0,
        "spend_paid_search": 4_000.0,  # national spend while 3 regions were held out
        "revenue": 100_000.0,
    }
)
# Three holdout regions withheld 50 a day each: 1,050 a week against 4,000 still spent.
DETAILS = json.dumps({"holdout_geos": ["A", "B", "C"], "spend_withheld_per_region_day": 50.0})


def _readout(experiment: str, model: str, effect: float, std_error: float) -> dict[str, object]:
    return {
        "model_name": model,
        "subject": experiment,
        "metric": "revenue",
        "effect": effect,
        "std_error": std_error,
        "diagnostics": DETAILS,
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    registry = pd.DataFrame(
        {
            "experiment_id": ["search_spring", "search_fall", "radio_test", "search_1999"],
            "channel": ["paid_search", "paid_search", "radio", "paid_search"],
            "start_date": pd.to_datetime(["2025-03-10", "2025-04-07", "2025-03-10", "1999-01-04"]),
            "end_date": pd.to_datetime(["2025-04-06", "2025-05-04", "2025-04-06", "1999-01-31"]),
        }
    )
    warehouse.replace_table("staging", "stg_reference__experiment_registry", registry)
    results = pd.DataFrame(
        [
            _readout("search_spring", "difference_in_differences", 60.0, 20.0),
            _readout("search_spring", "synthetic_control", 40.0, 40.0),
            _readout("search_fall", "difference_in_differences", -5.0, 20.0),
            _readout("radio_test", "difference_in_differences", 60.0, 20.0),
            _readout("search_1999", "difference_in_differences", 60.0, 20.0),
            _readout("search_spring", "cuped", 1.0, 0.1),  # another model: ignored
        ]
    )
    warehouse.replace_table("causal", "lift_analysis_results", results)
    return warehouse


def test_both_methods_make_one_national_lift_test(warehouse: DuckDBWarehouse) -> None:
    tests, _ = lift_tests_from_readouts(warehouse, WEEKS)
    (test,) = tests.to_dict("records")
    usual = 4_000.0 + 1_050.0
    share = 1_050.0 / usual
    assert test["experiment_id"] == "search_spring"
    assert test["methods"] == "difference_in_differences+synthetic_control"
    assert test["x"] == pytest.approx(usual) and test["delta_x"] == pytest.approx(-usual)
    # Mean effect 50 per region-day over 21 region-days a week, scaled up by the share.
    assert test["delta_y"] == pytest.approx(-50.0 * 21 / share)
    assert test["sigma"] == pytest.approx(30.0 * 21 / share)


def test_every_readout_left_out_is_named_with_its_reason(warehouse: DuckDBWarehouse) -> None:
    _, notes = lift_tests_from_readouts(warehouse, WEEKS)
    assert len(notes) == 3
    assert any(n.startswith("search_fall") and "not a loss" in n for n in notes)
    assert any(n.startswith("radio_test") and "'radio' is not in the model" in n for n in notes)
    assert any(n.startswith("search_1999") and "outside the modelled weeks" in n for n in notes)


def test_no_results_table_yet_is_said(tmp_path: Path) -> None:
    tests, notes = lift_tests_from_readouts(DuckDBWarehouse(tmp_path / "empty.duckdb"), WEEKS)
    assert tests.empty
    assert notes == ["no geo readouts: causal.lift_analysis_results does not exist yet"]
