"""Email and SMS holdouts: revenue per recipient that sending caused, by CUPED.

Every Klaviyo campaign keeps a randomized 10% of its audience unsent. The panel
(`marts.fct_experiment_email_panel`) has one row per campaign and audience member with
the revenue in the days after the send and in the 28 days before it. Randomization is
within campaign at the same share, so pooling a channel's campaigns gives an unbiased
program-level effect; pre-send revenue is the CUPED covariate that removes the part of
the outcome's variance that is just who the customer is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from cfap_orchestration.causal.cuped import cuped
from cfap_orchestration.studies.results import StudyRow
from cfap_orchestration.warehouse import Warehouse

CHANNELS = ("email", "sms")


def load_email_panel(warehouse: Warehouse, channels: Sequence[str]) -> pd.DataFrame:
    relation = warehouse.relation("marts", "fct_experiment_email_panel")
    placeholders = ", ".join("?" for _ in channels)
    frame = warehouse.query(
        f"SELECT campaign_id, profile_id, channel, send_date, is_treated, orders, revenue, "
        f"pre_orders, pre_revenue FROM {relation} WHERE channel IN ({placeholders})",
        list(channels),
    )
    if frame.empty:
        raise ValueError(
            f"marts.fct_experiment_email_panel has no holdout campaigns for {list(channels)}"
        )
    frame["is_treated"] = frame["is_treated"].astype(bool)
    return frame


def cuped_holdout(panel: pd.DataFrame, *, channel: str, alpha: float) -> StudyRow:
    """CUPED over every holdout campaign of one channel, pooled."""
    rows = panel[panel["channel"] == channel]
    rows = rows.assign(treatment=rows["is_treated"].astype(int))
    if rows.empty:
        raise ValueError(f"no {channel} holdout campaigns in the email panel")
    estimate = cuped(
        rows, outcome="revenue", covariate="pre_revenue", treatment="treatment", alpha=alpha
    )
    recipients = int(rows["treatment"].sum())
    details = {
        **estimate.details,
        "campaigns": int(rows["campaign_id"].nunique()),
        "recipients": recipients,
        "holdout": int(len(rows) - recipients),
        "first_send": pd.Timestamp(rows["send_date"].min()).date().isoformat(),
        "last_send": pd.Timestamp(rows["send_date"].max()).date().isoformat(),
    }
    return StudyRow(
        subject=channel,
        metric="revenue_per_recipient",
        estimate=replace(estimate, details=details),
        incremental_value=estimate.effect * recipients,
        incremental_roas=None,  # sends have no media cost in the marts
    )
