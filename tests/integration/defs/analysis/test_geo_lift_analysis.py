"""The geo_lift_analysis job end to end: sandbox APIs -> raw -> dbt marts -> the job (in
process and through the dagster CLI) -> causal.lift_analysis_results, beside the scheduled
readout it must leave alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml
from tests_support import asset_job, sandbox_marts

from cfap_orchestration.defs.analysis import analysis_definitions
from cfap_orchestration.defs.measure.partitions import register_geo_experiments
from cfap_orchestration.warehouse import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[4]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
REGISTERED_CONFIG = ROOT / "config" / "geo_lift_analysis.yaml"
ADHOC_CONFIG = ROOT / "config" / "geo_lift_analysis_adhoc.yaml"
# The 2024 Google Ads holdout runs 2024-04-08..2024-05-05. Shopify orders are read by update
# time, so the marts reach a couple of weeks before the first day loaded and end a day or two
# before the last: this range covers the test and 28 clean days before it.
RANGE = ("2024-03-11", "2024-05-07")
EXPERIMENT = "geo_holdout_google_ads_2024"
ADHOC_SUBJECT = "google_ads:US-GA|US-MA|US-NY:2024-04-08..2024-05-05:pre28d"
SCHEDULED_DID = dg.AssetKey(["causal", "difference_in_differences"])
OP = "analyze_geo_lift"


@dataclass
class Marts:
    home: Path
    warehouse: DuckDBWarehouse
    job: dg.JobDefinition
    instance: dg.DagsterInstance
    scheduled: pd.DataFrame  # the scheduled readout's row, before any on-demand run
    registered: dg.ExecuteInProcessResult
    adhoc: dg.ExecuteInProcessResult

    def run(self, config: dict[str, Any]) -> dg.ExecuteInProcessResult:
        return self.job.execute_in_process(
            run_config={"ops": {OP: {"config": config}}},
            instance=self.instance,
            raise_on_error=False,
        )

    def rows(self, where: str = "TRUE") -> pd.DataFrame:
        return self.warehouse.query(f"SELECT * FROM causal.lift_analysis_results WHERE {where}")


def _sample(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


@pytest.fixture(scope="module")
def marts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Marts]:
    home = tmp_path_factory.mktemp("cfap")
    with sandbox_marts(home, *RANGE) as (defs, instance):
        warehouse = DuckDBWarehouse(home / "warehouse.duckdb")
        register_geo_experiments(instance, warehouse)
        asset_job(defs).execute_in_process(
            instance=instance, partition_key=EXPERIMENT, asset_selection=[SCHEDULED_DID]
        )
        scheduled = warehouse.query(
            "SELECT * FROM causal.lift_analysis_results WHERE model_name = ?",
            ["difference_in_differences"],
        )
        job = dg.Definitions.merge(defs, analysis_definitions()).get_job_def("geo_lift_analysis")
        registered = job.execute_in_process(
            run_config=_sample(REGISTERED_CONFIG), instance=instance, raise_on_error=False
        )
        adhoc = job.execute_in_process(
            run_config=_sample(ADHOC_CONFIG), instance=instance, raise_on_error=False
        )
        yield Marts(home, warehouse, job, instance, scheduled, registered, adhoc)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    (event,) = result.get_step_failure_events()
    data = event.step_failure_data.user_failure_data
    assert data is not None, event.step_failure_data.error
    return str(data.description)


def _one_row(marts: Marts, run_id: str) -> dict[str, Any]:
    rows = marts.rows(f"run_id = '{run_id}'")
    assert len(rows) == 1, rows
    record = {str(k): v for k, v in rows.iloc[0].items()}
    return record


def test_a_registered_experiment_is_read_out_from_its_panel(marts: Marts) -> None:
    assert marts.registered.success
    row = _one_row(marts, marts.registered.run_id)
    assert (row["model_name"], row["subject"], row["metric"]) == (
        "adhoc_difference_in_differences",
        EXPERIMENT,
        "revenue",
    )
    assert row["ci_lower"] < row["effect"] < row["ci_upper"]
    params = json.loads(row["params"])
    assert params["panel"] == "marts.fct_experiment_geo_panel"
    assert params["treated_units"] == ["US-GA", "US-MA", "US-NY"]
    assert params["inference"] == "randomization"
    fits = marts.warehouse.query(
        "SELECT * FROM causal.causal_model_registry WHERE model_name = ?",
        ["adhoc_difference_in_differences"],
    )
    assert len(fits) >= 1


def test_an_adhoc_design_is_read_out_from_the_geo_marts(marts: Marts) -> None:
    assert marts.adhoc.success
    row = _one_row(marts, marts.adhoc.run_id)
    assert (row["model_name"], row["subject"]) == ("adhoc_synthetic_control", ADHOC_SUBJECT)
    assert row["ci_lower"] < row["effect"] < row["ci_upper"]
    assert pd.notna(row["incremental_roas"])
    params = json.loads(row["params"])
    assert params["panel"] == "marts.fct_orders_daily + marts.fct_marketing_geo_daily"
    assert params["pre_period_days"] == 28 and params["platform"] == "google_ads"
    (output,) = [e for e in marts.adhoc.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    shown = output.step_output_data.metadata
    assert shown["subject"].value == ADHOC_SUBJECT
    assert "treated_vs_synthetic" in shown


def test_on_demand_runs_leave_the_scheduled_readout_alone(marts: Marts) -> None:
    assert len(marts.scheduled) == 1
    after = marts.rows("model_name = 'difference_in_differences'")
    assert after[["run_id", "subject", "effect"]].equals(
        marts.scheduled[["run_id", "subject", "effect"]]
    )


def test_the_adhoc_panel_reproduces_the_registered_one(marts: Marts) -> None:
    """The registered experiment described by hand, with the mart's own pre-period, gives
    the registered readout's estimate: the ad-hoc panel is built as the dbt model builds it."""
    registered = _one_row(marts, marts.registered.run_id)
    pre_days = json.loads(registered["params"])["pre_period_days"]
    config = {
        **_sample(ADHOC_CONFIG)["ops"][OP]["config"],
        "pre_period_days": pre_days,
        "method": "difference_in_differences",
    }
    result = marts.run(config)
    assert result.success
    adhoc = _one_row(marts, result.run_id)
    assert adhoc["subject"] != registered["subject"]
    assert adhoc["effect"] == pytest.approx(registered["effect"], rel=1e-9)
    assert adhoc["ci_upper"] == pytest.approx(registered["ci_upper"], rel=1e-9)


