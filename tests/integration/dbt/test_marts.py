"""The dbt marts built through Dagster from the sandbox APIs, on a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from tests_support import SANDBOX_ENV

from cfap_orchestration.settings import get_settings
from cfap_orchestration.warehouse import DuckDBWarehouse

# Spans the start of the 2025 Google Ads geo holdout (from 2025-04-07): API rows vanish.
FIRST = ("2025-03-24", "2025-04-06")
SECOND = ("2025-04-07", "2025-04-20")
INCREMENTAL_MARTS = ("fct_marketing_daily", "fct_marketing_geo_daily", "fct_orders_daily")
CONTRACT_COLUMNS = {
    "fct_marketing_daily": (
        "date_day platform channel account_id account_name account_timezone campaign_id "
        "campaign_name source_currency fx_rate spend_source spend impressions clicks "
        "conversions conversion_value attribution_setting"
    ),
    "fct_orders_daily": (
        "date_day geo_id orders customers gross_revenue discounts refunds net_revenue"
    ),
    "dim_calendar": (
        "date_day day_of_week day_name week_of_year iso_week_start month month_start quarter "
        "year is_weekend is_business_day is_holiday holiday_name is_month_end is_quarter_end "
        "peak_season seasonality_index"
    ),
    "fct_marketing_calendar_daily": (
        "date_day spend_paid_social spend_paid_search spend_email spend_sms "
        "conversions_paid_social conversions_paid_search conversions_email conversions_sms "
        "revenue orders day_of_week is_holiday peak_season seasonality_index "
        "campaign_flight_days media_cost_index"
    ),
    "fct_conversion_paths": (
        "journey_id date_day path touchpoints conversions is_converted conversion_value"
    ),
}


@dataclass
class Built:
    home: Path
    warehouse: DuckDBWarehouse
    defs: dg.Definitions
    instance: dg.DagsterInstance
    results: list[dg.ExecuteInProcessResult]


def _run(
    built: Built, start: str, end: str, full_refresh: bool = False
) -> dg.ExecuteInProcessResult:
    job = built.defs.resolve_implicit_global_asset_job_def()
    tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    config = {"ops": {"cfap_dbt_models": {"config": {"full_refresh": full_refresh}}}}
    # Everything up to the marts; the estimators (other partitions) have their own tests.
    graph = built.defs.resolve_asset_graph()
    selection = [k for k in graph.get_all_asset_keys() if k.path[0] != "causal"]
    return job.execute_in_process(
        instance=built.instance, tags=tags, run_config=config, asset_selection=selection
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    from cfap_orchestration.definitions import defs

    home = tmp_path_factory.mktemp("cfap")
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        for key, value in {**SANDBOX_ENV, "CFAP_HOME": str(home)}.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        b = Built(home, DuckDBWarehouse(home / "warehouse.duckdb"), defs(), instance, [])
        b.results = [_run(b, *FIRST), _run(b, *SECOND)]
        yield b
    get_settings.cache_clear()


def _rows(built: Built, sql: str) -> list[tuple]:
    return list(built.warehouse.query(sql).itertuples(index=False, name=None))


def test_both_range_runs_succeed_and_every_dbt_test_passes(built: Built) -> None:
    for result in built.results:
        assert result.success
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) > 50
        failed = [e.asset_check_key.to_user_string() for e in evaluations if not e.passed]
        assert not failed


@pytest.mark.parametrize("mart", list(CONTRACT_COLUMNS))
def test_contract_tables_have_contract_columns_and_rows(built: Built, mart: str) -> None:
    frame = built.warehouse.query(f"SELECT * FROM marts.{mart} LIMIT 5")
    assert set(CONTRACT_COLUMNS[mart].split()) <= set(frame.columns)
    assert not frame.empty


def test_spend_converted_back_equals_raw_spend_per_platform_and_day(built: Built) -> None:
    mart = built.warehouse.query(
        "SELECT platform, date_day, sum(spend / fx_rate) AS spend FROM marts.fct_marketing_daily "
        "WHERE platform != 'klaviyo' GROUP BY ALL ORDER BY ALL"
    )
    raw = built.warehouse.query(
        "SELECT 'google_ads' AS platform, cast(segments_date AS DATE) AS date_day, "
        "sum(metrics_cost_micros::BIGINT) / 1e6 AS spend FROM raw.google_ads_campaign_stats "
        "GROUP BY ALL UNION ALL SELECT 'meta', cast(date_start AS DATE), sum(spend::DOUBLE) "
        "FROM raw.meta_ads_insights GROUP BY ALL ORDER BY ALL"
    )
    merged = mart.merge(raw, on=["platform", "date_day"], how="outer", suffixes=("_mart", "_raw"))
    merged = merged.fillna(0.0)
    assert len(merged) == len(mart)
    assert (merged["spend_mart"] - merged["spend_raw"]).abs().max() < 1e-6
    assert set(_rows(built, "SELECT DISTINCT source_currency FROM marts.fct_marketing_daily")) == {
        ("EUR",),
        ("USD",),
    }


def test_days_the_api_omitted_are_explicit_zeros(built: Built) -> None:
    (campaign_zeros,) = _rows(
        built,
        "SELECT count(*) FROM marts.fct_marketing_daily WHERE is_zero_filled AND spend = 0",
    )[0]
    assert campaign_zeros > 0
    # Google stops reporting the holdout regions when its geo test starts on 2025-04-07.
    holdout = _rows(
        built,
        "SELECT string_split(holdout_units, '|') FROM reference.experiment_registry "
        "WHERE experiment_id = 'geo_holdout_google_ads_2025'",
    )[0][0]
    rows = built.warehouse.query(
        "SELECT geo_id, spend, is_zero_filled FROM marts.fct_marketing_geo_daily "
        "WHERE platform = 'google_ads' AND date_day = DATE '2025-04-10'"
    ).set_index("geo_id")
    for geo in holdout:
        assert rows.loc[geo, "spend"] == 0 and rows.loc[geo, "is_zero_filled"]
    assert (rows.drop(index=holdout)["spend"] > 0).all()


def test_holidays_and_peak_days_are_flagged(built: Built) -> None:
    calendar = built.warehouse.query(
        "SELECT date_day::VARCHAR AS d, is_holiday, holiday_name, is_weekend, is_business_day, "
        "peak_season, is_month_end, is_quarter_end FROM marts.dim_calendar"
    ).set_index("d")
    assert calendar.loc["2025-01-01", "holiday_name"] == "New Year's Day"
    assert calendar.loc["2025-11-27", "holiday_name"] == "Thanksgiving Day"
    assert calendar.loc["2025-11-28", "peak_season"] == "black_friday_week"
    assert (
        calendar.loc["2025-12-25", "is_holiday"]
        and not calendar.loc["2025-12-25", "is_business_day"]
    )
    assert calendar.loc["2025-03-22", "is_weekend"]  # a Saturday
    assert (
        calendar.loc["2025-03-31", "is_quarter_end"] and calendar.loc["2025-04-30", "is_month_end"]
    )
    assert calendar["peak_season"].isna().any()  # null outside a season


def _sorted_mart(built: Built, mart: str) -> pd.DataFrame:
    frame = built.warehouse.query(f"SELECT * FROM marts.{mart}")
    keys = [c for c in frame.columns if frame[c].dtype == object or c == "date_day"]
    return frame.sort_values(keys).reset_index(drop=True)


def test_partition_range_runs_equal_a_full_refresh(built: Built) -> None:
    before = {m: _sorted_mart(built, m) for m in INCREMENTAL_MARTS}
    refreshed = _run(built, FIRST[0], SECOND[1], full_refresh=True)
    assert refreshed.success
    for mart, incremental in before.items():
        # Equal up to the order floating-point sums were added in.
        pd.testing.assert_frame_equal(_sorted_mart(built, mart), incremental, rtol=1e-9)


def test_lineage_runs_from_every_ingest_asset_to_the_marts(built: Built) -> None:
    graph = built.defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    ingest = [k for k in keys if graph.get(k).group_name == "ingest"]
    for key in ingest:
        seen, frontier = set(), [key]
        while frontier:
            node = frontier.pop()
            for child in graph.get(node).child_keys:
                if child not in seen:
                    seen.add(child)
                    frontier.append(child)
        marts = {k.path[-1] for k in seen if k.path[0] == "marts"}
        assert marts, f"{key.to_user_string()} reaches no mart"
    calendar_inputs = set(
        graph.upstream_key_iterator(dg.AssetKey(["marts", "fct_marketing_calendar_daily"]))
    )
    for name in (
        "meta_ads_insights",
        "google_ads_campaign_stats",
        "klaviyo_events",
        "shopify_orders",
    ):
        assert dg.AssetKey(["raw", name]) in calendar_inputs
