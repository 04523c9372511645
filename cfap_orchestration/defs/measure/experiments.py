"""Experiment readouts: geo holdouts by DID and synthetic control, email/SMS holdouts by CUPED.

Each asset reads its panel mart, runs the estimator from `causal/`, writes its rows to
`causal.lift_analysis_results` and its fit to `causal.causal_model_registry`, and checks
the design the way a statistician would before anyone reads the number.
"""

from typing import Any, Literal

import dagster as dg
from pydantic import Field, field_validator

from cfap_orchestration.defs.measure.partitions import GEO_EXPERIMENTS
from cfap_orchestration.defs.measure.publish import publish_study
from cfap_orchestration.studies import plots
from cfap_orchestration.studies.email_holdouts import CHANNELS, cuped_holdout, load_email_panel
from cfap_orchestration.studies.geo_holdouts import (
    GeoPanel,
    did_geo_holdout,
    load_geo_panel,
    synthetic_control_geo_holdout,
)

GEO_PANEL = dg.AssetKey(["marts", "fct_experiment_geo_panel"])
EMAIL_PANEL = dg.AssetKey(["marts", "fct_experiment_email_panel"])
DID_KEY = dg.AssetKey(["causal", "difference_in_differences"])
SC_KEY = dg.AssetKey(["causal", "synthetic_control"])
CUPED_KEY = dg.AssetKey(["causal", "cuped"])
MODEL_VERSION = "1"

# Design minimums below which an estimate is not published as a readout.
MIN_CLUSTERS = 6  # cluster-robust errors with fewer regions are unreliable
MIN_PRE_DAYS = 28  # four full weeks, so weekday patterns are in the comparison
MIN_DONORS = 4
MIN_ARM_SIZE = 100
# Daily regional revenue is noisy, so no absolute pre-period miss is "good"; what matters
# is whether the holdout is fitted as well as a control region can be fitted from the
# others (Abadie, Diamond & Hainmueller's placebo comparison).
MAX_PRE_RMSPE_VS_PLACEBOS = 2.0
PRE_TREND_ALPHA = 0.05


class GeoExperimentConfig(dg.Config):
    """Parameters of a geo holdout readout (the experiment is the partition)."""

    metric: Literal["revenue", "orders"] = Field(
        default="revenue", description="Outcome: net revenue or orders per region and day."
    )
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="1 - confidence level of the intervals."
    )
    inference: Literal["randomization", "cluster"] = Field(
        default="randomization",
        description="DID inference: permute the held-out regions (exact under random "
        "assignment; right with few holdout regions) or cluster-robust CR1 by region.",
    )


class HoldoutConfig(dg.Config):
    channels: list[str] = Field(
        default=list(CHANNELS), min_length=1, description="Messaging channels: email, sms."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_arm_size: int = Field(
        default=MIN_ARM_SIZE, ge=2, description="A smaller arm in any channel blocks the asset."
    )

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: list[str]) -> list[str]:
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; holdouts exist for {list(CHANNELS)}")
        return channels


def _geo_params(panel: GeoPanel, config: GeoExperimentConfig, method: str) -> dict:
    return {
        "experiment_id": panel.experiment_id,
        "metric": config.metric,
        "alpha": config.alpha,
        "method": method,
        "panel": "marts.fct_experiment_geo_panel",
    }


# What every geo readout asset shares: one partition per experiment, over the geo panel.
GEO_READOUT: dict[str, Any] = {
    "group_name": "measure",
    "partitions_def": GEO_EXPERIMENTS,
    "deps": [GEO_PANEL],
    "kinds": {"python"},
    "required_resource_keys": {"warehouse"},
    "code_version": MODEL_VERSION,
}


@dg.asset(
    key=DID_KEY,
    **GEO_READOUT,
    check_specs=[
        dg.AssetCheckSpec(
            "parallel_pre_trends",
            asset=DID_KEY,
            description="Holdout and control regions moved together before the test: "
            "no linear differential pre-trend (a 1-df test, randomization p-value with "
            "randomization inference; the joint test of the event-study leads over-rejects "
            "with few regions and is shown as a diagnostic only).",
        ),
        dg.AssetCheckSpec(
            "design_size",
            asset=DID_KEY,
            blocking=True,
            description=f"At least {MIN_CLUSTERS} regions and {MIN_PRE_DAYS} pre-period days.",
        ),
    ],
    description=(
        "What the experiment's channel caused in revenue per holdout region and day, by "
        "difference in differences (region and day fixed effects on each region's outcome "
        "over its pre-period level; randomization inference over which regions were held "
        "out), with the incremental revenue and incremental ROAS over the test. One "
        "partition per registered geo holdout."
    ),
)
def difference_in_differences(
    context: dg.AssetExecutionContext, config: GeoExperimentConfig
) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    panel = load_geo_panel(warehouse, context.partition_key)
    row = did_geo_holdout(
        panel, metric=config.metric, alpha=config.alpha, inference=config.inference
    )
    details = row.estimate.details
    pre_trend_p = details.get("pre_trend_p_value")
    event_png = plots.event_study_png(
        details["event_study"], title=f"{panel.experiment_id}: event study ({config.metric})"
    )
    metadata = publish_study(
        context,
        warehouse,
        model_name="difference_in_differences",
        model_version=MODEL_VERSION,
        rows=[row],
        params={
            **_geo_params(panel, config, "twfe_scaled_by_pre_mean"),
            "inference": config.inference,
        },
        diagnostics={k: v for k, v in details.items() if k != "event_study"},
        plots={"event_study": event_png},
    )
    pre_days = int(panel.frame.loc[~panel.frame["is_test_period"], "date_day"].nunique())
    regions = int(panel.frame["geo_id"].nunique())
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="parallel_pre_trends",
                passed=bool(pre_trend_p is not None and pre_trend_p >= PRE_TREND_ALPHA),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"pre_trend_p_value": pre_trend_p, "experiment_id": panel.experiment_id},
            ),
            dg.AssetCheckResult(
                check_name="design_size",
                passed=regions >= MIN_CLUSTERS and pre_days >= MIN_PRE_DAYS,
                metadata={
                    "regions": regions,
                    "pre_days": pre_days,
                    "experiment_id": panel.experiment_id,
                },
            ),
        ],
    )


