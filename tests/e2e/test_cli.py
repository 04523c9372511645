"""The dagster CLI as a user runs it: validate, then a multi-day backfill in one run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES
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


def test_cli_backfill_is_one_run_over_every_day(cli_env: dict[str, str], cfap_home: Path) -> None:
    result = _run(
        [
            "asset",
            "materialize",
            "-m",
            "cfap_orchestration.definitions",
            "--select",
            "group:ingest",
            "--partition-range",
            "2025-02-01...2025-02-05",
        ],
        cli_env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_runs()) == 1
        for table in RAW_TABLES:
            materialized = instance.get_materialized_partitions(dg.AssetKey(["raw", table.name]))
            assert materialized == DAYS, table.name

    warehouse = DuckDBWarehouse(cfap_home / "warehouse.duckdb")
    for table in (
        "meta_ads_insights",
        "google_ads_campaign_stats",
        "klaviyo_events",
        "shopify_orders",
    ):
        days = warehouse.query(f"SELECT DISTINCT partition_date::VARCHAR AS d FROM raw.{table}")
        assert set(days["d"]) == DAYS, table
