"""Geo lift analyses on demand: a registered geo experiment, or a design described by hand.

A request names either a registered geo experiment (its panel is
`marts.fct_experiment_geo_panel`) or an ad-hoc design: the treated (held-out) regions, the
test window, the pre-period length and the platform whose spend was withheld. The ad-hoc
panel is built here in the registered panel's shape from the geo marts
(`marts.fct_orders_daily` and `marts.fct_marketing_geo_daily`), with the same rules as the
dbt model: every region of the treated regions' market that has orders, one row per region
and day, the platform's spend zero where it spent nothing. The estimators are the geo
holdout ones of `geo_holdouts.py`.

A request is checked against what the warehouse holds before anything is estimated, and
every problem is named in one message. Results are written under their own model names
(`adhoc_<method>`), one row per subject and metric, so an on-demand analysis never replaces
a scheduled readout's rows. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import pandas as pd

from cfap_orchestration.studies.geo_holdouts import (
    PANEL_COLUMNS,
    GeoInference,
    GeoMetric,
    GeoPanel,
    did_geo_holdout,
    load_geo_panel,
    synthetic_control_geo_holdout,
)
from cfap_orchestration.studies.results import (
    StudyRow,
    register_fit,
    registry_frame,
    results_frame,
    write_results,
)
from cfap_orchestration.warehouse import Warehouse

GeoMethod = Literal["difference_in_differences", "synthetic_control"]
MODEL_VERSION = "1"
MIN_PRE_PERIOD_DAYS = 28  # four full weeks, so weekday patterns are in the comparison
DEFAULT_PRE_PERIOD_DAYS = 56  # the registered panels' pre-period (dbt var)
MIN_CONTROL_REGIONS = 2
ORDERS_MART = "marts.fct_orders_daily"
SPEND_MART = "marts.fct_marketing_geo_daily"
REGISTERED_PANEL = "marts.fct_experiment_geo_panel"
ADHOC_FIELDS = ("treated_units", "start_date", "end_date", "pre_period_days", "platform")
# Estimator details that are tables: kept in the result row, not in the registry entry.
TABLE_DETAILS = ("event_study", "gap", "placebos")


class GeoLiftRequestError(ValueError):
    """A request that cannot be analysed, with every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"the geo lift analysis cannot run:\n{listed}")


@dataclass(frozen=True)
class GeoLiftRequest:
    """What the user asked for, as given (dates as YYYY-MM-DD text)."""

    experiment_id: str | None = None
    treated_units: Sequence[str] | None = None
    start_date: str | None = None
    end_date: str | None = None
    pre_period_days: int | None = None
    platform: str | None = None
    alpha: float = 0.05


@dataclass(frozen=True)
class RegisteredExperiment:
    experiment_id: str
    experiment_type: str
    platform: str
    channel: str
    start_date: date
    end_date: date
    holdout_units: tuple[str, ...]

    @property
    def test_days(self) -> int:
        return (self.end_date - self.start_date).days + 1


@dataclass(frozen=True)
class PanelDays:
    """Distinct days of one registered experiment's panel, before and during the test."""

    pre_days: int
    test_days: int


@dataclass(frozen=True)
class GeoCatalog:
    """What the warehouse holds that a request is checked against."""

    experiments: Mapping[str, RegisteredExperiment]
    panel_days: Mapping[str, PanelDays]
    region_markets: Mapping[str, str]  # every known geo id -> its market
    order_geos: frozenset[str]  # regions with rows in marts.fct_orders_daily
    orders_span: tuple[date, date] | None  # first and last day of marts.fct_orders_daily
    platform_channels: Mapping[str, str]  # platforms with geo-level spend -> their channel


@dataclass(frozen=True)
class GeoDesign:
    """A checked request: the regions, windows and platform the analysis runs on."""

    subject: str
    platform: str
    channel: str
    treated_units: tuple[str, ...]
    control_units: tuple[str, ...]
    start_date: date
    end_date: date
    pre_period_days: int
    experiment_id: str | None = None

    @property
    def pre_start(self) -> date:
        return self.start_date - timedelta(days=self.pre_period_days)

    @property
    def panel_source(self) -> str:
        return REGISTERED_PANEL if self.experiment_id else f"{ORDERS_MART} + {SPEND_MART}"


def adhoc_subject(platform: str, treated: Sequence[str], start: date, end: date, pre: int) -> str:
    """The name of an ad-hoc design in the results: platform, regions, test window, pre-period."""
    return f"{platform}:{'|'.join(sorted(treated))}:{start}..{end}:pre{pre}d"


