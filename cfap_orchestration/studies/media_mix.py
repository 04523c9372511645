"""Media-mix inputs from the marts: the weekly model frame and lift tests from geo readouts.

The model runs on ISO weeks of `marts.fct_marketing_calendar_daily` (spend per paid channel,
net revenue). Geo holdouts read out by difference in differences become lift-test
measurements that calibrate the model: switching a channel off in holdout regions that held
a share `p` of its spend lost their revenue from it; divided by `p`, that is what the
national curve gives from business-as-usual spend `x` down to none (`delta_x = -x`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.studies.results import StudyRow
from cfap_orchestration.warehouse import Warehouse, sql_identifier

if TYPE_CHECKING:
    from cfap_orchestration.causal.mmm import MMMResult

# Paid channels and their spend columns in the calendar mart.
SPEND_COLUMNS = {"paid_social": "spend_paid_social", "paid_search": "spend_paid_search"}
LIFT_TEST_COLUMNS = ("experiment_id", "channel", "methods", "x", "delta_x", "delta_y", "sigma")
READOUT_MODELS = ("difference_in_differences", "synthetic_control")
TREND_CONTROL = "weeks_since_start"
HOLIDAY_CONTROL = "holiday_share"
SEASON_PREFIX = "season_"


def load_weekly(warehouse: Warehouse) -> pd.DataFrame:
    """One row per full ISO week: week_start, each channel's spend, net revenue, controls.

    Only weeks inside the span of the ad platforms' data count: Shopify's orders extract
    reaches back before it (orders placed earlier and updated since), and those days hold
    a fraction of their revenue and no spend. Controls (see `control_columns`): the weeks
    since the first, the share of the week's days that are public holidays, and for each
    peak season of the calendar the share of the week's days in it. Budgets rise in peak
    seasons just as demand does, so without these the model credits the ads with the
    season's own lift.
    """
    relation = warehouse.relation("marts", "fct_marketing_calendar_daily")
    marketing = warehouse.relation("marts", "fct_marketing_daily")
    seasons = warehouse.query(
        f"SELECT DISTINCT peak_season FROM {relation} WHERE peak_season IS NOT NULL ORDER BY 1"
    )["peak_season"].tolist()
    spend = ", ".join(f"sum({column}) AS {column}" for column in SPEND_COLUMNS.values())
    season_shares = "".join(
        f", avg(CASE WHEN peak_season = ? THEN 1.0 ELSE 0.0 END) AS {_season_column(name)}"
        for name in seasons
    )
    weekly = warehouse.query(
        f"SELECT iso_week_start AS week_start, {spend}, sum(revenue) AS revenue, "
        f"avg(CASE WHEN is_holiday THEN 1.0 ELSE 0.0 END) AS {HOLIDAY_CONTROL}{season_shares}, "
        f"count(*) AS days FROM {relation} WHERE date_day BETWEEN "
        f"(SELECT min(date_day) FROM {marketing}) AND (SELECT max(date_day) FROM {marketing}) "
        "GROUP BY 1 ORDER BY 1",
        seasons,
    )
    full = weekly[weekly["days"] == 7].drop(columns="days").reset_index(drop=True)
    if full.empty:
        raise ValueError("marts.fct_marketing_calendar_daily has no complete week to model")
    full["week_start"] = pd.to_datetime(full["week_start"])
    full.insert(1, TREND_CONTROL, (full["week_start"] - full["week_start"].iloc[0]).dt.days / 7)
    return full


def control_columns(weekly: pd.DataFrame) -> list[str]:
    """The controls of `load_weekly`'s frame that vary over its weeks (a season that never
    falls in the modelled weeks, or fills all of them, tells the model nothing)."""
    candidates = [TREND_CONTROL, HOLIDAY_CONTROL]
    candidates += [c for c in weekly.columns if c.startswith(SEASON_PREFIX)]
    return [c for c in candidates if weekly[c].nunique() > 1]


def _season_column(season: str) -> str:
    name = re.sub(r"[^0-9a-z]+", "_", season.lower()).strip("_")
    if not name:
        raise ValueError(f"peak season {season!r} has no usable name")
    return sql_identifier(f"{SEASON_PREFIX}{name}", "peak season column")  # an alias in SQL


def lift_tests_from_readouts(
    warehouse: Warehouse, weekly: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """Each geo test read out by DID and synthetic control as one weekly lift test of its
    channel (losses are negative), and a note for each test left out and why.

    A test read out by both methods enters once, with the mean of the two effects and the
    mean of their standard errors: the two estimators' errors are correlated (same regions,
    same days), and the mean of the standard errors bounds the standard error of the mean
    effect whatever that correlation. Averaging hedges each method's own assumption
    (parallel trends for DID, a convex fit of the pre-period for synthetic control).
    """
    results = warehouse.relation("causal", "lift_analysis_results")
    registry = warehouse.relation("staging", "stg_reference__experiment_registry")
    if not warehouse.table_exists("causal", "lift_analysis_results"):
        return pd.DataFrame(columns=list(LIFT_TEST_COLUMNS)), [
            "no geo readouts: causal.lift_analysis_results does not exist yet"
        ]
    readouts = warehouse.query(
        f"SELECT l.subject AS experiment_id, l.model_name, r.channel, r.start_date, "
        f"r.end_date, l.effect, l.std_error, l.diagnostics FROM {results} AS l "
        f"JOIN {registry} AS r ON r.experiment_id = l.subject "
        "WHERE l.model_name IN (?, ?) AND l.metric = 'revenue' ORDER BY 1, 2",
        list(READOUT_MODELS),
    )
    rows, notes = [], []
    for name, methods in readouts.groupby("experiment_id", sort=True):
        readout = methods.iloc[0]
        details = json.loads(readout["diagnostics"])
        effect = float(methods["effect"].mean())
        std_error = float(methods["std_error"].mean())
        in_test = weekly[
            (weekly["week_start"] >= pd.Timestamp(readout["start_date"]))
            & (weekly["week_start"] <= pd.Timestamp(readout["end_date"]))
        ]
        spend_column = SPEND_COLUMNS.get(str(readout["channel"]))
        if spend_column is None:
            notes.append(f"{name}: channel {readout['channel']!r} is not in the model")
            continue
        if in_test.empty:
            notes.append(f"{name}: its test weeks are outside the modelled weeks")
            continue
        if not effect > 0 or not np.isfinite(std_error) or std_error <= 0:
            # pymc-marketing's lift likelihood compares absolute lifts: no wrong sign.
            notes.append(f"{name}: the readout ({effect:.4g} ± {std_error:.3g}) is not a loss")
            continue
        regions = len(details["holdout_geos"])
        per_week = 7 * regions
        withheld = details["spend_withheld_per_region_day"] * per_week
        # Business as usual: the national weekly spend with the holdout's spend added back.
        usual = float(in_test[spend_column].mean()) + withheld
        share = withheld / usual
        rows.append(
            {
                "experiment_id": name,
                "channel": readout["channel"],
                "methods": "+".join(methods["model_name"]),
                # The holdout geos ran the whole curve from their spend to none. Response
                # scales with a geo's size, so scaled up by their share of the spend it is
                # the national curve from `usual` to nothing (see causal.mmm, lift tests).
                "x": usual,
                "delta_x": -usual,
                "delta_y": -effect * per_week / share,
                "sigma": std_error * per_week / share,
            }
        )
    return pd.DataFrame(rows, columns=list(LIFT_TEST_COLUMNS)), notes


def roas_rows(roas: pd.DataFrame, *, n_obs: int) -> list[StudyRow]:
    """One `roas` row per channel: posterior mean ROAS with its 94% HDI as the interval.

    `roas`: `MMMResult.channel_roas()` (channel, mean, hdi_low, hdi_high, spend, contribution).
    """
    rows = []
    for r in roas.to_dict("records"):
        channel = str(r["channel"])
        rows.append(
            StudyRow(
                subject=channel,
                metric="roas",
                estimate=EffectEstimate(
                    effect=float(r["mean"]),
                    ci_lower=float(r["hdi_low"]),
                    ci_upper=float(r["hdi_high"]),
                    p_value=float("nan"),  # a posterior, not a test
                    std_error=float("nan"),
                    n_obs=n_obs,
                    method="media_mix_model",
                    alpha=0.06,
                    details={"interval": "94% highest density interval of the posterior"},
                ),
                incremental_value=float(r["contribution"]),
                incremental_roas=float(r["mean"]),
            )
        )
    return rows


def contribution_rows(
    result: MMMResult, channel_names: Mapping[str, str], *, variant: str
) -> list[StudyRow]:
    """One `incremental_revenue` row per channel: the revenue it caused over the modelled
    periods, posterior mean with the 94% HDI of the total (channels named by
    `channel_names`, spend column -> business name)."""
    from cfap_orchestration.causal.mmm import hdi

    totals = result.contribution_draws().sum(axis=1)  # draws x channels
    low, high = hdi(totals)
    return [
        StudyRow(
            subject=channel_names[column],
            metric="incremental_revenue",
            estimate=EffectEstimate(
                effect=float(totals[:, j].mean()),
                ci_lower=float(low[j]),
                ci_upper=float(high[j]),
                p_value=float("nan"),
                std_error=float(totals[:, j].std()),
                n_obs=len(result.dates),
                method="media_mix_model",
                alpha=0.06,
                details={"interval": "94% HDI", "variant": variant},
            ),
            incremental_value=float(totals[:, j].mean()),
        )
        for j, column in enumerate(result.channels)
    ]
