"""When the pipeline runs by itself: the daily refresh and the weekly media-mix refit.

The daily refresh is a partitioned asset job, not declarative automation: one run per day
pulls yesterday's partition of every extract, re-pulls each source's restatement lookback,
rebuilds the dbt models over the same days and refreshes the quick estimators. One run is
one DuckDB writer, and a failed day is one red run to re-execute, not a cascade to untangle.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.definitions.partitions.partitioned_schedule import (
    UnresolvedPartitionedAssetScheduleDefinition,
)

from cfap_orchestration.defs.ingest.partitions import daily_partitions
from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES
from cfap_orchestration.defs.measure.media_mix import MEDIA_MIX_ASSETS

# What Dagster builds from a partitioned asset job (resolved when Definitions load).
PartitionedSchedule = UnresolvedPartitionedAssetScheduleDefinition | dg.ScheduleDefinition
DBT_ASSETS_OP = "cfap_dbt_models"
# Estimators that read the whole history and take seconds: refreshed with the marts every
# day. The geo readouts run per experiment (experiment sensor); the MMM weekly.
DAILY_ESTIMATORS = dg.AssetSelection.assets(
    *(
        dg.AssetKey(["causal", name])
        for name in (
            "cuped",
            "shapley_attribution",
            "markov_attribution",
            "temporal_effects",
            "geo_test_power_plan",
        )
    )
)
DAILY_REFRESH_SELECTION = (
    dg.AssetSelection.groups("ingest", "reference", "staging", "marts") | DAILY_ESTIMATORS
)


def op_name(key: dg.AssetKey) -> str:
    """The op Dagster generates for a single asset: its key path joined by `__`."""
    return "__".join(key.path)


def restatement_run_config() -> dict[str, Any]:
    """Each extract re-pulls its platform's restatement window; dbt rebuilds the widest one,
    so every restated day reaches the marts in the same run."""
    ops: dict[str, Any] = {
        op_name(dg.AssetKey(["raw", table.name])): {
            "config": {"lookback_days": table.default_lookback_days}
        }
        for table in RAW_TABLES
    }
    widest = max(table.default_lookback_days for table in RAW_TABLES)
    ops[DBT_ASSETS_OP] = {"config": {"full_refresh": False, "lookback_days": widest}}
    return {"ops": ops}


def daily_refresh_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name="daily_refresh",
        selection=DAILY_REFRESH_SELECTION,
        partitions_def=daily_partitions(),
        config=restatement_run_config(),
        description=(
            "One day of data end to end: every platform extract for the day (plus each "
            "source's restatement lookback), the dbt staging, intermediate and mart models over "
            "those days, the data-quality report and the quick estimators."
        ),
    )


def daily_refresh_schedule(job: dg.UnresolvedAssetJobDefinition) -> PartitionedSchedule:
    # 07:00 UTC: every account's day (UTC-8 .. UTC+1 here) has closed by then.
    return dg.build_schedule_from_partitioned_job(
        job,
        name="daily_refresh_schedule",
        hour_of_day=7,
        minute_of_hour=0,
        description="Yesterday's partition of the daily refresh, at 07:00 UTC.",
    )


def mmm_weekly_refit() -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="mmm_weekly_refit",
        cron_schedule="0 10 * * 1",  # Mondays 10:00, after the morning's daily refresh
        execution_timezone="UTC",
        target=dg.AssetSelection.assets(*MEDIA_MIX_ASSETS),
        # The prod run queue admits one run with this tag at a time (deploy/prod/dagster.yaml).
        tags={"cfap/job": "mmm_weekly_refit"},
        description="Refit the media-mix model on the latest weeks and republish its outputs.",
    )
