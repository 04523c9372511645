"""Geo holdout experiments: the channel's effect where its ads were switched off.

The panel (`marts.fct_experiment_geo_panel`) has one row per region and day from the
pre-period through the test; the holdout regions had the platform's ads off during the
test. An estimator measures holdout minus control, which is the *loss* from switching the
ads off; the study reports the ads' effect, the opposite sign: the revenue per holdout
region and day the channel caused. Incremental ROAS divides it by the spend the holdout
regions did without (the same design applied to the platform's spend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from cfap_orchestration.causal.did import difference_in_differences
from cfap_orchestration.causal.estimate import EffectEstimate
from cfap_orchestration.causal.synthetic_control import synthetic_control
from cfap_orchestration.studies.results import StudyRow
from cfap_orchestration.warehouse import Warehouse

PANEL_COLUMNS = (
    "experiment_id", "geo_id", "date_day", "platform", "channel", "is_holdout_unit",
    "is_test_period", "is_treated", "orders", "revenue", "platform_spend",
)  # fmt: skip
GeoMetric = Literal["revenue", "orders"]
GeoInference = Literal["randomization", "cluster"]
HOLDOUT_UNIT = "holdout_regions"


@dataclass(frozen=True)
class GeoPanel:
    experiment_id: str
    frame: pd.DataFrame

    @property
    def holdout_geos(self) -> list[str]:
        return sorted(self.frame.loc[self.frame["is_holdout_unit"], "geo_id"].unique())

    @property
    def test_days(self) -> int:
        return int(self.frame.loc[self.frame["is_test_period"], "date_day"].nunique())

    @property
    def test_start(self) -> pd.Timestamp:
        return pd.Timestamp(self.frame.loc[self.frame["is_test_period"], "date_day"].min())


def load_geo_panel(warehouse: Warehouse, experiment_id: str) -> GeoPanel:
    """The experiment's panel; an unknown experiment id is an error, not an empty result."""
    relation = warehouse.relation("marts", "fct_experiment_geo_panel")
    frame = warehouse.query(
        f"SELECT {', '.join(PANEL_COLUMNS)} FROM {relation} WHERE experiment_id = ? "
        "ORDER BY geo_id, date_day",
        [experiment_id],
    )
    if frame.empty:
        raise ValueError(
            f"experiment {experiment_id!r} has no rows in marts.fct_experiment_geo_panel: "
            "is it in the experiment registry, and has its test period been loaded?"
        )
    frame["date_day"] = pd.to_datetime(frame["date_day"])
    for column in ("is_holdout_unit", "is_test_period", "is_treated"):
        frame[column] = frame[column].astype(bool)
    return GeoPanel(experiment_id, frame)


def ads_effect(holdout_estimate: EffectEstimate) -> EffectEstimate:
    """Holdout-minus-control turned into the ads' effect (sign and interval flipped)."""
    relative = holdout_estimate.effect_relative
    return replace(
        holdout_estimate,
        effect=-holdout_estimate.effect,
        ci_lower=-holdout_estimate.ci_upper,
        ci_upper=-holdout_estimate.ci_lower,
        # Lost share of the holdout's counterfactual becomes the ads' share of it.
        effect_relative=None if relative is None else -relative,
    )


def did_geo_holdout(
    panel: GeoPanel, *, metric: GeoMetric, alpha: float, inference: GeoInference
) -> StudyRow:
    """DID with region and day fixed effects on each region's outcome over its pre-period mean.

    Regions differ several-fold in size and share one multiplicative season, so in levels
    the seasonal change between pre and test windows times the size gap between holdout and
    control regions reads as an effect; scaling each region by its pre-period mean removes
    that (the effect is converted back to outcome units). With three holdout regions
    cluster-robust errors under-cover, so the default inference permutes which regions were
    held out (exact under the random assignment of the test).
    """
    frame = panel.frame.assign(
        treated=panel.frame["is_holdout_unit"].astype(int),
        post=panel.frame["is_test_period"].astype(int),
    )
    estimate = difference_in_differences(
        frame,
        outcome=metric,
        unit="geo_id",
        time="date_day",
        treated="treated",
        post="post",
        cluster="geo_id",
        alpha=alpha,
        inference="randomization" if inference == "randomization" else "analytic",
        scale_by_pre_mean=True,
    )
    return _study_row(panel, metric, ads_effect(estimate), withheld_spend=_spend_withheld(panel))


