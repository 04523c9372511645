"""Planning the next geo holdouts: can each registered, not-yet-run test detect its effect?

For every registered geo holdout that starts after the last loaded day, the test is
replayed on the regions' revenue history (`causal.power_analysis`): its minimum detectable
lift, and its power at the lift the channel's latest completed readout measured. History
includes earlier tests' holdout windows; their lost revenue widens the placebo
distribution a little, which makes the MDE conservative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from cfap_orchestration.causal.power import power_analysis
from cfap_orchestration.warehouse import Warehouse

PLAN_COLUMNS = (
    "experiment_id",
    "platform",
    "channel",
    "start_date",
    "test_days",
    "holdout_units",
    "mde_relative",
    "mde_revenue_per_region_day",
    "expected_lift",
    "expected_from",
    "power_at_expected",
    "false_positive_rate",
    "n_simulations",
    "note",
)


@dataclass(frozen=True)
class PlanningInputs:
    history: pd.DataFrame  # geo_id, date_day, revenue (US regions)
    planned: pd.DataFrame  # registry rows of geo holdouts starting after the history
    readouts: pd.DataFrame  # latest DID readout per channel: channel, subject, lift


def load_planning_inputs(warehouse: Warehouse) -> PlanningInputs:
    orders = warehouse.relation("marts", "fct_orders_daily")
    regions = warehouse.relation("staging", "stg_reference__geo_regions")
    registry = warehouse.relation("staging", "stg_reference__experiment_registry")
    history = warehouse.query(
        f"SELECT o.geo_id, o.date_day, o.net_revenue AS revenue FROM {orders} AS o "
        f"JOIN {regions} AS g ON g.geo_id = o.geo_id WHERE g.market = ? ORDER BY 1, 2",
        ["US"],
    )
    if history.empty:
        raise ValueError("marts.fct_orders_daily has no US regions: no history to plan on")
    last_day = pd.Timestamp(history["date_day"].max()).date()
    planned = warehouse.query(
        f"SELECT * FROM {registry} WHERE experiment_type = ? AND start_date > ? "
        "ORDER BY start_date",
        ["geo_holdout", last_day],
    )
    return PlanningInputs(history, planned, _latest_readouts(warehouse, registry))


def _latest_readouts(warehouse: Warehouse, registry: str) -> pd.DataFrame:
    if not warehouse.table_exists("causal", "lift_analysis_results"):
        return pd.DataFrame(columns=["channel", "subject", "lift"])  # nothing read out yet
    results = warehouse.relation("causal", "lift_analysis_results")
    frame = warehouse.query(
        f"SELECT r.channel, l.subject, l.effect_relative FROM {results} AS l "
        f"JOIN {registry} AS r ON r.experiment_id = l.subject "
        "WHERE l.model_name = ? ORDER BY r.start_date",
        ["difference_in_differences"],
    )
    # The holdout loses the share of revenue the ads were causing.
    frame["lift"] = -frame["effect_relative"]
    return frame.groupby("channel", as_index=False).last()[["channel", "subject", "lift"]]


def plan_experiment_power(
    inputs: PlanningInputs, *, alpha: float, power: float, seed: int
) -> pd.DataFrame:
    """One row per planned test: its MDE and its power at the last measured lift."""
    rows = []
    for test in inputs.planned.to_dict("records"):
        units = str(test["holdout_units"]).split("|")
        test_days = (_as_date(test["end_date"]) - _as_date(test["start_date"])).days + 1
        expected = inputs.readouts.loc[inputs.readouts["channel"] == test["channel"]]
        lift = float(expected["lift"].iloc[0]) if len(expected) else None
        row = {
            "experiment_id": test["experiment_id"],
            "platform": test["platform"],
            "channel": test["channel"],
            "start_date": _as_date(test["start_date"]).isoformat(),
            "test_days": test_days,
            "holdout_units": ", ".join(units),
            "expected_lift": lift,
            "expected_from": expected["subject"].iloc[0] if len(expected) else None,
        }
        try:
            result = power_analysis(
                inputs.history,
                outcome="revenue",
                unit="geo_id",
                time="date_day",
                test_days=test_days,
                treated_units=units,
                effect=lift,
                power=power,
                alpha=alpha,
                seed=seed,
            )
        except ValueError as problem:  # e.g. history shorter than pre-period + test
            rows.append({**row, "note": f"not assessed: {problem}"})
            continue
        rows.append(
            {
                **row,
                "mde_relative": result.mde_relative,
                "mde_revenue_per_region_day": result.mde_absolute,
                "power_at_expected": result.power_at_effect,
                "false_positive_rate": result.false_positive_rate,
                "n_simulations": result.n_simulations,
                "note": None,
            }
        )
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))


def _as_date(value: object) -> date:
    return pd.Timestamp(str(value)).date()
