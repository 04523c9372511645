"""dbt models, seeds and tests as Dagster assets and checks.

Incremental marts are daily-partitioned: a run over a partition range passes it to dbt as
`min_date`/`max_date`, so one run rebuilds exactly those days. Everything else is
unpartitioned and rebuilt whole.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field

from cfap_orchestration.defs.dbt.project import dbt_project_for, dbt_target
from cfap_orchestration.defs.dbt.translator import CfapDbtTranslator


class DbtBuildConfig(dg.Config):
    full_refresh: bool = Field(
        default=False, description="Rebuild incremental models from scratch (dbt --full-refresh)."
    )
    lookback_days: int = Field(
        default=0,
        ge=0,
        le=120,
        description=(
            "Also rebuild this many days before the run's first partition, so the days an "
            "extract restated in the same run reach the marts. The daily refresh sets it."
        ),
    )


def partition_vars(start: datetime, end: datetime, lookback_days: int = 0) -> dict[str, str]:
    """dbt vars for a partition time window [start, end), widened back by `lookback_days`."""
    first = start.date() - timedelta(days=lookback_days)
    return {"min_date": first.isoformat(), "max_date": end.date().isoformat()}


def dbt_build_args(config: DbtBuildConfig, window: tuple[datetime, datetime] | None) -> list[str]:
    # `cautious`: a test runs only when every model it reads is in the run, so a
    # relationship test from a mart to a staging model waits for the mart's run.
    args = ["build", "--indirect-selection", "cautious"]
    if config.full_refresh:
        args.append("--full-refresh")
    if window is not None:
        args.extend(["--vars", json.dumps(partition_vars(*window, config.lookback_days))])
    return args


def cfap_dbt_models() -> dg.AssetsDefinition:
    """The dbt project's models, seeds and tests, for this environment's dbt target."""
    return _dbt_models_for(dbt_target())


@cache
def _dbt_models_for(target: str) -> dg.AssetsDefinition:
    project = dbt_project_for(target)

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=CfapDbtTranslator(),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def cfap_dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ) -> Iterator[Any]:
        window = None
        # A scheduled day is a single partition key, a backfill a range: both bound the build.
        if context.has_partition_key or context.has_partition_key_range:
            time_window = context.partition_time_window
            window = (time_window.start, time_window.end)
        yield from dbt.cli(dbt_build_args(config, window), context=context).stream()

    return cfap_dbt_models