def synthetic_control_geo_holdout(panel: GeoPanel, *, metric: GeoMetric, alpha: float) -> StudyRow:
    """Synthetic control of the holdout regions' average, each region indexed to its pre-period.

    Regions differ in size, so each series is divided by its own pre-period mean (1.0 = its
    usual level) and the holdout regions are averaged into one treated unit: synthetic
    control then weighs control regions by how well they track the holdout's path, not its
    size. The effect is scaled back to revenue per holdout region-day with the holdout
    regions' pre-period mean.
    """
    indexed, scale = _indexed_panel(panel.frame, metric)
    raw = synthetic_control(
        indexed,
        outcome="index",
        unit="unit",
        time="date_day",
        treated_unit=HOLDOUT_UNIT,
        treatment_start=panel.test_start,
        alpha=alpha,
    )
    scaled = replace(
        raw,
        effect=raw.effect * scale,
        ci_lower=raw.ci_lower * scale,
        ci_upper=raw.ci_upper * scale,
        std_error=raw.std_error * scale,
        details={**raw.details, "index_scale": scale},
    )
    return _study_row(panel, metric, ads_effect(scaled), withheld_spend=_spend_withheld(panel))


def _indexed_panel(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, float]:
    pre = frame[~frame["is_test_period"]]
    pre_means = pre.groupby("geo_id")[metric].mean()
    if (pre_means <= 0).any():
        empty = pre_means[pre_means <= 0].index.tolist()
        raise ValueError(f"regions {empty} have no pre-period {metric}: they cannot be indexed")
    indexed = frame.assign(index=frame[metric] / frame["geo_id"].map(pre_means))
    holdout = (
        indexed[indexed["is_holdout_unit"]]
        .groupby("date_day", as_index=False)["index"]
        .mean()
        .assign(unit=HOLDOUT_UNIT)
    )
    controls = indexed.loc[~indexed["is_holdout_unit"], ["date_day", "index", "geo_id"]].rename(
        columns={"geo_id": "unit"}
    )
    holdout_geos = frame.loc[frame["is_holdout_unit"], "geo_id"].unique()
    scale = float(pre_means[holdout_geos].mean())
    return pd.concat([holdout, controls], ignore_index=True), scale


def _spend_withheld(panel: GeoPanel) -> float:
    """Spend per holdout region-day that the test withheld: DID of the platform's spend."""
    frame = panel.frame
    means = frame.groupby(["is_holdout_unit", "is_test_period"])["platform_spend"].mean()
    did = (means[True, True] - means[True, False]) - (means[False, True] - means[False, False])
    return float(-did)


def _study_row(
    panel: GeoPanel, metric: str, effect: EffectEstimate, *, withheld_spend: float
) -> StudyRow:
    region_days = len(panel.holdout_geos) * panel.test_days
    incremental_value = effect.effect * region_days if metric == "revenue" else None
    roas = effect.effect / withheld_spend if metric == "revenue" and withheld_spend > 0 else None
    details = {
        **effect.details,
        "holdout_geos": panel.holdout_geos,
        "test_days": panel.test_days,
        "spend_withheld_per_region_day": withheld_spend,
        "effect_sign": "ads effect (control minus holdout)",
    }
    return StudyRow(
        subject=panel.experiment_id,
        metric=metric,
        estimate=replace(effect, details=details),
        incremental_value=incremental_value,
        incremental_roas=roas,
    )


def experiment_ids(registry: pd.DataFrame, *, through: pd.Timestamp) -> Sequence[str]:
    """Geo holdouts whose test has ended by `through` (the last loaded day)."""
    done = registry[
        (registry["experiment_type"] == "geo_holdout")
        & (pd.to_datetime(registry["end_date"]) <= through)
    ]
    return list(np.sort(done["experiment_id"].to_numpy()))