def adhoc_model_name(method: GeoMethod) -> str:
    """Model name of on-demand analyses: never the scheduled readouts' name."""
    return f"adhoc_{method}"


# --- checking a request ---------------------------------------------------------------------


def resolve_request(request: GeoLiftRequest, catalog: GeoCatalog) -> GeoDesign:
    """The design the request describes; `GeoLiftRequestError` naming every problem if none."""
    problems = shape_problems(request)
    design: GeoDesign | None = None
    if not problems:
        design, problems = (
            _registered_design(request.experiment_id, catalog)
            if request.experiment_id is not None
            else _adhoc_design(request, catalog)
        )
    problems = [*problems, *alpha_problems(request.alpha)]
    if problems or design is None:
        raise GeoLiftRequestError(problems)
    return design


def shape_problems(request: GeoLiftRequest) -> list[str]:
    """Problems with which fields are given, before looking at the data."""
    problems = []
    if request.experiment_id is not None and request.treated_units is not None:
        problems.append("give either experiment_id or treated_units, not both")
    elif request.experiment_id is not None:
        given = [f for f in ADHOC_FIELDS if getattr(request, f) is not None]
        if given:
            problems.append(
                f"experiment_id is set, so leave out {', '.join(given)}: the experiment "
                "registry defines the registered experiment's design"
            )
    elif request.treated_units is None:
        problems.append(
            "give either experiment_id (a registered geo experiment) or treated_units with "
            "start_date, end_date and platform (an ad-hoc design)"
        )
    return problems


def alpha_problems(alpha: float) -> list[str]:
    if 0 < alpha < 0.5:
        return []
    return [f"alpha must be between 0 and 0.5 (exclusive), got {alpha}"]


def _registered_design(
    experiment_id: str, catalog: GeoCatalog
) -> tuple[GeoDesign | None, list[str]]:
    experiment = catalog.experiments.get(experiment_id)
    if experiment is None or experiment.experiment_type != "geo_holdout":
        return None, [_unknown_experiment(experiment_id, catalog)]
    days = catalog.panel_days.get(experiment_id, PanelDays(0, 0))
    problems = registered_coverage_problems(experiment, days, catalog.orders_span)
    if problems:
        return None, problems
    return GeoDesign(
        subject=experiment_id,
        platform=experiment.platform,
        channel=experiment.channel,
        treated_units=experiment.holdout_units,
        control_units=_controls(experiment.holdout_units, catalog),
        start_date=experiment.start_date,
        end_date=experiment.end_date,
        pre_period_days=days.pre_days,
        experiment_id=experiment_id,
    ), []


def _unknown_experiment(experiment_id: str, catalog: GeoCatalog) -> str:
    experiment = catalog.experiments.get(experiment_id)
    if experiment is not None:
        return (
            f"experiment {experiment_id!r} is a {experiment.experiment_type} experiment, "
            "not a geo holdout"
        )
    geo = sorted(k for k, e in catalog.experiments.items() if e.experiment_type == "geo_holdout")
    return (
        f"unknown experiment_id {experiment_id!r}: the registered geo experiments "
        f"(staging.stg_reference__experiment_registry) are {', '.join(geo) or 'none'}"
    )


def registered_coverage_problems(
    experiment: RegisteredExperiment, days: PanelDays, orders_span: tuple[date, date] | None
) -> list[str]:
    """Whether the registered panel holds the whole test and enough pre-period days."""
    problems = []
    if days.test_days < experiment.test_days:
        problems.append(
            f"the test period of {experiment.experiment_id} "
            f"({experiment.start_date}..{experiment.end_date}, {experiment.test_days} days) "
            f"is not in the data: {REGISTERED_PANEL} has {days.test_days} of its days "
            f"({_loaded(orders_span)})"
        )
    if days.pre_days < MIN_PRE_PERIOD_DAYS:
        problems.append(
            f"{experiment.experiment_id} has {days.pre_days} pre-period days in "
            f"{REGISTERED_PANEL}; at least {MIN_PRE_PERIOD_DAYS} are needed "
            f"({_loaded(orders_span)}): load earlier days"
        )
    return problems


def _loaded(orders_span: tuple[date, date] | None) -> str:
    if orders_span is None:
        return f"{ORDERS_MART} is empty"
    return f"{ORDERS_MART} has days {orders_span[0]}..{orders_span[1]}"