def test_another_metric_is_a_row_of_its_own(marts: Marts) -> None:
    config = {"experiment_id": EXPERIMENT, "metric": "orders", "inference": "cluster"}
    result = marts.run(config)
    assert result.success
    rows = marts.rows(
        f"model_name = 'adhoc_difference_in_differences' AND subject = '{EXPERIMENT}'"
    )
    assert set(rows["metric"]) == {"orders", "revenue"}
    assert pd.isna(_one_row(marts, result.run_id)["incremental_value"])  # revenue only


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"experiment_id": "geo_holdout_tiktok_2024"},
            ["unknown experiment_id 'geo_holdout_tiktok_2024': the registered geo experiments"],
        ),
        (
            {"experiment_id": EXPERIMENT, "treated_units": ["US-CA"]},
            ["give either experiment_id or treated_units, not both"],
        ),
        (
            {
                "treated_units": ["US-CA", "US-ZZ"],
                "start_date": "2024-04-20",
                "end_date": "2024-04-10",
                "platform": "meta",
            },
            ["unknown geo id(s) US-ZZ", "end_date 2024-04-10 is before start_date 2024-04-20"],
        ),
        (
            {
                "treated_units": ["US-CA"],
                "start_date": "2024-06-01",
                "end_date": "2024-06-28",
                "platform": "meta",
            },
            ["the test period 2024-06-01..2024-06-28 is not in the data"],
        ),
        (
            {
                "treated_units": ["US-CA"],
                "start_date": "2024-04-08",
                "end_date": "2024-05-05",
                "pre_period_days": 90,
                "platform": "meta",
            },
            ["the 90-day pre-period starts 2024-01-09, before the first loaded day"],
        ),
        (
            {"experiment_id": "geo_holdout_google_ads_2025"},
            ["the test period of geo_holdout_google_ads_2025 (2025-04-07..2025-05-04, 28 days)"],
        ),
    ],
)
def test_a_request_that_cannot_run_fails_naming_its_problems(
    marts: Marts, config: dict[str, Any], expected: list[str]
) -> None:
    result = marts.run(config)
    message = _failure(result)
    assert message.startswith("the geo lift analysis cannot run:")
    for text in expected:
        assert text in message, message
    assert marts.rows(f"run_id = '{result.run_id}'").empty


def test_a_value_outside_the_literal_is_a_config_error_before_the_run(marts: Marts) -> None:
    runs_before = len(marts.instance.get_runs())
    with pytest.raises(dg.DagsterInvalidConfigError) as raised:
        marts.run({"experiment_id": EXPERIMENT, "method": "magic"})
    message = str(raised.value)
    assert f"root:ops:{OP}:config:method" in message and "magic" in message
    assert len(marts.instance.get_runs()) == runs_before


@pytest.mark.slow
def test_the_cli_runs_the_sample_config(marts: Marts, cfap_home: Path) -> None:
    """`dagster job execute` on the code location, with the marts of this module copied in."""
    cfap_home.mkdir(parents=True)
    shutil.copy(marts.home / "warehouse.duckdb", cfap_home / "warehouse.duckdb")
    dagster_home = cfap_home / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    args = ["job", "execute", "-m", "cfap_orchestration.definitions", "-j", "geo_lift_analysis"]
    result = subprocess.run(
        [DAGSTER, *args, "-c", str(REGISTERED_CONFIG.relative_to(ROOT))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "geo_lift_analysis" and run.is_success
    rows = DuckDBWarehouse(cfap_home / "warehouse.duckdb").query(
        "SELECT model_name, subject FROM causal.lift_analysis_results WHERE run_id = ?",
        [run.run_id],
    )
    assert list(rows.itertuples(index=False, name=None)) == [
        ("adhoc_difference_in_differences", EXPERIMENT)
    ]
