"""Geo lift requests: every way a request can be wrong is named, the ad-hoc panel has the
registered panel's shape, and on-demand rows never replace the scheduled readouts'."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.studies.adhoc_geo_analysis import (
    GeoCatalog,
    GeoDesign,
    GeoLiftRequest,
    GeoLiftRequestError,
    PanelDays,
    RegisteredExperiment,
    adhoc_model_name,
    build_geo_panel,
    publish_geo_lift,
    resolve_request,
)
from cfap_orchestration.studies.geo_holdouts import PANEL_COLUMNS
from cfap_orchestration.studies.results import StudyRow, results_frame, write_results
from cfap_orchestration.warehouse import DuckDBWarehouse

EXPERIMENT = "geo_holdout_google_ads_2024"
CATALOG = GeoCatalog(
    experiments={
        EXPERIMENT: RegisteredExperiment(
            EXPERIMENT,
            "geo_holdout",
            "google_ads",
            "paid_search",
            date(2024, 4, 8),
            date(2024, 5, 5),
            ("US-GA", "US-MA", "US-NY"),
        ),
        "email_holdout_2024": RegisteredExperiment(
            "email_holdout_2024",
            "email_holdout",
            "klaviyo",
            "email",
            date(2024, 4, 8),
            date(2024, 5, 5),
            (),
        ),
    },
    panel_days={EXPERIMENT: PanelDays(pre_days=44, test_days=28)},
    region_markets={
        **dict.fromkeys(["US-CA", "US-TX", "US-NY", "US-GA", "US-MA", "US-OR"], "US"),
        **dict.fromkeys(["DE-BY", "DE-BE"], "EU"),
    },
    order_geos=frozenset({"US-CA", "US-TX", "US-NY", "US-GA", "US-MA", "DE-BY", "DE-BE"}),
    orders_span=(date(2024, 2, 24), date(2024, 5, 6)),
    platform_channels={"meta": "paid_social", "google_ads": "paid_search"},
)
ADHOC = GeoLiftRequest(
    treated_units=("US-GA", "US-NY"),
    start_date="2024-04-08",
    end_date="2024-05-05",
    pre_period_days=28,
    platform="meta",
)


def _with(**changes: Any) -> GeoLiftRequest:
    return replace(ADHOC, **changes)


def _problems(request: GeoLiftRequest, catalog: GeoCatalog = CATALOG) -> list[str]:
    with pytest.raises(GeoLiftRequestError) as raised:
        resolve_request(request, catalog)
    assert str(raised.value).startswith("the geo lift analysis cannot run:")
    return raised.value.problems


def test_a_registered_experiment_takes_its_design_from_the_registry() -> None:
    design = resolve_request(GeoLiftRequest(experiment_id=EXPERIMENT), CATALOG)
    assert design.subject == EXPERIMENT
    assert design.experiment_id == EXPERIMENT
    assert design.treated_units == ("US-GA", "US-MA", "US-NY")
    assert design.control_units == ("US-CA", "US-TX")  # US regions with orders; not US-OR
    assert (design.platform, design.channel) == ("google_ads", "paid_search")
    assert design.pre_period_days == 44
    assert design.panel_source == "marts.fct_experiment_geo_panel"


def test_an_adhoc_design_is_named_by_platform_regions_window_and_pre_period() -> None:
    design = resolve_request(_with(treated_units=("US-NY", "US-GA")), CATALOG)
    assert design.subject == "meta:US-GA|US-NY:2024-04-08..2024-05-05:pre28d"
    assert design.experiment_id is None
    assert design.treated_units == ("US-GA", "US-NY")
    assert design.control_units == ("US-CA", "US-MA", "US-TX")
    assert design.channel == "paid_social"
    assert design.pre_start == date(2024, 3, 11)


def test_the_pre_period_defaults_to_the_registered_panels_56_days() -> None:
    design = resolve_request(_with(pre_period_days=None, start_date="2024-04-22"), CATALOG)
    assert design.pre_period_days == 56
    assert design.subject.endswith(":pre56d")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            _with(experiment_id=EXPERIMENT),
            "give either experiment_id or treated_units, not both",
        ),
        (GeoLiftRequest(), "give either experiment_id (a registered geo experiment) or"),
        (
            GeoLiftRequest(experiment_id=EXPERIMENT, start_date="2024-04-01", platform="meta"),
            "experiment_id is set, so leave out start_date, platform",
        ),
        (
            GeoLiftRequest(experiment_id="geo_holdout_tiktok_2024"),
            "unknown experiment_id 'geo_holdout_tiktok_2024': the registered geo "
            f"experiments (staging.stg_reference__experiment_registry) are {EXPERIMENT}",
        ),
        (
            GeoLiftRequest(experiment_id="email_holdout_2024"),
            "experiment 'email_holdout_2024' is a email_holdout experiment, not a geo holdout",
        ),
        (_with(alpha=0.5), "alpha must be between 0 and 0.5 (exclusive), got 0.5"),
        (_with(treated_units=()), "treated_units is empty"),
        (_with(treated_units=("US-GA", "US-GA")), "treated_units lists US-GA more than once"),
        (
            _with(treated_units=("US-GA", "us-ny", "US-ZZ")),
            "unknown geo id(s) US-ZZ, us-ny: regions are ids such as US-CA",
        ),
        (_with(treated_units=("US-OR",)), "US-OR have no orders in marts.fct_orders_daily"),
        (
            _with(treated_units=("US-GA", "DE-BY")),
            "treated_units span the markets EU, US: a geo test compares regions within one",
        ),
        (
            _with(treated_units=("DE-BY",)),
            "only 1 control region(s) with orders remain in market EU; at least 2 are needed",
        ),
        (_with(start_date=None), "an ad-hoc design needs start_date (YYYY-MM-DD, inclusive)"),
        (_with(end_date="2024-5-5"), "end_date '2024-5-5' is not a date in the form YYYY-MM-DD"),
        (_with(end_date="2024-04-01"), "end_date 2024-04-01 is before start_date 2024-04-08"),
        (
            _with(end_date="2024-05-20"),
            "the test period 2024-04-08..2024-05-20 is not in the data: "
            "marts.fct_orders_daily has days 2024-02-24..2024-05-06",
        ),
        (
            _with(pre_period_days=14),
            "pre_period_days is 14: at least 28 days (four full weeks) are needed",
        ),
        (
            _with(pre_period_days=56),
            "the 56-day pre-period starts 2024-02-12, before the first loaded day 2024-02-24 "
            "of marts.fct_orders_daily: load earlier days or set pre_period_days to at most 44",
        ),
        (
            _with(start_date="2024-03-10", pre_period_days=28),
            "load earlier days (only 15 are loaded before the test; at least 28 are needed)",
        ),
        (_with(platform=None), "an ad-hoc design needs platform: the one whose spend was"),
        (
            _with(platform="tiktok"),
            "platform 'tiktok' has no geo-level spend in marts.fct_marketing_geo_daily: "
            "use one of google_ads, meta",
        ),
    ],
)
def test_each_bad_request_names_its_problem(request_: GeoLiftRequest, expected: str) -> None:
    problems = _problems(request_)
    assert any(expected in p for p in problems), problems


def test_a_registered_test_period_missing_from_the_panel_is_named() -> None:
    short = replace(CATALOG, panel_days={EXPERIMENT: PanelDays(44, 27)})
    (problem,) = _problems(GeoLiftRequest(experiment_id=EXPERIMENT), short)
    assert problem == (
        f"the test period of {EXPERIMENT} (2024-04-08..2024-05-05, 28 days) is not in the "
        "data: marts.fct_experiment_geo_panel has 27 of its days "
        "(marts.fct_orders_daily has days 2024-02-24..2024-05-06)"
    )


def test_a_registered_experiment_with_too_few_pre_period_days_is_named() -> None:
    short = replace(CATALOG, panel_days={EXPERIMENT: PanelDays(10, 28)})
    (problem,) = _problems(GeoLiftRequest(experiment_id=EXPERIMENT), short)
    assert "has 10 pre-period days in marts.fct_experiment_geo_panel; at least 28" in problem


def test_a_registered_experiment_without_a_panel_names_both_gaps() -> None:
    empty = replace(CATALOG, panel_days={}, orders_span=None)
    problems = _problems(GeoLiftRequest(experiment_id=EXPERIMENT), empty)
    assert len(problems) == 2
    assert all("marts.fct_orders_daily is empty" in p for p in problems)


def test_every_problem_of_a_request_is_reported_at_once() -> None:
    problems = _problems(
        _with(treated_units=("US-XX",), end_date="2024-04-01", platform="tiktok", alpha=2.0)
    )
    assert [p.split(" ")[0] for p in problems] == ["unknown", "end_date", "platform", "alpha"]


# --- the ad-hoc panel -------------------------------------------------------------------------

DESIGN = GeoDesign(
    subject="meta:US-GA:2024-01-04..2024-01-05:pre3d",
    platform="meta",
    channel="paid_social",
    treated_units=("US-GA",),
    control_units=("US-CA", "US-TX"),
    start_date=date(2024, 1, 4),
    end_date=date(2024, 1, 5),
    pre_period_days=3,
)


def _orders() -> pd.DataFrame:
    days = pd.date_range("2023-12-31", "2024-01-06").date  # one day either side of the panel
    rows = [
        {"date_day": d, "geo_id": g, "orders": 2, "revenue": 100.0 + i}
        for i, d in enumerate(days)
        for g in ("US-CA", "US-TX", "US-GA", "DE-BY")
    ]
    frame = pd.DataFrame(rows)
    # A region-day without orders is not in the panel (the mart's inner join).
    return frame[~((frame["geo_id"] == "US-TX") & (frame["date_day"] == date(2024, 1, 2)))]


SPEND = pd.DataFrame(
    {
        "date_day": [date(2024, 1, 1), date(2024, 1, 4), date(2024, 1, 4)],
        "geo_id": ["US-GA", "US-GA", "US-CA"],
        "spend": [30.0, 0.0, 45.0],
    }
)


def test_the_adhoc_panel_has_the_registered_panels_columns_and_rows() -> None:
    panel = build_geo_panel(DESIGN, _orders(), SPEND)
    frame = panel.frame
    assert list(frame.columns) == list(PANEL_COLUMNS)
    assert panel.experiment_id == DESIGN.subject
    assert set(frame["experiment_id"]) == {DESIGN.subject}
    assert set(frame["geo_id"]) == {"US-CA", "US-TX", "US-GA"}
    assert frame["date_day"].min() == pd.Timestamp("2024-01-01")
    assert frame["date_day"].max() == pd.Timestamp("2024-01-05")
    assert len(frame) == 3 * 5 - 1
    assert frame[["geo_id", "date_day"]].equals(
        frame[["geo_id", "date_day"]].sort_values(["geo_id", "date_day"])
    )
    assert (frame["platform"] == "meta").all() and (frame["channel"] == "paid_social").all()


def test_the_adhoc_panel_flags_holdout_test_and_treated_rows() -> None:
    frame = build_geo_panel(DESIGN, _orders(), SPEND).frame
    assert panel_set(frame, "is_holdout_unit") == {"US-GA"}
    test_days = set(frame.loc[frame["is_test_period"], "date_day"].dt.date)
    assert test_days == {date(2024, 1, 4), date(2024, 1, 5)}
    treated = frame[frame["is_treated"]]
    assert set(treated["geo_id"]) == {"US-GA"} and len(treated) == 2
    assert frame["is_treated"].equals(frame["is_holdout_unit"] & frame["is_test_period"])


def panel_set(frame: pd.DataFrame, flag: str) -> set[str]:
    return set(frame.loc[frame[flag], "geo_id"])


def test_the_adhoc_panel_takes_the_platforms_spend_and_zero_elsewhere() -> None:
    frame = build_geo_panel(DESIGN, _orders(), SPEND).frame.set_index(["geo_id", "date_day"])
    spend = frame["platform_spend"]
    assert spend.loc[("US-GA", pd.Timestamp("2024-01-01"))] == 30.0
    assert spend.loc[("US-CA", pd.Timestamp("2024-01-04"))] == 45.0
    assert spend.sum() == 75.0
    assert spend.notna().all()


# --- writing the results ----------------------------------------------------------------------


def _row(subject: str, metric: str, effect: float) -> StudyRow:
    estimate = EffectEstimate(
        effect=effect, ci_lower=effect - 1, ci_upper=effect + 1, p_value=0.5, std_error=0.5,
        n_obs=100, method="synthetic_control",
    )  # fmt: skip
    return StudyRow(subject=subject, metric=metric, estimate=estimate)


def test_on_demand_model_names_are_never_the_scheduled_readouts() -> None:
    assert adhoc_model_name("difference_in_differences") == "adhoc_difference_in_differences"
    assert adhoc_model_name("synthetic_control") == "adhoc_synthetic_control"


def test_on_demand_rows_replace_their_own_metric_and_leave_the_readouts(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    scheduled = results_frame(
        [_row(EXPERIMENT, "revenue", 5.0)],
        run_id="scheduled",
        model_name="synthetic_control",
        model_version="1",
        params={},
    )
    write_results(warehouse, model_name="synthetic_control", results=scheduled)
    for metric, effect, run in [("revenue", 1.0, "a"), ("orders", 2.0, "b"), ("revenue", 3.0, "c")]:
        publish_geo_lift(
            warehouse,
            _row(EXPERIMENT, metric, effect),
            run_id=run,
            method="synthetic_control",
            params={"metric": metric},
        )
    rows = warehouse.query(
        "SELECT model_name, metric, effect, run_id FROM causal.lift_analysis_results "
        "ORDER BY model_name, metric"
    )
    assert list(rows.itertuples(index=False, name=None)) == [
        ("adhoc_synthetic_control", "orders", 2.0, "b"),
        ("adhoc_synthetic_control", "revenue", 3.0, "c"),  # the rerun replaced run "a"
        ("synthetic_control", "revenue", 5.0, "scheduled"),
    ]
    registry = warehouse.query("SELECT model_name FROM causal.causal_model_registry")
    assert list(registry["model_name"]) == ["adhoc_synthetic_control"] * 2
