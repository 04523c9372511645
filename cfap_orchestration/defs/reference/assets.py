"""Public holidays of the brand's markets, for the calendar dimension."""

import os
from datetime import UTC, datetime

import dagster as dg

from cfap_orchestration.public_holidays import public_holidays
from cfap_orchestration.settings import get_settings

DEFAULT_COUNTRIES = "US,DE,FR,NL"


def holiday_countries() -> list[str]:
    raw = os.getenv("CFAP_HOLIDAY_COUNTRIES", DEFAULT_COUNTRIES)
    return [c.strip().upper() for c in raw.split(",") if c.strip()]


@dg.asset(
    key=["raw", "public_holidays"],
    group_name="reference",
    kinds={"python"},
    # Unpartitioned, but allowed in the same partition-range CLI run as the dbt models.
    backfill_policy=dg.BackfillPolicy.single_run(),
    required_resource_keys={"warehouse"},
    description=(
        "Public holidays of every market the brand sells in (CFAP_HOLIDAY_COUNTRIES, default "
        "US,DE,FR,NL), from the `holidays` library, for the first partition's year through "
        "the end of next decade's calendar: the holiday flags of dim_calendar."
    ),
)
def public_holidays_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    first_year = get_settings().start_date.year
    years = range(first_year, max(2030, datetime.now(UTC).year + 1) + 1)
    frame = public_holidays(holiday_countries(), years)
    written = context.resources.warehouse.get().replace_table("raw", "public_holidays", frame)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written.rows_written,
            "countries": ", ".join(holiday_countries()),
            "years": f"{years.start}..{years.stop - 1}",
        }
    )