def _adhoc_design(
    request: GeoLiftRequest, catalog: GeoCatalog
) -> tuple[GeoDesign | None, list[str]]:
    treated = tuple(request.treated_units or ())
    pre_days = (
        DEFAULT_PRE_PERIOD_DAYS if request.pre_period_days is None else request.pre_period_days
    )
    start, end, date_problems = parse_test_period(request.start_date, request.end_date)
    problems = [
        *region_problems(treated, catalog),
        *date_problems,
        *pre_period_length_problems(pre_days),
        *platform_problems(request.platform, catalog),
    ]
    if start is not None and end is not None and not date_problems:
        problems += period_coverage_problems(start, end, pre_days, catalog.orders_span)
    if problems or start is None or end is None or request.platform is None:
        return None, problems
    return GeoDesign(
        subject=adhoc_subject(request.platform, treated, start, end, pre_days),
        platform=request.platform,
        channel=catalog.platform_channels[request.platform],
        treated_units=tuple(sorted(treated)),
        control_units=_controls(treated, catalog),
        start_date=start,
        end_date=end,
        pre_period_days=pre_days,
    ), []


def _controls(treated: Sequence[str], catalog: GeoCatalog) -> tuple[str, ...]:
    """The regions with orders in the treated regions' market(s), other than the treated."""
    markets = {catalog.region_markets.get(g) for g in treated}
    return tuple(
        sorted(
            g
            for g in catalog.order_geos
            if catalog.region_markets.get(g) in markets and g not in treated
        )
    )


def region_problems(treated: Sequence[str], catalog: GeoCatalog) -> list[str]:
    """Unknown, repeated or order-less treated regions; markets mixed; too few controls."""
    if not treated:
        return ["treated_units is empty: name at least one region, e.g. US-CA"]
    repeated = sorted({g for g in treated if list(treated).count(g) > 1})
    unknown = sorted(set(treated) - set(catalog.region_markets))
    problems = [f"treated_units lists {g} more than once" for g in repeated]
    if unknown:
        return [
            *problems,
            f"unknown geo id(s) {', '.join(unknown)}: regions are ids such as US-CA or DE-BY "
            "(dbt_project/seeds/geo_regions.csv)",
        ]
    no_orders = sorted(set(treated) - catalog.order_geos)
    if no_orders:
        problems.append(f"{', '.join(no_orders)} have no orders in {ORDERS_MART}")
    markets = sorted({catalog.region_markets[g] for g in treated})
    if len(markets) > 1:
        problems.append(
            f"treated_units span the markets {', '.join(markets)}: a geo test compares "
            "regions within one market"
        )
    elif len(controls := _controls(treated, catalog)) < MIN_CONTROL_REGIONS:
        problems.append(
            f"only {len(controls)} control region(s) with orders remain in market "
            f"{markets[0]}; at least {MIN_CONTROL_REGIONS} are needed"
        )
    return problems


def parse_test_period(
    start_date: str | None, end_date: str | None
) -> tuple[date | None, date | None, list[str]]:
    """The test period's first and last day, and the problems with them."""
    start, start_problems = _parse_day("start_date", start_date)
    end, end_problems = _parse_day("end_date", end_date)
    problems = start_problems + end_problems
    if start is not None and end is not None and end < start:
        problems.append(f"end_date {end} is before start_date {start}")
    return start, end, problems


def _parse_day(field: str, value: str | None) -> tuple[date | None, list[str]]:
    if value is None:
        return None, [f"an ad-hoc design needs {field} (YYYY-MM-DD, inclusive)"]
    try:
        return date.fromisoformat(value), []
    except ValueError:
        return None, [f"{field} {value!r} is not a date in the form YYYY-MM-DD"]


def pre_period_length_problems(pre_period_days: int) -> list[str]:
    if pre_period_days < MIN_PRE_PERIOD_DAYS:
        return [
            f"pre_period_days is {pre_period_days}: at least {MIN_PRE_PERIOD_DAYS} days "
            "(four full weeks) are needed before the test"
        ]
    return []


def platform_problems(platform: str | None, catalog: GeoCatalog) -> list[str]:
    known = ", ".join(sorted(catalog.platform_channels)) or "none"
    if platform is None:
        return [f"an ad-hoc design needs platform: the one whose spend was withheld ({known})"]
    if platform not in catalog.platform_channels:
        return [f"platform {platform!r} has no geo-level spend in {SPEND_MART}: use one of {known}"]
    return []


