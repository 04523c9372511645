"""The dagster CLI as a user runs it: validate, then a multi-day backfill in one run, after
which no configured credential is anywhere in the instance, its files or the output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES
from cfap_orchestration.sandbox.apis import SANDBOX_CREDENTIALS
from cfap_orchestration.warehouse import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).with_name("dagster"))
DAYS = {"2025-02-01", "2025-02-02", "2025-02-03", "2025-02-04", "2025-02-05"}


@pytest.fixture
def cli_env(cfap_home: Path) -> dict[str, str]:
    dagster_home = cfap_home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(dagster_home)}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_definitions_validate(cli_env: dict[str, str]) -> None:
    result = _run(["definitions", "validate", "-w", "workspace.yaml"], cli_env)
    assert result.returncode == 0, result.stdout + result.stderr


# The Makefile's selections: incremental (daily-partitioned) dbt models and the views
# their relationship tests read.
INCREMENTAL = (
    "key:marts/fct_marketing_daily or key:marts/fct_marketing_geo_daily or "
    "key:marts/fct_orders_daily or key:staging/int_campaign_spans or "
    "key:staging/int_ad_geo_spans or key:staging/int_orders or "
    "key:staging/int_klaviyo_message_daily"
)
TEST_PARENTS = (
    "key:staging/int_date_spine or key:staging/stg_reference__geo_regions or "
    "key:staging/stg_reference__experiment_registry"
)
FIRST_DAYS = "2025-01-29...2025-01-31"
RANGE = "2025-02-01...2025-02-05"


def _materialize(env: dict[str, str], select: str, partition_range: str | None = None) -> str:
    """Run the CLI; its whole output, for the credential scan."""
    args = ["asset", "materialize", "-m", "cfap_orchestration.definitions", "--select", select]
    if partition_range:
        args += ["--partition-range", partition_range]
    result = _run(args, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _assert_no_credential_in(instance: dg.DagsterInstance, home: Path, outputs: str) -> None:
    """No configured credential in any run's event log, run record, stored file or output."""
    secrets = [v for creds in SANDBOX_CREDENTIALS.values() for k, v in creds.items() if k != "shop"]
    runs = instance.get_runs()
    assert runs
    texts = {"cli output": outputs}
    for run in runs:
        records = instance.all_logs(run.run_id)
        texts[f"event log of {run.run_id}"] = json.dumps([dg.serialize_value(r) for r in records])
        texts[f"run record {run.run_id}"] = dg.serialize_value(run)
    for path in home.rglob("*"):  # compute logs, the instance's storage, sensor cursors
        if path.is_file() and path.suffix not in (".duckdb", ".wal"):
            texts[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a credential is in {where}"


def test_cli_backfill_of_extracts_and_dbt_models_is_one_run_over_every_day(
    cli_env: dict[str, str], cfap_home: Path
) -> None:
    # A deployment that has run before: a few days landed, the staging views built.
    outputs = _materialize(cli_env, "group:ingest", FIRST_DAYS)
    outputs += _materialize(cli_env, f"(group:reference or group:staging) and not ({INCREMENTAL})")
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        runs_before = len(instance.get_runs())

    outputs += _materialize(cli_env, f"group:ingest or {INCREMENTAL} or {TEST_PARENTS}", RANGE)

    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_runs()) == runs_before + 1  # the whole backfill is one run
        _assert_no_credential_in(instance, cfap_home, outputs)
        for key in [
            *(dg.AssetKey(["raw", t.name]) for t in RAW_TABLES),
            dg.AssetKey(["marts", "fct_marketing_daily"]),
            dg.AssetKey(["marts", "fct_orders_daily"]),
        ]:
            assert instance.get_materialized_partitions(key) >= DAYS, key
    warehouse = DuckDBWarehouse(cfap_home / "warehouse.duckdb")
    for table in (
        "meta_ads_insights",
        "google_ads_campaign_stats",
        "klaviyo_events",
        "shopify_orders",
    ):
        days = warehouse.query(f"SELECT DISTINCT partition_date::VARCHAR AS d FROM raw.{table}")
        assert set(days["d"]) >= DAYS, table
    marts = warehouse.query(
        "SELECT DISTINCT date_day::VARCHAR AS d FROM marts.fct_marketing_daily "
        "WHERE date_day >= '2025-02-01'"
    )
    assert set(marts["d"]) == DAYS
