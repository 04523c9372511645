"""Estimates scored against the sandbox's causal truth (the simulated brand knows it).

For each result row whose subject the sandbox has a truth for, the true value in the same
units: geo holdouts' revenue per holdout region-day the ads caused (net of refunds and
cancellations, as the marts measure revenue), email/SMS revenue per recipient, the causal
share of conversions per channel for attribution, and the calendar effects of expected revenue.
Attribution divides observed conversions among channels; it is not an experiment, so
its truth is the channel's *causal* share and a gap there is attribution's bias, not noise.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from cfap_orchestration.causal.temporal import temporal_effects
from cfap_orchestration.sandbox.world import NET_REVENUE_SHARE, SandboxWorld

COMPARISON_COLUMNS = (
    "model_name",
    "subject",
    "metric",
    "unit",
    "estimate",
    "ci_lower",
    "ci_upper",
    "true_value",
    "error",
    "covered",
    "truth",
)
GEO_MODELS = ("difference_in_differences", "synthetic_control")
ATTRIBUTION_MODELS = ("shapley_attribution", "markov_attribution")


def geo_truth(world: SandboxWorld, start: date, end: date) -> pd.DataFrame:
    truth = world.geo_experiment_truth(start, end)
    if truth.empty:
        return pd.DataFrame(columns=["subject", "metric", "true_value"])
    return pd.DataFrame(
        {
            "subject": truth["experiment_id"],
            "metric": "revenue",
            "true_value": truth["true_effect_per_geo_day"] * NET_REVENUE_SHARE,
        }
    )


def holdout_truth(world: SandboxWorld, sends: pd.DataFrame) -> pd.DataFrame:
    """Revenue per recipient the sends caused, weighted by recipients, per channel.

    `sends`: channel, first_send, last_send (the campaigns a CUPED row pooled).
    """
    rows = []
    for send in sends.to_dict("records"):
        truth = world.email_holdout_truth(send["first_send"], send["last_send"])
        truth = truth[truth["channel"] == send["channel"]]
        if truth.empty:
            continue
        value = float(np.average(truth["true_revenue_per_recipient"], weights=truth["n_treated"]))
        rows.append((send["channel"], "revenue_per_recipient", value))
    return pd.DataFrame(rows, columns=["subject", "metric", "true_value"])


def attribution_truth(world: SandboxWorld, start: date, end: date) -> pd.DataFrame:
    """Each channel's causal share of the journeys' incremental conversions."""
    truth = world.journey_truth(start, end)
    shapley = truth["shapley_conversions"] / truth["shapley_conversions"].sum()
    removal = truth["removal_conversions"] / truth["removal_conversions"].sum()
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "model_name": "shapley_attribution",
                    "subject": truth["channel"],
                    "true_value": shapley,
                }
            ),
            pd.DataFrame(
                {
                    "model_name": "markov_attribution",
                    "subject": truth["channel"],
                    "true_value": removal,
                }
            ),
        ],
        ignore_index=True,
    )


def roas_truth(world: SandboxWorld, start: date, end: date) -> pd.DataFrame:
    """Each paid channel's true ROAS over the range: net revenue it caused per unit spend."""
    daily = world.channel_daily(start, end)
    paid = daily[daily["spend_usd"] > 0].groupby("channel")[["incremental_revenue", "spend_usd"]]
    totals = paid.sum()
    roas = totals["incremental_revenue"] * NET_REVENUE_SHARE / totals["spend_usd"]
    return pd.DataFrame({"subject": roas.index, "metric": "roas", "true_value": roas.to_numpy()})


def calendar_truth(
    world: SandboxWorld, calendar: pd.DataFrame, ar_coefficients: list[float]
) -> pd.DataFrame:
    """The calendar effects of the brand's *expected* net revenue, same regression design.

    Noise-free revenue (baseline demand, media and messaging effects, as the world draws
    orders from them) on the same calendar columns, fitted by GLS at the AR coefficients the
    estimate converged to: the population value of each coefficient the estimator reports
    (the regression's dummies approximate the world's day-specific holiday effects, so the
    truth is that approximation's value, not a single multiplier of the world).
    """
    days = pd.to_datetime(calendar["date_day"])
    expected = world.channel_daily(days.min().date(), days.max().date())
    daily = expected.groupby("date")["incremental_revenue"].sum() * NET_REVENUE_SHARE
    noise_free = calendar.assign(revenue=days.dt.date.map(daily).to_numpy(dtype=float))
    effects = temporal_effects(
        noise_free, outcome="revenue", date="date_day", ar_coefficients=ar_coefficients
    ).effects
    return pd.DataFrame(
        {"subject": effects["component"] + ":" + effects["level"], "true_value": effects["effect"]}
    )