def period_coverage_problems(
    start: date, end: date, pre_period_days: int, orders_span: tuple[date, date] | None
) -> list[str]:
    """Whether the test period and the pre-period before it are loaded."""
    if orders_span is None:
        return [f"{ORDERS_MART} is empty: materialize the marts first"]
    first, last = orders_span
    if start < first or end > last:
        return [f"the test period {start}..{end} is not in the data: {_loaded(orders_span)}"]
    pre_start = start - timedelta(days=pre_period_days)
    if pre_start >= first:
        return []
    available = (start - first).days
    fix = (
        f"load earlier days or set pre_period_days to at most {available}"
        if available >= MIN_PRE_PERIOD_DAYS
        else f"load earlier days (only {available} are loaded before the test; "
        f"at least {MIN_PRE_PERIOD_DAYS} are needed)"
    )
    return [
        f"the {pre_period_days}-day pre-period starts {pre_start}, before the first loaded "
        f"day {first} of {ORDERS_MART}: {fix}"
    ]


# --- reading the warehouse ------------------------------------------------------------------

REQUIRED_RELATIONS = (
    ("staging", "stg_reference__experiment_registry"),
    ("staging", "stg_reference__geo_regions"),
    ("marts", "fct_orders_daily"),
    ("marts", "fct_marketing_geo_daily"),
    ("marts", "fct_experiment_geo_panel"),
)


def load_catalog(warehouse: Warehouse) -> GeoCatalog:
    """The registry, regions, loaded days and geo platforms a request is checked against."""
    missing = [f"{s}.{t}" for s, t in REQUIRED_RELATIONS if not warehouse.table_exists(s, t)]
    if missing:
        raise GeoLiftRequestError(
            [f"{', '.join(missing)} not built yet: materialize the dbt models (the marts) first"]
        )
    orders = warehouse.query(
        f"SELECT geo_id, min(date_day) AS first_day, max(date_day) AS last_day "
        f"FROM {warehouse.relation('marts', 'fct_orders_daily')} GROUP BY 1"
    )
    return GeoCatalog(
        experiments=_registered_experiments(warehouse),
        panel_days=_panel_days(warehouse),
        region_markets=_region_markets(warehouse),
        order_geos=frozenset(orders["geo_id"]),
        orders_span=_span(orders),
        platform_channels=_platform_channels(warehouse),
    )


def _registered_experiments(warehouse: Warehouse) -> dict[str, RegisteredExperiment]:
    frame = warehouse.query(
        "SELECT experiment_id, experiment_type, platform, channel, start_date, end_date, "
        f"holdout_units FROM {warehouse.relation('staging', 'stg_reference__experiment_registry')}"
    )
    return {
        str(r["experiment_id"]): RegisteredExperiment(
            experiment_id=str(r["experiment_id"]),
            experiment_type=str(r["experiment_type"]),
            platform=str(r["platform"]),
            channel=str(r["channel"]),
            start_date=pd.Timestamp(r["start_date"]).date(),
            end_date=pd.Timestamp(r["end_date"]).date(),
            holdout_units=tuple(sorted(str(r["holdout_units"] or "").split("|"))),
        )
        for r in frame.to_dict("records")
    }


def _panel_days(warehouse: Warehouse) -> dict[str, PanelDays]:
    frame = warehouse.query(
        "SELECT experiment_id, "
        "count(DISTINCT CASE WHEN NOT is_test_period THEN date_day END) AS pre_days, "
        "count(DISTINCT CASE WHEN is_test_period THEN date_day END) AS test_days "
        f"FROM {warehouse.relation('marts', 'fct_experiment_geo_panel')} GROUP BY 1"
    )
    return {
        str(r["experiment_id"]): PanelDays(int(r["pre_days"]), int(r["test_days"]))
        for r in frame.to_dict("records")
    }


def _region_markets(warehouse: Warehouse) -> dict[str, str]:
    frame = warehouse.query(
        f"SELECT geo_id, market FROM {warehouse.relation('staging', 'stg_reference__geo_regions')}"
    )
    return dict(zip(frame["geo_id"].astype(str), frame["market"].astype(str), strict=True))


def _platform_channels(warehouse: Warehouse) -> dict[str, str]:
    frame = warehouse.query(
        "SELECT DISTINCT platform, channel "
        f"FROM {warehouse.relation('marts', 'fct_marketing_geo_daily')}"
    )
    return dict(zip(frame["platform"].astype(str), frame["channel"].astype(str), strict=True))


def _span(orders: pd.DataFrame) -> tuple[date, date] | None:
    if orders.empty:
        return None
    return (
        pd.Timestamp(orders["first_day"].min()).date(),
        pd.Timestamp(orders["last_day"].max()).date(),
    )


