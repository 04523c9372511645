"""The daily refresh: what one tick asks for, and which assets carry a freshness policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pytest

from cfap_orchestration.defs.automation.schedules import DBT_ASSETS_OP, restatement_run_config
from cfap_orchestration.defs.automation.sensors import day_ranges, request_key
from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES


@pytest.fixture
def definitions(cfap_home: object) -> Iterator[dg.Definitions]:
    from cfap_orchestration.definitions import defs

    yield defs()


def test_a_tick_asks_for_yesterday_with_each_source_restatement_window(
    definitions: dg.Definitions,
) -> None:
    schedule = definitions.get_schedule_def("daily_refresh_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 7 * * *", "UTC")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2025, 3, 10, 7, tzinfo=UTC)
        )
        data = schedule.evaluate_tick(context)
    (request,) = data.run_requests or []
    assert request.partition_key == "2025-03-09"
    job = definitions.resolve_job_def(schedule.job_name)
    assert job.partitioned_config is not None  # the job's config: what every tick runs with
    ops = job.partitioned_config.get_run_config_for_partition_key("2025-03-09")["ops"]
    assert ops["raw__meta_ads_insights"]["config"]["lookback_days"] == 28
    assert ops["raw__google_ads_campaign_stats"]["config"]["lookback_days"] == 14
    assert ops[DBT_ASSETS_OP]["config"]["lookback_days"] == max(
        t.default_lookback_days for t in RAW_TABLES
    )


def test_the_daily_job_covers_extracts_models_and_quick_estimators(
    definitions: dg.Definitions,
) -> None:
    job = definitions.resolve_job_def("daily_refresh")
    keys = job.asset_layer.selected_asset_keys
    assert {dg.AssetKey(["raw", t.name]) for t in RAW_TABLES} <= keys
    assert dg.AssetKey(["marts", "fct_marketing_daily"]) in keys
    assert dg.AssetKey(["causal", "cuped"]) in keys
    assert dg.AssetKey(["causal", "mmm_fit"]) not in keys  # weekly
    assert dg.AssetKey(["causal", "difference_in_differences"]) not in keys  # per experiment
    # Valid run config: Dagster checks it against every op's schema.
    assert dg.validate_run_config(job, restatement_run_config())


def test_daily_extracts_and_marts_must_be_fresh_and_uploads_need_not(
    definitions: dg.Definitions,
) -> None:
    graph = definitions.resolve_asset_graph()
    fresh = {k for k in graph.get_all_asset_keys() if graph.get(k).freshness_policy is not None}
    assert dg.AssetKey(["raw", "meta_ads_insights"]) in fresh
    assert dg.AssetKey(["marts", "fct_marketing_daily"]) in fresh
    assert dg.AssetKey(["raw", "offline_conversions"]) not in fresh
    assert not any(k.path[0] == "causal" for k in fresh)


def test_sensors_and_schedules_are_all_listed(definitions: dg.Definitions) -> None:
    names = {s.name for s in definitions.sensors or []}
    assert names == {"landing_zone_sensor", "new_geo_experiment_sensor", "job_status_sensor"}
    schedules = {s.name for s in definitions.schedules or []}
    assert schedules == {"daily_refresh_schedule", "mmm_weekly_refit"}


def test_consecutive_days_become_one_range() -> None:
    from datetime import date

    days = [date(2025, 1, d) for d in (5, 1, 2, 3, 7, 8)]
    assert day_ranges(days) == [
        (date(2025, 1, 1), date(2025, 1, 3)),
        (date(2025, 1, 5), date(2025, 1, 5)),
        (date(2025, 1, 7), date(2025, 1, 8)),
    ]
    assert request_key("k", ["b", "a"]) == request_key("k", ["a", "b"])
    assert request_key("k", ["a"]) != request_key("k", ["a", "c"])


def test_the_weekly_refit_asks_for_the_media_mix_model_on_mondays(
    definitions: dg.Definitions,
) -> None:
    schedule = definitions.get_schedule_def("mmm_weekly_refit")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2025, 3, 10, 10, tzinfo=UTC)
        )
        (request,) = schedule.evaluate_tick(context).run_requests or []
    job = definitions.resolve_job_def(schedule.job_name)
    assert request.partition_key is None
    assert request.tags["cfap/job"] == "mmm_weekly_refit"  # the prod queue's limit of one
    assert dg.AssetKey(["causal", "mmm_fit"]) in job.asset_layer.selected_asset_keys
