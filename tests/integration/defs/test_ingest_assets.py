"""Raw extract assets end to end: sandbox APIs over HTTP, Dagster, a real DuckDB file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest

from cfap_orchestration.defs.ingest.assets import raw_assets
from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES
from cfap_orchestration.resources import build_resources
from cfap_orchestration.sandbox.apis import SANDBOX_CREDENTIALS, get_sandbox
from cfap_orchestration.settings import get_settings
from cfap_orchestration.warehouse import DuckDBWarehouse

RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2025-02-10",
    "dagster/asset_partition_range_end": "2025-02-13",
}


def _materialize(instance: dg.DagsterInstance, **kwargs: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        raw_assets, instance=instance, resources=build_resources(get_settings()), **kwargs
    )  # type: ignore[arg-type]


def _checksums(home: Path) -> dict[str, str]:
    warehouse = DuckDBWarehouse(home / "warehouse.duckdb")
    return {t.name: warehouse.table_checksum("raw", t.name) for t in RAW_TABLES}


def test_range_run_lands_every_table_and_rerun_is_identical(cfap_home: Path) -> None:
    with dg.instance_for_test() as instance:
        first = _materialize(instance, tags=RANGE_TAGS)
        assert first.success
        before = _checksums(cfap_home)
        assert _materialize(instance, tags=RANGE_TAGS).success
        assert _checksums(cfap_home) == before

        warehouse = DuckDBWarehouse(cfap_home / "warehouse.duckdb")
        days = warehouse.query(
            "SELECT DISTINCT partition_date FROM raw.meta_ads_insights ORDER BY 1"
        )["partition_date"]
        assert [str(d.date()) for d in days] == [
            "2025-02-10",
            "2025-02-11",
            "2025-02-12",
            "2025-02-13",
        ]
        for table in RAW_TABLES:
            key = dg.AssetKey(["raw", table.name])
            assert instance.get_materialized_partitions(key) == {
                "2025-02-10",
                "2025-02-11",
                "2025-02-12",
                "2025-02-13",
            }
        for event in first.get_asset_check_evaluations():
            assert event.passed, event


def test_materialization_metadata_counts_the_work(cfap_home: Path) -> None:
    with dg.instance_for_test() as instance:
        result = _materialize(instance, partition_key="2025-02-11")
        events = {
            e.materialization.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        meta = events["meta_ads_insights"]
        assert meta["dagster/row_count"].value > 0
        assert meta["requests"].value >= 2  # account discovery + insights
        assert meta["first_date"].value == meta["last_date"].value == "2025-02-11"
        assert meta["retries"].value == 0


def test_lookback_restates_earlier_days(cfap_home: Path) -> None:
    with dg.instance_for_test() as instance:
        config = dg.RunConfig(
            ops={"raw__google_ads_campaign_stats": {"config": {"lookback_days": 3}}}
        )
        result = dg.materialize(
            [a for a in raw_assets if a.key == dg.AssetKey(["raw", "google_ads_campaign_stats"])],
            instance=instance,
            resources=build_resources(get_settings()),
            partition_key="2025-02-20",
            run_config=config,
        )
        assert result.success
        warehouse = DuckDBWarehouse(cfap_home / "warehouse.duckdb")
        days = warehouse.query(
            "SELECT min(partition_date) AS lo, max(partition_date) AS hi "
            "FROM raw.google_ads_campaign_stats"
        ).iloc[0]
        assert (str(days["lo"].date()), str(days["hi"].date())) == ("2025-02-17", "2025-02-20")


def test_no_credential_reaches_the_event_log_or_logs(
    cfap_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = [v for creds in SANDBOX_CREDENTIALS.values() for k, v in creds.items() if k != "shop"]
    caplog.set_level(logging.DEBUG)  # httpx logs every URL, and Meta's carry the token
    with dg.instance_for_test() as instance:
        result = _materialize(instance, partition_key="2025-02-12")
        assert result.success
        records = instance.all_logs(result.run_id)
        event_log = json.dumps([dg.serialize_value(r) for r in records])
    assert "graph.meta.sandbox" in caplog.text  # the HTTP calls were logged...
    for secret in secrets:
        assert secret not in event_log
        assert secret not in caplog.text  # ...with every credential scrubbed


def test_an_expired_token_fails_the_run_with_the_platform_message(cfap_home: Path) -> None:
    settings = get_settings()
    meta = get_sandbox(settings.sandbox, settings.sandbox_as_of).meta_ads
    meta.inject("expired_token", times=1)
    meta_asset = [a for a in raw_assets if a.key == dg.AssetKey(["raw", "meta_ads_insights"])]
    try:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                meta_asset,
                instance=instance,
                resources=build_resources(settings),
                partition_key="2025-02-12",
                raise_on_error=False,
            )
    finally:
        meta.clear_faults()
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.user_failure_data
    assert error is not None
    assert error.description is not None
    assert "raw.meta_ads_insights 2025-02-12..2025-02-12" in error.description
    assert "Refresh the access token" in error.description
    assert error.metadata["error"].value == "AuthenticationError"
    assert not (cfap_home / "warehouse.duckdb").exists()  # nothing half-written


@pytest.mark.parametrize("table", RAW_TABLES, ids=lambda t: t.name)
def test_every_raw_asset_is_partitioned_single_run_and_checked(table: object) -> None:
    by_key = {a.key: a for a in raw_assets}
    asset = by_key[dg.AssetKey(["raw", table.name])]  # type: ignore[attr-defined]
    assert isinstance(asset.partitions_def, dg.DailyPartitionsDefinition)
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()
    assert asset.group_names_by_key[asset.key] == "ingest"
    check_names = {k.name for k in asset.check_keys}
    assert {"primary_key_unique", "required_fields_present"} <= check_names
