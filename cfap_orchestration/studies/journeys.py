"""Attribution over visitor journeys: Shapley and Markov credit per channel, with intervals.

Reads `marts.fct_conversion_paths` over a window of days (journeys by the day they ended),
collapses it to distinct paths, and credits each channel with conversions by the method.
Bootstrap intervals (journeys resampled) give the uncertainty from finite data; they say
nothing about attribution's own assumptions, which is why the sandbox scores its shares
against the causal truth separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Literal

import pandas as pd

from cfap_orchestration.causal.attribution import (
    attribution_intervals,
    heuristic_attribution,
    markov_attribution,
    paths_from_journeys,
    shapley_attribution,
)
from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.studies.results import StudyRow
from cfap_orchestration.warehouse import Warehouse

Method = Literal["shapley", "markov"]
MODEL_NAMES: dict[Method, str] = {
    "shapley": "shapley_attribution",
    "markov": "markov_attribution",
}


@dataclass(frozen=True)
class JourneyWindow:
    start: date
    end: date
    journeys: int
    paths: pd.DataFrame  # path, conversions, non_conversions, value


def load_paths(warehouse: Warehouse, *, lookback_days: int) -> JourneyWindow:
    """Distinct paths of the journeys that ended in the last `lookback_days` loaded days."""
    relation = warehouse.relation("marts", "fct_conversion_paths")
    last = warehouse.query(f"SELECT max(date_day) AS d FROM {relation}").iloc[0]["d"]
    if pd.isna(last):
        raise ValueError("marts.fct_conversion_paths is empty: no journeys to attribute")
    end = pd.Timestamp(last).date()
    start = (pd.Timestamp(end) - pd.Timedelta(days=lookback_days - 1)).date()
    journeys = warehouse.query(
        f"SELECT path, conversions, conversion_value FROM {relation} "
        "WHERE date_day BETWEEN ? AND ?",
        [start, end],
    )
    paths = paths_from_journeys(
        journeys, path_col="path", converted_col="conversions", value_col="conversion_value"
    )
    return JourneyWindow(start, end, len(journeys), paths)


def attribution_rows(
    window: JourneyWindow, *, method: Method, n_boot: int, alpha: float, seed: int
) -> list[StudyRow]:
    """One row per channel: conversions credited, with a bootstrap interval."""
    estimator = shapley_attribution if method == "shapley" else markov_attribution
    extra = {"null_col": "non_conversions"} if method == "markov" else {}
    credited = estimator(window.paths, value_col="value", **extra)
    intervals = attribution_intervals(
        window.paths,
        method=method,
        null_col="non_conversions",
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
    )
    merged = credited.merge(intervals.drop(columns="conversions"), on="channel")
    total = float(credited["conversions"].sum())
    return [
        StudyRow(
            subject=str(r["channel"]),
            metric="conversions",
            estimate=EffectEstimate(
                effect=float(r["conversions"]),
                ci_lower=float(r["ci_lower"]),
                ci_upper=float(r["ci_upper"]),
                p_value=math.nan,  # credit is a division of conversions, not a test
                std_error=float(r["std_error"]),
                n_obs=window.journeys,
                method=MODEL_NAMES[method],
                alpha=alpha,
                effect_relative=float(r["conversions"]) / total,
                details={
                    "attributed_value": float(r["value"]),
                    "share": float(r["conversions"]) / total,
                    "interval": f"percentile bootstrap over journeys, {n_boot} draws",
                },
            ),
        )
        for r in merged.to_dict("records")
    ]


def credits_by_method(window: JourneyWindow) -> pd.DataFrame:
    """Conversions per channel under each method: first/last touch, linear, Shapley, Markov."""
    heuristic = heuristic_attribution(window.paths)
    shapley = shapley_attribution(window.paths).rename(columns={"conversions": "shapley"})
    markov = markov_attribution(window.paths, null_col="non_conversions").rename(
        columns={"conversions": "markov"}
    )
    return heuristic.merge(shapley, on="channel").merge(markov, on="channel")
