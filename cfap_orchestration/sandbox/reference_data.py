"""Reference data published as dbt seeds: FX rates, regions, peak seasons, experiment registry.

    python -m cfap_orchestration.sandbox.reference_data   # rewrites dbt_project/seeds/

The seeds are committed; a test checks they match what the world generates.
"""

from __future__ import annotations

import csv
import sys
from datetime import date, timedelta
from pathlib import Path

from cfap_orchestration.sandbox.catalog import EU_REGIONS, US_REGIONS
from cfap_orchestration.sandbox.world import SandboxWorld, daterange, fx_usd_per_unit

SEEDS_DIR = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds"
FX_START, FX_END = date(2020, 1, 1), date(2030, 12, 31)
REGISTRY_YEARS = range(2023, 2028)


def fx_rate_rows() -> list[dict[str, object]]:
    return [
        {"rate_date": d.isoformat(), "from_currency": "EUR", "to_currency": "USD",
         "rate": fx_usd_per_unit("EUR", d)}
        for d in daterange(FX_START, FX_END)
    ]  # fmt: skip


def experiment_registry_rows(world: SandboxWorld) -> list[dict[str, object]]:
    """The geo holdout tests the brand has registered (what a measurement team logs)."""
    rows: list[dict[str, object]] = []
    for year in REGISTRY_YEARS:
        for exp in world.experiments_for_year(year):
            rows.append(
                {
                    "experiment_id": exp.experiment_id,
                    "experiment_type": "geo_holdout",
                    "platform": exp.platform,
                    "channel": exp.channel,
                    "start_date": exp.start.isoformat(),
                    "end_date": exp.end.isoformat(),
                    "treatment": "ads_off",
                    "holdout_units": "|".join(exp.holdout_geos),
                }
            )
    return rows


def geo_region_rows() -> list[dict[str, object]]:
    """How each platform names a region: Meta by name, Google by criterion, Shopify by code."""
    return [
        {
            "geo_id": r.geo_id,
            "region_name": r.name,
            "country_code": r.country,
            "province_code": r.geo_id.split("-", 1)[1],
            "google_criterion_id": r.google_criterion_id,
            "market": "US" if r.country == "US" else "EU",
        }
        for r in (*US_REGIONS, *EU_REGIONS)
    ]


def peak_season_rows() -> list[dict[str, object]]:
    """Retail peak seasons per year, the dates a merchandising calendar would list."""
    rows: list[dict[str, object]] = []
    for year in range(FX_START.year, FX_END.year + 1):
        black_friday = SandboxWorld.black_friday(year)
        seasons = [
            ("valentines", date(year, 2, 1), date(year, 2, 14)),
            (
                "mothers_day",
                _nth_weekday(year, 5, 6, 2) - timedelta(days=10),
                _nth_weekday(year, 5, 6, 2),
            ),
            ("summer_sale", date(year, 7, 1), date(year, 7, 21)),
            ("back_to_school", date(year, 7, 25), date(year, 9, 5)),
            (
                "black_friday_week",
                black_friday - timedelta(days=1),
                black_friday + timedelta(days=4),
            ),
            ("holiday_season", black_friday + timedelta(days=5), date(year, 12, 24)),
            ("post_holiday_sale", date(year, 12, 26), date(year, 12, 31)),
        ]
        rows.extend(
            {"season_name": name, "start_date": start.isoformat(), "end_date": end.isoformat()}
            for name, start, end in seasons
        )
    return rows


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


SEEDS = {
    "fx_rates": fx_rate_rows,
    "geo_regions": geo_region_rows,
    "peak_seasons": peak_season_rows,
    "experiment_registry": lambda: experiment_registry_rows(SandboxWorld()),
}


def main() -> int:
    for name, rows in SEEDS.items():
        write_csv(SEEDS_DIR / f"{name}.csv", rows())
        print(f"wrote {SEEDS_DIR / name}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
