"""Data-quality scoring of the warehouse: completeness, accuracy, and the list of issues.

Completeness asks whether every day is there: each raw source's days against the span
the project covers. Accuracy asks whether the marts still agree with what the platforms
sent: spend converted back to the source currency, orders counted twice, FX coverage.
No Dagster imports; the `data_quality_report` asset wires it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

from cfap_orchestration.warehouse import Warehouse

Severity = Literal["error", "warning", "info"]
SPEND_TOLERANCE = 1e-6  # relative
# Casts differ by dialect: DuckDB's names and BigQuery's.
NUMBER_TYPES = {"duckdb": ("DOUBLE", "BIGINT"), "bigquery": ("FLOAT64", "INT64")}
DAILY_SOURCES = (
    "meta_ads_insights",
    "google_ads_campaign_stats",
    "klaviyo_events",
    "shopify_orders",
    "first_party_touchpoints",
)


@dataclass(frozen=True)
class Finding:
    dimension: Literal["completeness", "accuracy"]
    table: str
    check: str
    score: float  # 1.0 is perfect
    severity: Severity
    detail: str


@dataclass(frozen=True)
class QualityReport:
    findings: list[Finding]

    @property
    def completeness(self) -> float:
        return _mean([f.score for f in self.findings if f.dimension == "completeness"])

    @property
    def accuracy(self) -> float:
        return _mean([f.score for f in self.findings if f.dimension == "accuracy"])

    @property
    def issues(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "info"]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(f) for f in self.findings])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 1.0


def assess(warehouse: Warehouse) -> QualityReport:
    findings = [*source_completeness(warehouse), *spend_reconciliation(warehouse)]
    findings.append(orders_reconciliation(warehouse))
    findings.append(fx_coverage(warehouse))
    return QualityReport(findings)


def source_completeness(warehouse: Warehouse) -> list[Finding]:
    """Days with data per source, against the span of days any daily source was loaded for."""
    union = " UNION ALL ".join(
        f"SELECT min(partition_date) AS lo, max(partition_date) AS hi "
        f"FROM {warehouse.relation('raw', t)}"
        for t in DAILY_SOURCES
    )
    span = warehouse.query(f"SELECT min(lo) AS lo, max(hi) AS hi FROM ({union})").iloc[0]
    expected = (pd.Timestamp(span["hi"]) - pd.Timestamp(span["lo"])).days + 1
    findings = []
    for table in DAILY_SOURCES:
        days = warehouse.query(
            f"SELECT count(DISTINCT partition_date) AS n FROM {warehouse.relation('raw', table)} "
            "WHERE partition_date BETWEEN ? AND ?",
            [pd.Timestamp(span["lo"]).date(), pd.Timestamp(span["hi"]).date()],
        )["n"].item()
        score = min(1.0, days / expected) if expected > 0 else 0.0
        missing = expected - days
        findings.append(
            Finding(
                "completeness",
                f"raw.{table}",
                "days_present",
                score,
                "info" if missing == 0 else "warning",
                f"{days} of {expected} days from {span['lo']:%Y-%m-%d} to {span['hi']:%Y-%m-%d}"
                + (f"; {missing} missing" if missing else ""),
            )
        )
    return findings


def spend_reconciliation(warehouse: Warehouse) -> list[Finding]:
    """fct_marketing_daily spend, converted back with its own fx_rate, equals the raw spend."""
    number, integer = NUMBER_TYPES[warehouse.dialect]
    frame = warehouse.query(
        "WITH mart AS (SELECT platform, sum(spend / fx_rate) AS spend "
        f"FROM {warehouse.relation('marts', 'fct_marketing_daily')} "
        "WHERE platform IN ('meta', 'google_ads') GROUP BY 1), "
        f"source AS (SELECT 'meta' AS platform, sum(CAST(spend AS {number})) AS spend "
        f"FROM {warehouse.relation('raw', 'meta_ads_insights')} UNION ALL SELECT 'google_ads', "
        f"sum(CAST(metrics_cost_micros AS {integer})) / 1e6 "
        f"FROM {warehouse.relation('raw', 'google_ads_campaign_stats')}) "
        "SELECT source.platform, source.spend AS raw_spend, "
        "coalesce(mart.spend, 0) AS mart_spend FROM source LEFT JOIN mart USING (platform)"
    )
    findings = []
    for row in frame.to_dict("records"):
        raw, mart = float(row["raw_spend"] or 0), float(row["mart_spend"] or 0)
        error = abs(mart - raw) / raw if raw else abs(mart)
        ok = error <= SPEND_TOLERANCE
        findings.append(
            Finding(
                "accuracy",
                "marts.fct_marketing_daily",
                f"{row['platform']}_spend_matches_raw",
                1.0 if ok else max(0.0, 1 - error),
                "info" if ok else "error",
                f"raw {raw:,.2f} vs mart {mart:,.2f} in source currency "
                f"(relative error {error:.2e})",
            )
        )
    return findings


def orders_reconciliation(warehouse: Warehouse) -> Finding:
    """Each Shopify order counted once: the mart's orders equal the distinct live orders
    placed on the days it covers (orders placed before the first partition but updated
    after it are in raw, not in the mart)."""
    orders = warehouse.relation("marts", "fct_orders_daily")
    row = warehouse.query(
        "SELECT (SELECT count(DISTINCT order_id) "
        f"FROM {warehouse.relation('staging', 'stg_shopify__orders')} "
        "WHERE NOT is_cancelled AND order_date BETWEEN "
        f"(SELECT min(date_day) FROM {orders}) AND "
        f"(SELECT max(date_day) FROM {orders})) AS raw_orders, "
        f"(SELECT sum(orders) FROM {orders}) AS mart_orders"
    ).iloc[0]
    raw, mart = int(row["raw_orders"]), int(row["mart_orders"] or 0)
    ok = raw == mart
    return Finding(
        "accuracy",
        "marts.fct_orders_daily",
        "orders_counted_once",
        1.0 if ok else max(0.0, 1 - abs(mart - raw) / max(raw, 1)),
        "info" if ok else "error",
        f"{raw:,} live orders in Shopify, {mart:,} in the mart",
    )


def fx_coverage(warehouse: Warehouse) -> Finding:
    row = warehouse.query(
        "SELECT count(*) AS n, sum(CASE WHEN fx_rate IS NULL THEN 1 ELSE 0 END) AS missing "
        f"FROM {warehouse.relation('marts', 'fct_marketing_daily')}"
    ).iloc[0]
    n, missing = int(row["n"]), int(row["missing"] or 0)
    return Finding(
        "accuracy",
        "marts.fct_marketing_daily",
        "fx_rate_present",
        1 - missing / n if n else 1.0,
        "info" if missing == 0 else "error",
        f"{missing} of {n:,} rows lack an FX rate into the reporting currency",
    )
