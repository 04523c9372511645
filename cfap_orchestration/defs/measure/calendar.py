"""Calendar effects on daily revenue as an asset."""

from datetime import date
from typing import Literal

import dagster as dg
from pydantic import Field, field_validator

from cfap_orchestration.defs.measure.publish import publish_study
from cfap_orchestration.studies import plots
from cfap_orchestration.studies.calendar import calendar_effects, load_calendar

CALENDAR = dg.AssetKey(["marts", "fct_marketing_calendar_daily"])
KEY = dg.AssetKey(["causal", "temporal_effects"])
MODEL_VERSION = "1"
MIN_DAYS = 365  # a full year, so the yearly cycle is not confused with holidays


class TemporalConfig(dg.Config):
    outcome: Literal["revenue", "orders"] = Field(default="revenue")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    start_date: str | None = Field(
        default=None, description="First day modelled (YYYY-MM-DD); default the mart's first."
    )
    end_date: str | None = Field(
        default=None, description="Last day modelled (YYYY-MM-DD); default the mart's last."
    )

    @field_validator("start_date", "end_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a date in YYYY-MM-DD form") from None
        return value

    def window(self) -> tuple[date | None, date | None]:
        start = date.fromisoformat(self.start_date) if self.start_date else None
        end = date.fromisoformat(self.end_date) if self.end_date else None
        if start and end and start > end:
            raise ValueError(f"start_date {start} is after end_date {end}")
        return start, end


@dg.asset(
    key=KEY,
    group_name="measure",
    deps=[CALENDAR],
    kinds={"python"},
    required_resource_keys={"warehouse"},
    code_version=MODEL_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "full_year_of_history",
            asset=KEY,
            description=f"At least {MIN_DAYS} days, so seasonality and holidays separate.",
        )
    ],
    description=(
        "How much daily revenue moves with the calendar: each weekday against Monday, "
        "holidays, peak seasons (Black Friday week, holiday season, ...) and the yearly "
        "trend, from one log-linear regression with Newey-West errors. Effects in revenue "
        "per affected day and as relative lifts."
    ),
)
def temporal_effects(
    context: dg.AssetExecutionContext, config: TemporalConfig
) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    start, end = config.window()
    calendar = load_calendar(warehouse, start=start, end=end)
    fit, rows = calendar_effects(calendar, outcome=config.outcome, alpha=config.alpha)
    days = len(calendar)
    first, last = rows[0].estimate.details["first_day"], rows[0].estimate.details["last_day"]
    metadata = publish_study(
        context,
        warehouse,
        model_name="temporal_effects",
        model_version=MODEL_VERSION,
        rows=rows,
        params={**config.model_dump(), "start_date": first, "end_date": last},
        diagnostics=fit.diagnostics,
        plots={
            "effects": plots.effects_png(
                fit.effects.assign(label=fit.effects["component"] + ":" + fit.effects["level"]),
                label="label",
                title=f"Calendar effects on {config.outcome}, {first}..{last}",
            )
        },
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="full_year_of_history",
                passed=days >= MIN_DAYS,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"days": days},
            )
        ],
    )