@dg.asset(
    key=SC_KEY,
    **GEO_READOUT,
    check_specs=[
        dg.AssetCheckSpec(
            "pre_period_fit",
            asset=SC_KEY,
            description="The synthetic holdout tracked the real one before the test: "
            f"pre-period RMSPE at most {MAX_PRE_RMSPE_VS_PLACEBOS:g}x the median of the "
            "in-space placebos' (each control region fitted from the others).",
        ),
        dg.AssetCheckSpec(
            "design_size",
            asset=SC_KEY,
            blocking=True,
            description=f"At least {MIN_DONORS} control regions and "
            f"{MIN_PRE_DAYS} pre-period days.",
        ),
    ],
    description=(
        "The same geo holdout read out by synthetic control: the holdout regions' average, "
        "each region indexed to its own pre-period level, against a weighted blend of control "
        "regions fitted on the pre-period path. Conformal interval, in-space placebo p-value."
    ),
)
def synthetic_control(
    context: dg.AssetExecutionContext, config: GeoExperimentConfig
) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    panel = load_geo_panel(warehouse, context.partition_key)
    row = synthetic_control_geo_holdout(panel, metric=config.metric, alpha=config.alpha)
    details = row.estimate.details
    gap_png = plots.synthetic_control_png(
        details["gap"], title=f"{panel.experiment_id}: holdout vs synthetic ({config.metric})"
    )
    metadata = publish_study(
        context,
        warehouse,
        model_name="synthetic_control",
        model_version=MODEL_VERSION,
        rows=[row],
        params=_geo_params(panel, config, "indexed_mean_of_holdout_regions"),
        diagnostics={k: v for k, v in details.items() if k not in ("gap", "placebos")},
        plots={"treated_vs_synthetic": gap_png},
    )
    weights = details["weights"]
    pre_days = int(panel.frame.loc[~panel.frame["is_test_period"], "date_day"].nunique())
    placebo_rmspe = float(details["placebos"]["pre_rmspe"].median())
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="pre_period_fit",
                passed=bool(details["pre_rmspe"] <= MAX_PRE_RMSPE_VS_PLACEBOS * placebo_rmspe),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "pre_rmspe": float(details["pre_rmspe"]),
                    "placebo_median_pre_rmspe": placebo_rmspe,
                    "experiment_id": panel.experiment_id,
                },
            ),
            dg.AssetCheckResult(
                check_name="design_size",
                passed=len(weights) >= MIN_DONORS and pre_days >= MIN_PRE_DAYS,
                metadata={
                    "donors": len(weights),
                    "pre_days": pre_days,
                    "experiment_id": panel.experiment_id,
                },
            ),
        ],
    )


@dg.asset(
    key=CUPED_KEY,
    group_name="measure",
    deps=[EMAIL_PANEL],
    kinds={"python"},
    required_resource_keys={"warehouse"},
    code_version=MODEL_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "arm_sizes",
            asset=CUPED_KEY,
            blocking=True,
            description=f"Each channel has at least {MIN_ARM_SIZE} recipients in each arm.",
        ),
    ],
    description=(
        "Revenue per recipient that email and SMS campaigns caused, from their randomized "
        "holdouts, by CUPED (pre-send revenue as the covariate), pooled per channel."
    ),
)
def cuped(context: dg.AssetExecutionContext, config: HoldoutConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    panel = load_email_panel(warehouse, config.channels)
    rows = [cuped_holdout(panel, channel=c, alpha=config.alpha) for c in config.channels]
    smallest = min(
        min(r.estimate.details["n_treatment"], r.estimate.details["n_control"]) for r in rows
    )
    metadata = publish_study(
        context,
        warehouse,
        model_name="cuped",
        model_version=MODEL_VERSION,
        rows=rows,
        params={
            "channels": config.channels,
            "alpha": config.alpha,
            "covariate": "pre_revenue",
            "panel": "marts.fct_experiment_email_panel",
        },
        diagnostics={r.subject: r.estimate.details for r in rows},
    )
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="arm_sizes",
                passed=smallest >= config.min_arm_size,
                metadata={"smallest_arm": int(smallest)},
            )
        ],
    )
