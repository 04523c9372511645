"""The data-quality report finds gaps and disagreements it is meant to find."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cfap_orchestration.quality import DAILY_SOURCES, assess
from cfap_orchestration.warehouse import DuckDBWarehouse

DAYS = [date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)]


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    """A minimal warehouse shaped like the real one, where everything agrees."""
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    for table in DAILY_SOURCES:
        wh.replace_partitions("raw", table, pd.DataFrame({"partition_date": DAYS}), DAYS)
    wh.replace_partitions(
        "raw",
        "meta_ads_insights",
        pd.DataFrame({"partition_date": DAYS, "spend": ["10.00", "20.00", "30.00"]}),
        DAYS,
    )
    wh.replace_partitions(
        "raw",
        "google_ads_campaign_stats",
        pd.DataFrame({"partition_date": DAYS, "metrics_cost_micros": ["5000000"] * 3}),
        DAYS,
    )
    marketing = pd.DataFrame(
        {
            "platform": ["meta", "meta", "meta", "google_ads"],
            "spend": [11.0, 22.0, 33.0, 15.0],
            "fx_rate": [1.1, 1.1, 1.1, 1.0],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["a", "b", "before-first-day"],
            "is_cancelled": [False, False, False],
            "order_date": [date(2025, 1, 1), date(2025, 1, 3), date(2024, 12, 30)],
        }
    )
    with wh.connect() as con:
        for schema in ("marts", "staging"):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.register("marketing", marketing)
        con.register("orders", orders)
        con.execute("CREATE TABLE marts.fct_marketing_daily AS SELECT * FROM marketing")
        con.execute("CREATE TABLE staging.stg_shopify__orders AS SELECT * FROM orders")
        con.execute(
            "CREATE TABLE marts.fct_orders_daily AS SELECT * FROM (VALUES "
            "(DATE '2025-01-01', 1), (DATE '2025-01-03', 1)) AS t(date_day, orders)"
        )
    return wh


def test_a_consistent_warehouse_scores_one_with_no_issues(warehouse: DuckDBWarehouse) -> None:
    report = assess(warehouse)
    assert (report.completeness, report.accuracy) == (1.0, 1.0)
    assert report.issues == []


def test_a_missing_day_and_a_spend_drift_are_reported(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_partitions(
        "raw", "shopify_orders", pd.DataFrame({"partition_date": []}), [date(2025, 1, 2)]
    )
    with warehouse.connect() as con:
        con.execute(
            "UPDATE marts.fct_marketing_daily SET spend = spend * 2 WHERE platform = 'meta'"
        )
        con.execute("UPDATE marts.fct_orders_daily SET orders = 2")
    report = assess(warehouse)
    issues = {(f.table, f.check): f for f in report.issues}
    assert "2 of 3 days" in issues[("raw.shopify_orders", "days_present")].detail
    assert issues[("marts.fct_marketing_daily", "meta_spend_matches_raw")].severity == "error"
    assert issues[("marts.fct_orders_daily", "orders_counted_once")].severity == "error"
    assert report.completeness < 1.0 and report.accuracy < 1.0