def load_panel(warehouse: Warehouse, design: GeoDesign) -> GeoPanel:
    """The registered experiment's panel from its mart, or the ad-hoc design's, built here."""
    if design.experiment_id is not None:
        return load_geo_panel(warehouse, design.experiment_id)
    orders = warehouse.query(
        "SELECT date_day, geo_id, orders, net_revenue AS revenue "
        f"FROM {warehouse.relation('marts', 'fct_orders_daily')} "
        "WHERE date_day BETWEEN ? AND ?",
        [design.pre_start, design.end_date],
    )
    spend = warehouse.query(
        "SELECT date_day, geo_id, spend "
        f"FROM {warehouse.relation('marts', 'fct_marketing_geo_daily')} "
        "WHERE platform = ? AND date_day BETWEEN ? AND ?",
        [design.platform, design.pre_start, design.end_date],
    )
    return build_geo_panel(design, orders, spend)


# --- the panel and the estimate -------------------------------------------------------------


def build_geo_panel(design: GeoDesign, orders: pd.DataFrame, spend: pd.DataFrame) -> GeoPanel:
    """The design's panel in `marts.fct_experiment_geo_panel`'s shape.

    `orders`: date_day, geo_id, orders, revenue (net, reporting currency) per region and day;
    `spend`: date_day, geo_id, spend of the design's platform. A region-day without orders is
    left out (as the mart's inner join does); one without spend has zero spend.
    """
    regions = {*design.treated_units, *design.control_units}
    window = pd.to_datetime(orders["date_day"]).between(
        pd.Timestamp(design.pre_start), pd.Timestamp(design.end_date)
    )
    frame = orders[window & orders["geo_id"].isin(regions)].assign(
        date_day=lambda f: pd.to_datetime(f["date_day"])
    )
    spent = spend.assign(date_day=pd.to_datetime(spend["date_day"])).rename(
        columns={"spend": "platform_spend"}
    )
    frame = frame.merge(spent[["date_day", "geo_id", "platform_spend"]], how="left")
    is_holdout = frame["geo_id"].isin(design.treated_units)
    is_test = frame["date_day"] >= pd.Timestamp(design.start_date)
    frame = frame.assign(
        experiment_id=design.subject,
        platform=design.platform,
        channel=design.channel,
        is_holdout_unit=is_holdout,
        is_test_period=is_test,
        is_treated=is_holdout & is_test,
        platform_spend=frame["platform_spend"].fillna(0.0).astype(float),
    )
    ordered = frame[list(PANEL_COLUMNS)].sort_values(["geo_id", "date_day"])
    return GeoPanel(design.subject, ordered.reset_index(drop=True))


def estimate_geo_lift(
    panel: GeoPanel,
    *,
    method: GeoMethod,
    metric: GeoMetric,
    alpha: float,
    inference: GeoInference,
) -> StudyRow:
    """The ads' effect per holdout region-day by the chosen geo holdout estimator."""
    if method == "synthetic_control":
        return synthetic_control_geo_holdout(panel, metric=metric, alpha=alpha)
    return did_geo_holdout(panel, metric=metric, alpha=alpha, inference=inference)


def analysis_params(
    design: GeoDesign, *, method: GeoMethod, metric: GeoMetric, alpha: float, inference: str
) -> dict[str, Any]:
    """The parameters recorded with the result row and its registry entry."""
    return {
        "experiment_id": design.experiment_id,
        "treated_units": list(design.treated_units),
        "control_units": list(design.control_units),
        "platform": design.platform,
        "channel": design.channel,
        "start_date": design.start_date.isoformat(),
        "end_date": design.end_date.isoformat(),
        "pre_period_days": design.pre_period_days,
        "method": method,
        "metric": metric,
        "alpha": alpha,
        **({"inference": inference} if method == "difference_in_differences" else {}),
        "panel": design.panel_source,
    }


def publish_geo_lift(
    warehouse: Warehouse,
    row: StudyRow,
    *,
    run_id: str,
    method: GeoMethod,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Replace this analysis's row (its model, subject and metric) and registry entry."""
    model_name = adhoc_model_name(method)
    results = results_frame(
        [row], run_id=run_id, model_name=model_name, model_version=MODEL_VERSION, params=params
    )
    details = row.estimate.details
    registry = registry_frame(
        model_name=model_name,
        model_version=MODEL_VERSION,
        params=params,
        diagnostics={k: v for k, v in details.items() if k not in TABLE_DETAILS},
    )
    write_results(warehouse, model_name=model_name, results=results, by_metric=True)
    register_fit(warehouse, registry)
    return results