def score(
    estimates: pd.DataFrame, truth: pd.DataFrame, *, unit: str, truth_label: str
) -> pd.DataFrame:
    """Join estimates (model_name, subject, metric, estimate, ci_lower, ci_upper) to truth."""
    keys = [k for k in ("model_name", "subject", "metric") if k in truth.columns]
    scored = estimates.merge(truth, on=keys, how="inner")
    scored["unit"] = unit
    scored["error"] = scored["estimate"] - scored["true_value"]
    scored["covered"] = (scored["ci_lower"] <= scored["true_value"]) & (
        scored["true_value"] <= scored["ci_upper"]
    )
    scored["truth"] = truth_label
    return scored[list(COMPARISON_COLUMNS)]


def _estimates(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.rename(columns={"effect": "estimate"})[
        ["model_name", "subject", "metric", "estimate", "ci_lower", "ci_upper"]
    ]


def _as_shares(rows: pd.DataFrame) -> pd.DataFrame:
    """Attributed conversions as each channel's share of the model's total."""
    total = rows.groupby("model_name")["effect"].transform("sum")
    shares = rows.assign(
        effect=rows["effect"] / total,
        ci_lower=rows["ci_lower"] / total,
        ci_upper=rows["ci_upper"] / total,
    )
    return _estimates(shares)


def _ar_coefficients(rows: pd.DataFrame) -> list[float]:
    """The AR error coefficients of the calendar fit (the same for each of its rows)."""
    coefficients: list[float] = json.loads(rows["diagnostics"].iloc[0])["ar_coefficients"]
    return coefficients


def _relative_estimates(rows: pd.DataFrame) -> pd.DataFrame:
    """Relative effects with their intervals (kept in the diagnostics as `ci_relative`)."""
    bounds = [json.loads(d)["ci_relative"] for d in rows["diagnostics"]]
    relative = rows.assign(
        effect=rows["effect_relative"],
        ci_lower=[b[0] for b in bounds],
        ci_upper=[b[1] for b in bounds],
    )
    return _estimates(relative)


def _date_range(rows: pd.DataFrame) -> tuple[date, date]:
    params = [json.loads(p) for p in rows["params"]]
    return (
        min(date.fromisoformat(p["start_date"]) for p in params),
        max(date.fromisoformat(p["end_date"]) for p in params),
    )


def estimates_vs_truth(
    results: pd.DataFrame,
    world: SandboxWorld,
    *,
    start: date,
    end: date,
    calendar: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every result row the sandbox has a truth for, beside that truth.

    `results`: rows of `causal.lift_analysis_results`; `start`..`end`: the loaded history;
    `calendar`: the calendar columns the temporal effects were estimated on.
    """
    frames = []
    geo = results[results["model_name"].isin(GEO_MODELS)]
    if not geo.empty:
        truth = geo_truth(world, start, end)
        frames.append(
            score(
                _estimates(geo),
                truth,
                unit="revenue per holdout region-day",
                truth_label="revenue the ads caused in the holdout regions, net",
            )
        )
    holdouts = results[results["model_name"] == "cuped"]
    if not holdouts.empty:
        details = [json.loads(d) for d in holdouts["diagnostics"]]
        sends = pd.DataFrame(
            {
                "channel": holdouts["subject"].to_numpy(),
                "first_send": [date.fromisoformat(d["first_send"]) for d in details],
                "last_send": [date.fromisoformat(d["last_send"]) for d in details],
            }
        )
        frames.append(
            score(
                _estimates(holdouts),
                holdout_truth(world, sends),
                unit="revenue per recipient",
                truth_label="uplift x order value, per send",
            )
        )
    attribution = results[results["model_name"].isin(ATTRIBUTION_MODELS)]
    if not attribution.empty:
        first, last = _date_range(attribution)
        frames.append(
            score(
                _as_shares(attribution),
                attribution_truth(world, first, last),
                unit="share of conversions",
                truth_label="causal share (Shapley of the true game / true removal effect)",
            )
        )
    media_mix = results[
        (results["model_name"] == "media_mix_model") & (results["metric"] == "roas")
    ]
    if not media_mix.empty:
        first, last = _date_range(media_mix)
        frames.append(
            score(
                _estimates(media_mix),
                roas_truth(world, first, last),
                unit="revenue per unit of spend (94% HDI)",
                truth_label="net revenue the channel caused / its spend",
            )
        )
    calendar_rows = results[results["model_name"] == "temporal_effects"]
    if not calendar_rows.empty and calendar is not None:
        frames.append(
            score(
                _relative_estimates(calendar_rows),
                calendar_truth(world, calendar, _ar_coefficients(calendar_rows)),
                unit="relative lift",
                truth_label="same regression on the expected (noise-free) net revenue",
            )
        )
    if not frames:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    return pd.concat(frames, ignore_index=True)
