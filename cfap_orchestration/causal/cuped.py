"""CUPED: a randomized two-arm difference in means, variance-reduced by a pre-period covariate.

What it estimates
    The average treatment effect, treatment mean minus control mean of the outcome (e.g.
    revenue per email recipient minus revenue per holdout member), after the CUPED adjustment
    of Deng, Xu, Kohavi & Walker (2013):

        Y_adj = Y - theta * (X - mean(X)),   theta = cov(Y, X) / var(X)

    with theta and mean(X) from the POOLED data (both arms). The effect is
    mean_T(Y_adj) - mean_C(Y_adj) = (mean_T Y - mean_C Y) - theta (mean_T X - mean_C X).

Assumptions
    Randomized assignment, and a covariate unaffected by the treatment (measured before it,
    e.g. pre-period revenue). Then E[mean_T X - mean_C X] = 0 and the adjustment removes
    noise without adding bias, for any theta; the pooled theta minimizes the variance of
    Y_adj and the pooled variance falls by exactly rho^2 (rho = pooled sample correlation of
    Y and X), reported as ``variance_reduction``.

Inference
    Welch's two-sample standard error of the adjusted means,
    sqrt(s_T^2 / n_T + s_C^2 / n_C) with s^2 the within-arm variances (ddof 1) of Y_adj,
    and a Welch t reference with Welch-Satterthwaite degrees of freedom (it equals the
    normal reference for the arm sizes of email holdouts, and is more honest for small
    tests). Theta is treated as known: estimating it changes the variance by O(1/n)
    relative, negligible at the sample sizes where CUPED is used.

Relation to regression
    OLS ``Y ~ T + X`` (ANCOVA) estimates the effect as
    (mean_T Y - mean_C Y) - theta_w (mean_T X - mean_C X) with theta_w the WITHIN-arm slope,
    so CUPED and ANCOVA differ by (theta_w - theta) (mean_T X - mean_C X), which is
    O_p(1/n): both are consistent for the same effect, not identical. CUPED equals exactly
    the OLS coefficient on T of ``Y_adj ~ T`` (the difference of adjusted means).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cfap_orchestration.causal._validation import (
    require_alpha,
    require_binary,
    require_columns,
    require_frame,
    require_no_nans,
    require_numeric,
)
from cfap_orchestration.causal.estimate import EffectEstimate

FloatArray = npt.NDArray[np.float64]

_WHAT = "cuped input"
_METHOD = "cuped"


def cuped(
    df: pd.DataFrame,
    *,
    outcome: str,
    covariate: str,
    treatment: str,
    alpha: float = 0.05,
) -> EffectEstimate:
    """CUPED-adjusted difference in means between the treatment and the control arm.

    Parameters
    ----------
    df:
        One row per randomized unit (e.g. user).
    outcome:
        Numeric outcome column (e.g. revenue in the test window, zeros included).
    covariate:
        Numeric pre-treatment covariate (e.g. the same metric in a pre-period); it must
        vary, since CUPED regresses the outcome on it.
    treatment:
        0/1 (or bool) column: 1 = treatment arm (e.g. email recipients), 0 = control
        (holdout).
    alpha:
        1 - confidence level.

    Returns
    -------
    EffectEstimate
        ``effect`` = mean_T(Y_adj) - mean_C(Y_adj), outcome units per unit (e.g. revenue per
        recipient); positive when the treatment raised the outcome. ``effect_relative`` =
        effect / control mean of the outcome (None when that mean is 0). ``std_error``,
        ``p_value``, ``ci_*``: Welch (module docstring). ``details``: ``theta``,
        ``covariate_correlation`` (pooled rho), ``variance_reduction`` (1 -
        var(Y_adj)/var(Y), pooled, = rho^2), ``unadjusted_effect``,
        ``unadjusted_std_error``, ``unadjusted_p_value``, ``relative_effect``,
        ``n_treatment``, ``n_control``, ``mean_treatment``/``mean_control`` (outcome),
        ``mean_adjusted_treatment``/``mean_adjusted_control``,
        ``covariate_mean_treatment``/``covariate_mean_control``, ``df`` (Welch),
        ``reference_distribution`` and ``std_error_note``.
    """
    require_alpha(alpha)
    y, x, arm = _prepare(df, outcome, covariate, treatment)
    x_centred = x - x.mean()
    theta = float(x_centred @ (y - y.mean()) / (x_centred @ x_centred))
    y_adj = y - theta * x_centred
    adjusted = _welch(y_adj[arm], y_adj[~arm], alpha)
    if adjusted.std_error == 0:
        raise ValueError(
            "the CUPED-adjusted outcome is constant within each arm: no standard error"
        )
    raw = _welch(y[arm], y[~arm], alpha)
    control_mean = float(y[~arm].mean())
    relative = adjusted.effect / control_mean if control_mean != 0 else None
    details: dict[str, Any] = {
        "theta": theta,
        "covariate_correlation": float(np.corrcoef(y, x)[0, 1]),
        "variance_reduction": 1 - float(np.var(y_adj) / np.var(y)),
        "unadjusted_effect": raw.effect,
        "unadjusted_std_error": raw.std_error,
        "unadjusted_p_value": raw.p_value,
        "relative_effect": relative,
        "n_treatment": int(arm.sum()),
        "n_control": int((~arm).sum()),
        "mean_treatment": float(y[arm].mean()),
        "mean_control": control_mean,
        "mean_adjusted_treatment": float(y_adj[arm].mean()),
        "mean_adjusted_control": float(y_adj[~arm].mean()),
        "covariate_mean_treatment": float(x[arm].mean()),
        "covariate_mean_control": float(x[~arm].mean()),
        "df": adjusted.df,
        "reference_distribution": "Welch t (Welch-Satterthwaite df)",
        "std_error_note": "Welch SE of the adjusted means; theta treated as known (O(1/n))",
    }
    return EffectEstimate(
        effect=adjusted.effect,
        ci_lower=adjusted.ci_lower,
        ci_upper=adjusted.ci_upper,
        p_value=adjusted.p_value,
        std_error=adjusted.std_error,
        n_obs=len(y),
        method=_METHOD,
        alpha=alpha,
        effect_relative=relative,
        details=details,
    )


def _prepare(
    df: pd.DataFrame, outcome: str, covariate: str, treatment: str
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    require_frame(df, what=_WHAT)
    require_columns(df, [outcome, covariate, treatment], what=_WHAT)
    require_no_nans(df, [outcome, covariate, treatment], what=_WHAT)
    require_numeric(df, [outcome, covariate], what=_WHAT)
    arm = require_binary(df, treatment, what=_WHAT).to_numpy() == 1
    for name, rows in (("treatment", int(arm.sum())), ("control", int((~arm).sum()))):
        if rows < 2:
            raise ValueError(
                f"the {name} arm ({treatment!r} = {int(name == 'treatment')}) has {rows} "
                "row(s): each arm needs at least 2"
            )
    y = df[outcome].to_numpy(dtype=float)
    x = df[covariate].to_numpy(dtype=float)
    if np.var(x) == 0:
        raise ValueError(
            f"covariate {covariate!r} has zero variance: CUPED needs a covariate that varies "
            "across units (e.g. pre-period revenue)"
        )
    if np.var(y) == 0:
        raise ValueError(f"outcome {outcome!r} has zero variance: every value is the same")
    return y, x, arm


@dataclass(frozen=True)
class _Welch:
    effect: float
    std_error: float
    df: float
    p_value: float
    ci_lower: float
    ci_upper: float


def _welch(treated: FloatArray, control: FloatArray, alpha: float) -> _Welch:
    effect = float(treated.mean() - control.mean())
    v_t = float(treated.var(ddof=1)) / treated.size
    v_c = float(control.var(ddof=1)) / control.size
    se = math.sqrt(v_t + v_c)
    if se == 0:
        return _Welch(effect, 0.0, math.nan, math.nan, effect, effect)
    df = (v_t + v_c) ** 2 / (v_t**2 / (treated.size - 1) + v_c**2 / (control.size - 1))
    p = float(2 * stats.t.sf(abs(effect) / se, df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return _Welch(effect, se, df, p, effect - half, effect + half)
