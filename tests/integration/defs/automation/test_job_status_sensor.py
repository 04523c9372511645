"""job_status_sensor on a real Dagster instance: real runs of tiny jobs, a real DuckDB file,
another process holding its lock, and a real webhook on 127.0.0.1.

The sensor is evaluated with `evaluate_tick`, as the code server does on every tick.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from job_status_support import held_duckdb_lock, webhook_receiver

from cfap_orchestration.defs.automation.job_status import finished_run_events, job_status_sensor
from cfap_orchestration.resources import DuckDBWarehouseResource
from cfap_orchestration.warehouse import DuckDBWarehouse

MISSING_EXPORT = "Shopify export for 2025-06-01 is missing from the landing folder"
daily = dg.DailyPartitionsDefinition(start_date="2025-06-01", end_date="2025-06-08")


@dg.op
def load_orders() -> int:
    return 42


@dg.op
def read_shopify_export() -> None:
    raise ValueError(MISSING_EXPORT)


@dg.job
def orders_refresh() -> None:
    load_orders()


@dg.job
def orders_export() -> None:
    read_shopify_export()


@dg.job
def other_location_job() -> None:  # not in DEFS: it stands for another code location's job
    load_orders()


@dg.asset(partitions_def=daily)
def daily_orders() -> None:
    return None


DEFS = dg.Definitions(
    assets=[daily_orders], jobs=[orders_refresh, orders_export], sensors=[job_status_sensor]
)


@dataclass(frozen=True)
class Tick:
    cursor: str | None
    message: str | None


@dataclass
class Deployment:
    instance: dg.DagsterInstance
    warehouse_path: Path

    def tick(self, cursor: str | None = None) -> Tick:
        resource = DuckDBWarehouseResource(path=str(self.warehouse_path))
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=DEFS,
            resources={"warehouse": resource},
        ) as context:
            data = job_status_sensor.evaluate_tick(context)
        return Tick(data.cursor, data.skip_message)

    def rows(self) -> pd.DataFrame:
        warehouse = DuckDBWarehouse(self.warehouse_path)
        return warehouse.query("SELECT * FROM causal.job_status ORDER BY ended_at")

    def succeed(self) -> str:
        return orders_refresh.execute_in_process(instance=self.instance).run_id

    def fail(self) -> str:
        return orders_export.execute_in_process(instance=self.instance, raise_on_error=False).run_id


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.delenv("CFAP_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("CFAP_ALERT_ON", raising=False)
    with dg.instance_for_test() as instance:
        yield Deployment(instance, tmp_path / "warehouse.duckdb")


def _last_event_id(instance: dg.DagsterInstance) -> str:
    return str(finished_run_events(instance, 0, 1000)[-1].storage_id)


def test_every_outcome_of_this_code_location_becomes_one_row(deployment: Deployment) -> None:
    instance = deployment.instance
    ok, failed = deployment.succeed(), deployment.fail()
    asset_run = DEFS.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key="2025-06-03", asset_selection=[daily_orders.key]
    )
    other_location_job.execute_in_process(instance=instance)
    canceled = instance.create_run_for_job(orders_refresh)
    instance.report_run_canceled(canceled, message="Canceled from the UI by the on-call engineer")

    tick = deployment.tick()

    assert tick.cursor == _last_event_id(instance)
    assert tick.message is not None and "Recorded 4 run outcome(s)" in tick.message
    rows = deployment.rows().set_index("run_id")
    assert set(rows.index) == {ok, failed, asset_run.run_id, canceled.run_id}
    assert rows.loc[ok, "status"] == "SUCCESS" and pd.isna(rows.loc[ok, "error"])
    assert rows.loc[ok, "job_name"] == "orders_refresh"
    assert rows.loc[ok, "duration_seconds"] >= 0
    assert rows.loc[ok, "started_at"] <= rows.loc[ok, "ended_at"] <= rows.loc[ok, "recorded_at"]

    error = rows.loc[failed, "error"]
    assert rows.loc[failed, "status"] == "FAILURE"
    assert error.startswith('Execution of run for "orders_export" failed.')
    assert 'Step read_shopify_export: Error occurred while executing op "read_shopify_export"' in (
        error
    )
    assert error.endswith(f"ValueError: {MISSING_EXPORT}")

    assert rows.loc[asset_run.run_id, "job_name"] == "__ASSET_JOB"
    assert rows.loc[asset_run.run_id, "partition_key"] == "2025-06-03"
    assert json.loads(rows.loc[asset_run.run_id, "asset_selection"]) == ["daily_orders"]

    assert rows.loc[canceled.run_id, "status"] == "CANCELED"
    assert pd.isna(rows.loc[canceled.run_id, "started_at"])  # canceled before it started
    assert "Canceled from the UI" in rows.loc[canceled.run_id, "error"]


def test_a_partition_range_run_records_its_range(deployment: Deployment) -> None:
    tags = {
        "dagster/asset_partition_range_start": "2025-06-01",
        "dagster/asset_partition_range_end": "2025-06-07",
    }
    orders_refresh.execute_in_process(instance=deployment.instance, tags=tags)
    deployment.tick()
    row = deployment.rows().iloc[0]
    assert (row["partition_range_start"], row["partition_range_end"]) == (
        "2025-06-01",
        "2025-06-07",
    )
    assert pd.isna(row["partition_key"])


def test_a_second_tick_writes_nothing_new(deployment: Deployment) -> None:
    deployment.succeed()
    first = deployment.tick()
    before = deployment.rows()

    second = deployment.tick(first.cursor)

    assert second.cursor == first.cursor
    assert second.message == f"No run has finished since run-status event {first.cursor}."
    pd.testing.assert_frame_equal(deployment.rows(), before)  # recorded_at untouched too


def test_the_next_tick_records_only_the_new_outcome(deployment: Deployment) -> None:
    first_run = deployment.succeed()
    first = deployment.tick()
    failed = deployment.fail()

    second = deployment.tick(first.cursor)

    assert int(second.cursor or 0) > int(first.cursor or 0)
    assert second.message is not None and "Recorded 1 run outcome(s)" in second.message
    assert list(deployment.rows()["run_id"]) == [first_run, failed]


def test_replaying_from_the_beginning_rewrites_the_same_rows(deployment: Deployment) -> None:
    deployment.succeed()
    deployment.fail()
    deployment.tick()
    before = deployment.rows().drop(columns="recorded_at")

    deployment.tick(cursor=None)  # a cursor reset in the UI: every run is read again

    pd.testing.assert_frame_equal(deployment.rows().drop(columns="recorded_at"), before)


def test_a_locked_warehouse_skips_and_keeps_the_cursor(deployment: Deployment) -> None:
    deployment.succeed()
    start = deployment.tick()
    failed = deployment.fail()

    with held_duckdb_lock(str(deployment.warehouse_path)):
        locked = deployment.tick(start.cursor)

    assert locked.cursor == start.cursor  # not advanced: the outcome is still to record
    assert locked.message is not None and "1 run outcome(s) not recorded yet" in locked.message
    assert "in use by another process" in locked.message
    assert failed not in set(deployment.rows()["run_id"])

    later = deployment.tick(locked.cursor)
    assert later.cursor == _last_event_id(deployment.instance)
    assert list(deployment.rows()["run_id"]).count(failed) == 1


def test_only_other_locations_runs_move_the_cursor_without_rows(deployment: Deployment) -> None:
    other_location_job.execute_in_process(instance=deployment.instance)
    tick = deployment.tick()
    assert tick.cursor == _last_event_id(deployment.instance)
    assert tick.message is not None and "Recorded 0 run outcome(s)" in tick.message
    assert not DuckDBWarehouse(deployment.warehouse_path).table_exists("causal", "job_status")


def test_events_are_read_in_pages_without_losing_any(deployment: Deployment) -> None:
    runs = [deployment.succeed(), deployment.fail(), deployment.succeed(), deployment.fail()]
    seen: list[str] = []
    after = 0
    while page := finished_run_events(deployment.instance, after, limit=3):
        seen += [e.event_log_entry.run_id for e in page]
        after = page[-1].storage_id
    assert seen == runs


def test_a_failure_is_posted_to_the_webhook(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver() as hook:
        monkeypatch.setenv("CFAP_ALERT_WEBHOOK_URL", hook.url)
        deployment.succeed()
        failed = deployment.fail()
        tick = deployment.tick()
    assert tick.message is not None and "1 alert(s) sent" in tick.message
    [payload] = hook.received
    assert payload["status"] == "FAILURE" and payload["run_id"] == failed
    assert payload["job_name"] == "orders_export"
    assert payload["text"].startswith(":x: CFAP run failed: `orders_export`")
    assert MISSING_EXPORT in payload["text"] and MISSING_EXPORT in payload["error"]


def test_every_outcome_is_posted_when_configured(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver() as hook:
        monkeypatch.setenv("CFAP_ALERT_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("CFAP_ALERT_ON", "all")
        deployment.succeed()
        deployment.fail()
        deployment.tick()
    assert [p["status"] for p in hook.received] == ["SUCCESS", "FAILURE"]


def test_an_undelivered_alert_keeps_the_row_and_the_url_secret(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx's request lines included
    with webhook_receiver(statuses=[500] * 5) as hook:
        monkeypatch.setenv("CFAP_ALERT_WEBHOOK_URL", hook.url)
        failed = deployment.fail()
        tick = deployment.tick()
    assert len(hook.received) == 3  # retried, then given up
    assert tick.cursor == _last_event_id(deployment.instance)
    assert tick.message is not None and "0 alert(s) sent" in tick.message
    assert list(deployment.rows()["run_id"]) == [failed]
    sensor_log = capfd.readouterr().err  # the tick's logger writes to the console
    assert f"Alert for run {failed} (FAILURE) not delivered" in sensor_log
    for shown in (sensor_log, caplog.text, tick.message):
        assert "s3cr3t" not in shown and "/services/" not in shown


def test_a_bad_cursor_fails_the_tick_naming_it(deployment: Deployment) -> None:
    with pytest.raises(Exception, match="cursor must be a run-status event storage id"):
        deployment.tick("yesterday")


def test_a_bad_alert_setting_fails_the_tick_before_anything_moves(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CFAP_ALERT_ON", "sometimes")
    deployment.fail()
    with pytest.raises(Exception, match="CFAP_ALERT_ON must be 'failures' or 'all'"):
        deployment.tick()
    assert not DuckDBWarehouse(deployment.warehouse_path).table_exists("causal", "job_status")
