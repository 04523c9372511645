"""Files dropped in the landing zone, through the sensors, into the warehouse and results.

Real parts throughout: the sandbox's marts in a DuckDB file, a Dagster test instance, the
sensors evaluated with Dagster's sensor context, and their run requests executed as runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from tests_support import asset_job, sandbox_marts

from cfap_orchestration.defs.automation.sensors import (
    landing_zone_sensor,
    new_geo_experiment_sensor,
)
from cfap_orchestration.defs.measure.partitions import GEO_EXPERIMENTS
from cfap_orchestration.resources import DuckDBWarehouseResource, LandingZoneResource
from cfap_orchestration.warehouse import DuckDBWarehouse

RANGE = ("2025-02-10", "2025-05-10")
UPLOADED = "geo_holdout_meta_uploaded"
EXPERIMENT_CSV = (
    "experiment_id,experiment_type,platform,channel,start_date,end_date,treatment,holdout_units\n"
    f"{UPLOADED},geo_holdout,meta,paid_social,2025-04-14,2025-05-04,ads_off,US-TX|US-FL\n"
)
CONVERSIONS_CSV = (
    "conversion_id,conversion_time,conversion_name,value,currency\n"
    "c-1,2025-05-01T10:00:00-05:00,phone_order,120.5,USD\n"
    "c-2,2025-05-02T11:30:00-05:00,phone_order,80,USD\n"
)


@dataclass
class Pipeline:
    home: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    warehouse: DuckDBWarehouse
    cursor: str | None = None

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    def drop(self, kind: str, name: str, text: str) -> Path:
        folder = self.landing / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_text(text)
        return path

    def tick(self) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"landing_zone": LandingZoneResource(path=str(self.landing))},
        )
        result = landing_zone_sensor(context)
        self.cursor = result.cursor if isinstance(result, dg.SensorResult) else context.cursor
        return result

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        return asset_job(self.defs).execute_in_process(
            instance=self.instance,
            asset_selection=list(request.asset_selection or []),
            tags=dict(request.tags),
            partition_key=request.partition_key,
            raise_on_error=False,
        )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("cfap")
    with sandbox_marts(home, *RANGE) as (defs, instance):
        yield Pipeline(home, defs, instance, DuckDBWarehouse(home / "warehouse.duckdb"))


def _requests(result: dg.SensorResult | dg.SkipReason) -> list[dg.RunRequest]:
    assert isinstance(result, dg.SensorResult), result
    return list(result.run_requests or [])


def _failure_messages(result: dg.ExecuteInProcessResult) -> str:
    events = result.all_events
    return " ".join(
        str(e.message) + str(getattr(e.event_specific_data, "error", ""))
        for e in events
        if e.is_failure or e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )


def test_day_files_loaded_by_the_pipeline_are_not_requested_again(pipeline: Pipeline) -> None:
    result = pipeline.tick()
    assert isinstance(result, dg.SkipReason), result
    seen = json.loads(pipeline.cursor or "{}")["first_party_events"]
    assert len(seen) == 90  # every day file of the range, remembered


def test_a_valid_upload_is_loaded_once(pipeline: Pipeline) -> None:
    pipeline.drop("offline_conversions", "may.csv", CONVERSIONS_CSV)
    (request,) = _requests(pipeline.tick())
    assert request.asset_selection == [dg.AssetKey(["raw", "offline_conversions"])]
    assert pipeline.run(request).success
    assert isinstance(pipeline.tick(), dg.SkipReason)  # nothing new: the file moved away
    # The same bytes under another name: requested (new file), but not loaded twice.
    pipeline.drop("offline_conversions", "may-again.csv", CONVERSIONS_CSV)
    (again,) = _requests(pipeline.tick())
    assert again.run_key != request.run_key and pipeline.run(again).success
    rows = pipeline.warehouse.query("SELECT conversion_id FROM raw.offline_conversions")
    assert sorted(rows["conversion_id"]) == ["c-1", "c-2"]
    staged = pipeline.warehouse.query("SELECT count(*) AS n FROM raw.landing_file_log")
    assert staged["n"].item() == 1
    assert {p.name for p in (pipeline.landing / "offline_conversions" / "loaded").iterdir()} == {
        "may.csv",
        "may-again.csv",
    }
    # The daily refresh (here: its dbt models alone) carries them into the mart.
    mart = dg.AssetKey(["marts", "fct_offline_conversions_daily"])
    built = asset_job(pipeline.defs).execute_in_process(
        instance=pipeline.instance,
        asset_selection=[dg.AssetKey(["staging", "stg_landing__offline_conversions"]), mart],
    )
    assert built.success
    daily = pipeline.warehouse.query(
        "SELECT date_day::VARCHAR AS d, platform, conversions, conversion_value "
        "FROM marts.fct_offline_conversions_daily ORDER BY 1"
    )
    assert daily.values.tolist() == [
        ["2025-05-01", "unattributed", 1, 120.5],
        ["2025-05-02", "unattributed", 1, 80.0],
    ]


def test_a_bad_upload_is_quarantined_and_its_run_fails_naming_it(pipeline: Pipeline) -> None:
    pipeline.drop("offline_conversions", "broken.csv", CONVERSIONS_CSV.replace("80", "eighty"))
    pipeline.drop("offline_conversions", "june.csv", CONVERSIONS_CSV.replace("c-", "june-"))
    (request,) = _requests(pipeline.tick())
    result = pipeline.run(request)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "broken.csv line 3: value 'eighty' is not a number" in str(failure.message) + str(
        failure.step_failure_data.error
    )
    # The good file beside it loaded, and its materialization is recorded.
    assert len(result.get_asset_materialization_events()) == 1
    june = pipeline.warehouse.query(
        "SELECT count(*) AS n FROM raw.offline_conversions WHERE source_file = 'june.csv'"
    )
    assert june["n"].item() == 2
    quarantined = list((pipeline.landing / "quarantine" / "offline_conversions").iterdir())
    assert sorted(p.name.split("-", 1)[1] for p in quarantined) == [
        "broken.csv",
        "broken.csv.reason.txt",
    ]


def test_a_rewritten_day_file_reloads_its_day_and_a_bad_one_is_quarantined(
    pipeline: Pipeline,
) -> None:
    day_file = pipeline.landing / "first_party_events" / "2025-04-01.jsonl"
    lines = day_file.read_text().splitlines()
    day_file.write_text("\n".join(lines[:-1]) + "\n")
    (request,) = _requests(pipeline.tick())
    assert request.tags["dagster/asset_partition_range_start"] == "2025-04-01"
    assert pipeline.run(request).success
    rows = pipeline.warehouse.query(
        "SELECT count(*) AS n FROM raw.first_party_touchpoints WHERE partition_date = '2025-04-01'"
    )
    assert rows["n"].item() == len(lines) - 1

    pipeline.drop("first_party_events", "2025-04-02.jsonl", '{"insert_id": "x"}\nnot json\n')
    pipeline.drop("first_party_events", "april.jsonl", "{}\n")
    (bad,) = _requests(pipeline.tick())
    result = pipeline.run(bad)
    assert not result.success
    message = _failure_messages(result)
    assert "2025-04-02.jsonl line 1: missing" in message and "quarantine" in message
    names = {p.name for p in (pipeline.landing / "quarantine" / "first_party_events").iterdir()}
    assert any(n.endswith("-april.jsonl") for n in names)  # misnamed: refused by the sensor
    assert any(n.endswith("-2025-04-02.jsonl.reason.txt") for n in names)


def test_an_uploaded_experiment_gets_its_own_partition_and_results(pipeline: Pipeline) -> None:
    pipeline.drop("experiments", "spring-test.csv", EXPERIMENT_CSV)
    (load,) = _requests(pipeline.tick())
    assert dg.AssetKey(["marts", "fct_experiment_geo_panel"]) in (load.asset_selection or [])
    assert pipeline.run(load).success

    context = dg.build_sensor_context(
        instance=pipeline.instance,
        resources={"warehouse": DuckDBWarehouseResource(path=str(pipeline.warehouse.path))},
    )
    result = new_geo_experiment_sensor(context)
    assert isinstance(result, dg.SensorResult), result
    (added,) = result.dynamic_partitions_requests or []
    assert UPLOADED in added.partition_keys
    pipeline.instance.add_dynamic_partitions(GEO_EXPERIMENTS.name or "", added.partition_keys)
    request = next(r for r in result.run_requests or [] if r.partition_key == UPLOADED)
    assert request.run_key == f"geo_experiment:{UPLOADED}"
    assert pipeline.run(request).success
    rows = pipeline.warehouse.query(
        "SELECT model_name FROM causal.lift_analysis_results WHERE subject = ?", [UPLOADED]
    )
    assert set(rows["model_name"]) == {"difference_in_differences", "synthetic_control"}
    # Registered now: the next tick has nothing new.
    again = new_geo_experiment_sensor(context)
    assert isinstance(again, dg.SkipReason)
