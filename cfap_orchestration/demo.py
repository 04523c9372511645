"""Helpers behind `make demo`: the partition range to build, and a summary of what landed.

python -m cfap_orchestration.demo partition-range       # prints START...YESTERDAY
python -m cfap_orchestration.demo register-experiments  # one partition per completed geo test
python -m cfap_orchestration.demo summary               # raw tables, marts, estimates vs truth
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES
from cfap_orchestration.settings import get_settings
from cfap_orchestration.warehouse import DuckDBWarehouse

# One detail line per table: money by currency, or what the rows describe.
SUMMARY_DETAILS = {
    "meta_ads_insights": "SELECT 'spend ' || string_agg(account_currency || ' ' || "
    "format('{:,.0f}', s), ', ') FROM (SELECT account_currency, sum(spend::DOUBLE) AS s "
    "FROM raw.meta_ads_insights GROUP BY 1 ORDER BY 1)",
    "google_ads_campaign_stats": "SELECT 'cost ' || string_agg(c || ' ' || "
    "format('{:,.0f}', s), ', ') FROM (SELECT customer_currency_code AS c, "
    "sum(metrics_cost_micros::HUGEINT) / 1e6 AS s FROM raw.google_ads_campaign_stats "
    "GROUP BY 1 ORDER BY 1)",
    "klaviyo_campaigns": "SELECT string_agg(n || ' ' || channel, ', ') FROM "
    "(SELECT channel, count(*) AS n FROM raw.klaviyo_campaigns GROUP BY 1 ORDER BY 1)",
    "klaviyo_events": "SELECT format('{:,} profiles, {} metrics', count(DISTINCT profile_id), "
    "count(DISTINCT metric_name)) FROM raw.klaviyo_events",
    "klaviyo_holdout_profiles": "SELECT format('{} campaigns with holdouts', "
    "count(DISTINCT campaign_id)) FROM raw.klaviyo_holdout_profiles",
    "shopify_orders": "SELECT 'order value ' || string_agg(currency || ' ' || "
    "format('{:,.0f}', s), ', ') FROM (SELECT currency, sum(total_price::DOUBLE) AS s "
    "FROM raw.shopify_orders GROUP BY 1 ORDER BY 1)",
}


MART_TABLES = (
    "fct_marketing_daily",
    "fct_marketing_geo_daily",
    "fct_orders_daily",
    "dim_calendar",
    "fct_marketing_calendar_daily",
    "fct_experiment_geo_panel",
    "fct_experiment_email_panel",
    "fct_conversion_paths",
    "fct_offline_conversions_daily",
)


def partition_range() -> str:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return f"{get_settings().start_date.isoformat()}...{yesterday.isoformat()}"


def summary() -> int:
    settings = get_settings()
    if not settings.warehouse_path.exists():
        print(f"No warehouse at {settings.warehouse_path}: run `make demo` first.", file=sys.stderr)
        return 1
    warehouse = DuckDBWarehouse(settings.warehouse_path)
    print(f"Raw tables in {settings.warehouse_path}:")
    for table in RAW_TABLES:
        row = warehouse.query(
            "SELECT count(*) AS n, coalesce(min(partition_date)::VARCHAR, '-') AS lo, "
            "coalesce(max(partition_date)::VARCHAR, '-') AS hi, "
            "count(DISTINCT partition_date) AS days "
            f"FROM raw.{table.name}"
        ).iloc[0]
        line = f"  raw.{table.name:<26} {int(row['n']):>9,} rows  {row['lo']} .. {row['hi']}"
        line += f"  {int(row['days']):>4} days"
        if table.name in SUMMARY_DETAILS:
            detail = warehouse.query(SUMMARY_DETAILS[table.name]).iloc[0, 0]
            line += f"  {detail!s}"
        print(line)
    print("Marts:")
    for mart in MART_TABLES:
        rows = warehouse.query(f"SELECT count(*) AS n FROM marts.{mart}")["n"].item()
        print(f"  marts.{mart:<28} {rows:>9,} rows")
    spend = warehouse.query(
        "SELECT channel, round(sum(spend)) AS spend, round(sum(conversions)) AS claimed "
        "FROM marts.fct_marketing_daily GROUP BY 1 ORDER BY 1"
    )
    print(
        f"Spend and platform-claimed conversions by channel ({get_settings().reporting_currency}):"
    )
    for channel_row in spend.itertuples():
        print(
            f"  {channel_row.channel:<12} spend {channel_row.spend:>12,.0f}"
            f"   claimed conversions {channel_row.claimed:>9,.0f}"
        )
    _print_scorecard(warehouse)
    _print_media_mix(warehouse)
    _print_power_plan(warehouse)
    _print_reports(Path(str(settings.reports_dir)))  # the demo runs locally
    return 0


def _print_reports(folder: Path) -> None:
    files = sorted(folder.glob("*")) if folder.is_dir() else []
    if not files:
        return
    print(f"Reports in {folder}:")
    for path in files:
        print(f"  {path.name:<34} {path.stat().st_size:>9,} bytes")


def _print_media_mix(warehouse: DuckDBWarehouse) -> None:
    if not warehouse.table_exists("causal", "mmm_budget_plan"):
        return
    roas = warehouse.query(
        "SELECT r.subject, r.model_name, r.effect, r.ci_lower, r.ci_upper, t.true_value "
        "FROM causal.lift_analysis_results AS r LEFT JOIN causal.estimates_vs_truth AS t "
        "ON t.model_name = 'media_mix_model' AND t.subject = r.subject "
        "WHERE r.model_name LIKE 'media_mix_model%' AND r.metric = 'roas' "
        "ORDER BY r.subject, r.model_name"
    )
    print("Media-mix ROAS, 94% HDI (mean vs truth), with and without the geo tests:")
    print(f"  {'channel':<14}{'calibrated':<36}{'uncalibrated':<36}truth")
    for channel, rows in roas.groupby("subject", sort=True):
        cells: dict[str, str] = {}
        truth = float(rows["true_value"].iloc[0])
        for r in rows.to_dict("records"):
            effect = float(r["effect"])
            off = f" ({effect / truth - 1:+.0%})" if np.isfinite(truth) else ""
            cells[str(r["model_name"])] = (
                f"{effect:.2f} [{float(r['ci_lower']):.2f}, {float(r['ci_upper']):.2f}]{off}"
            )
        print(
            f"  {channel!s:<14}{cells.get('media_mix_model', '-'):<36}"
            f"{cells.get('media_mix_model_uncalibrated', '-'):<36}"
            f"{f'{truth:.3f}' if np.isfinite(truth) else '-'}"
        )
    plan = warehouse.query("SELECT * FROM causal.mmm_budget_plan ORDER BY channel")
    gain = float(plan["expected_contribution"].sum() - plan["current_contribution"].sum())
    print(f"Weekly budget plan (causal.mmm_budget_plan), expected revenue {gain:+,.0f} a week:")
    for p in plan.to_dict("records"):
        print(
            f"  {p['channel']!s:<14}spend {p['current_spend']:>9,.0f} -> "
            f"{p['optimal_spend']:>9,.0f}   revenue {p['current_contribution']:>9,.0f} -> "
            f"{p['expected_contribution']:>9,.0f} [{p['hdi_low']:,.0f}, {p['hdi_high']:,.0f}]"
        )


def _print_power_plan(warehouse: DuckDBWarehouse) -> None:
    if not warehouse.table_exists("causal", "geo_test_power_plan"):
        return
    plan = warehouse.query("SELECT * FROM causal.geo_test_power_plan ORDER BY start_date")
    print("Planned geo holdouts (causal.geo_test_power_plan):")
    for r in plan.to_dict("records"):
        name = str(r["experiment_id"])
        if r["note"]:
            print(f"  {name:<30} {r['note']}")
            continue
        expected = (
            f"power {r['power_at_expected']:.0%} at the {r['expected_lift']:+.1%} "
            f"{r['expected_from']} measured"
            if r["expected_from"]
            else "no earlier readout of this channel"
        )
        print(
            f"  {name:<30} {r['test_days']} days, holdout {r['holdout_units']}: "
            f"detects {r['mde_relative']:+.1%} ({r['mde_revenue_per_region_day']:+,.0f} per "
            f"region-day); {expected}"
        )


def _print_scorecard(warehouse: DuckDBWarehouse) -> None:
    if not warehouse.table_exists("causal", "estimates_vs_truth"):
        print("No causal.estimates_vs_truth yet: the measurement step has not run.")
        return
    scored = warehouse.query(
        "SELECT model_name, subject, unit, estimate, ci_lower, ci_upper, true_value, covered "
        "FROM causal.estimates_vs_truth ORDER BY model_name, subject"
    )
    print("Estimates (95% interval) beside the sandbox's truth (causal.estimates_vs_truth):")
    for model, rows in scored.groupby("model_name", sort=False):
        unit = rows["unit"].iloc[0]
        covered = int(rows["covered"].sum())
        print(f"  {model}  ({unit}; truth inside the interval {covered}/{len(rows)})")
        if str(model).endswith("_attribution"):
            print(
                "    (attribution splits observed conversions; the truth is each channel's "
                "causal share, so the gap is attribution's bias, not noise)"
            )
        for r in rows.itertuples():
            mark = "in " if r.covered else "OUT"
            print(
                f"    {r.subject:<32} {r.estimate:>10.4g}  [{r.ci_lower:>10.4g}, "
                f"{r.ci_upper:>10.4g}]  truth {r.true_value:>10.4g}  {mark}"
            )


def register_experiments() -> int:
    import dagster as dg

    from cfap_orchestration.defs.measure.partitions import register_geo_experiments

    warehouse = DuckDBWarehouse(get_settings().warehouse_path)
    with dg.DagsterInstance.get() as instance:
        register_geo_experiments(instance, warehouse)
        print(" ".join(instance.get_dynamic_partitions("geo_experiments")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfap_orchestration.demo")
    parser.add_argument("command", choices=["partition-range", "register-experiments", "summary"])
    args = parser.parse_args(argv)
    if args.command == "partition-range":
        print(partition_range())
        return 0
    if args.command == "register-experiments":
        return register_experiments()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
