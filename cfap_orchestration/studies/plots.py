"""Figures of the studies as PNG bytes for the Dagster UI (matplotlib Figure API, no pyplot).

Each function takes the estimator's own tables (event study, gap series, attribution by
method, temporal effects) and returns a small PNG, so a figure always shows exactly what
was written to the results table.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DPI = 90


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def event_study_png(event_study: pd.DataFrame, *, title: str) -> bytes:
    """Leads and lags with their intervals; zero line and the treatment start marked."""
    figure = Figure(figsize=(7, 3.2))
    axis = figure.subplots()
    x = event_study["relative_period"].to_numpy(dtype=float)
    y = event_study["estimate"].to_numpy(dtype=float)
    lower = y - event_study["ci_lower"].to_numpy(dtype=float)
    upper = event_study["ci_upper"].to_numpy(dtype=float) - y
    axis.errorbar(x, y, yerr=[lower, upper], fmt="o", capsize=3, color="#1f4e79")
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.axvline(-0.5, color="#c0504d", linestyle="--", linewidth=0.8, label="test starts")
    axis.set_xlabel("period relative to the test start")
    axis.set_ylabel("holdout - control")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    return _png(figure)


def synthetic_control_png(gap: pd.DataFrame, *, title: str) -> bytes:
    """Treated and synthetic paths, and the gap between them, around the test start."""
    figure = Figure(figsize=(7, 4.6))
    top, bottom = figure.subplots(2, 1, sharex=True)
    time = pd.to_datetime(gap["time"])
    top.plot(time, gap["treated"], label="holdout regions", color="#1f4e79", linewidth=1)
    top.plot(time, gap["synthetic"], label="synthetic control", color="#c0504d", linewidth=1)
    top.set_ylabel("outcome index")
    top.legend(fontsize=8)
    top.set_title(title, fontsize=10)
    bottom.plot(time, gap["gap"], color="#4f4f4f", linewidth=1)
    bottom.axhline(0, color="grey", linewidth=0.8)
    start = time[gap["is_post"].astype(bool)].min()
    for axis in (top, bottom):
        axis.axvline(start, color="#c0504d", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("gap")
    figure.autofmt_xdate()
    return _png(figure)


def attribution_by_method_png(credits: pd.DataFrame, *, title: str) -> bytes:
    """Conversions credited to each channel by each method, side by side.

    `credits`: one row per channel, one column per method (conversions credited).
    """
    methods = list(credits.columns.drop("channel"))
    figure = Figure(figsize=(7, 3.4))
    axis = figure.subplots()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(credits))
    for i, method in enumerate(methods):
        axis.bar(x + i * width, credits[method], width, label=method)
    axis.set_xticks(x + width * (len(methods) - 1) / 2, credits["channel"], fontsize=8)
    axis.set_ylabel("conversions credited")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7)
    return _png(figure)


def effects_png(effects: pd.DataFrame, *, label: str, title: str) -> bytes:
    """Horizontal interval plot of relative effects (e.g. day of week, holidays)."""
    figure = Figure(figsize=(7, 0.35 * len(effects) + 1.2))
    axis = figure.subplots()
    y = np.arange(len(effects))
    effect = effects["effect"].to_numpy(dtype=float)
    xerr = [
        effect - effects["ci_lower"].to_numpy(dtype=float),
        effects["ci_upper"].to_numpy(dtype=float) - effect,
    ]
    axis.errorbar(effect, y, xerr=xerr, fmt="o", capsize=3, color="#1f4e79")
    axis.axvline(0, color="grey", linewidth=0.8)
    axis.set_yticks(y, effects[label], fontsize=8)
    axis.set_xlabel("relative effect")
    axis.set_title(title, fontsize=10)
    return _png(figure)


def contributions_png(contributions: pd.DataFrame, *, title: str) -> bytes:
    """Each channel's contribution per period over time (posterior mean and 94% HDI)."""
    figure = Figure(figsize=(7, 3.4))
    axis = figure.subplots()
    for channel, rows in contributions.groupby("channel"):
        dates = pd.to_datetime(rows["date"])
        axis.plot(dates, rows["mean"], linewidth=1, label=str(channel))
        axis.fill_between(dates, rows["hdi_low"], rows["hdi_high"], alpha=0.2)
    axis.set_ylabel("contribution per period")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.autofmt_xdate()
    return _png(figure)


def roas_png(roas: pd.DataFrame, *, title: str) -> bytes:
    """ROAS per channel and model variant with intervals (and the truth when known).

    `roas`: channel, variant, mean, hdi_low, hdi_high and optionally true_roas.
    """
    figure = Figure(figsize=(7, 3.2))
    axis = figure.subplots()
    variants = list(dict.fromkeys(roas["variant"]))
    channels = list(dict.fromkeys(roas["channel"]))
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        rows = roas[roas["variant"] == variant].set_index("channel").loc[channels]
        x = np.arange(len(channels)) + i * width
        mean = rows["mean"].to_numpy(dtype=float)
        err = [
            mean - rows["hdi_low"].to_numpy(dtype=float),
            rows["hdi_high"].to_numpy(dtype=float) - mean,
        ]
        axis.errorbar(x, mean, yerr=err, fmt="o", capsize=4, label=str(variant))
    if "true_roas" in roas.columns:
        truth = roas.drop_duplicates("channel").set_index("channel").loc[channels, "true_roas"]
        axis.scatter(
            np.arange(len(channels)) + width * (len(variants) - 1) / 2,
            truth,
            marker="x",
            color="black",
            zorder=3,
            label="truth",
        )
    axis.set_xticks(np.arange(len(channels)) + width * (len(variants) - 1) / 2, channels)
    axis.set_ylabel("ROAS")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    return _png(figure)


def response_curves_png(curves: pd.DataFrame, current: pd.DataFrame, *, title: str) -> bytes:
    """Steady-state response per channel, with current and planned spend marked.

    `curves`: channel, spend, mean, hdi_low, hdi_high; `current`: channel, current_spend,
    optimal_spend.
    """
    figure = Figure(figsize=(7, 3.4))
    axis = figure.subplots()
    for channel, rows in curves.groupby("channel"):
        line = axis.plot(rows["spend"], rows["mean"], linewidth=1.2, label=str(channel))[0]
        axis.fill_between(
            rows["spend"], rows["hdi_low"], rows["hdi_high"], alpha=0.15, color=line.get_color()
        )
        plan = current[current["channel"] == channel]
        for column, marker in (("current_spend", "o"), ("optimal_spend", "*")):
            if len(plan):
                spend = float(plan[column].iloc[0])
                y = float(np.interp(spend, rows["spend"], rows["mean"]))
                axis.scatter([spend], [y], marker=marker, s=60, color=line.get_color(), zorder=3)
    axis.set_xlabel("spend per period (o current, * planned)")
    axis.set_ylabel("contribution per period")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    return _png(figure)
