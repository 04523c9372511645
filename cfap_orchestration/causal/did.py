"""Difference-in-differences with common treatment timing: 2x2 regression or two-way FE.

What it estimates
    The average effect of the treatment on the treated (ATT) in outcome units per row
    (e.g. revenue per geo-day): the coefficient on ``treated x post`` in

    * design ``"2x2"``, the textbook group/period regression
      ``outcome ~ 1 + treated + post + treated:post + covariates`` (OLS on the rows as
      given; fits two groups x two periods, repeated cross-sections, or any data where the
      group/period means are the comparison), or
    * design ``"twfe"``, two-way fixed effects
      ``outcome ~ unit FE + time FE + treated:post + covariates`` on a panel with one row
      per (unit, time).

    ``design="auto"`` takes ``"2x2"`` when ``unit`` and ``time`` each have at most two
    distinct values (the units are the two groups) and ``"twfe"`` otherwise. A panel of many
    units over two periods therefore gets unit fixed effects; in a balanced panel its point
    estimate equals the 2x2 difference of the four group/period means (the standard errors
    differ: the FE model removes unit heterogeneity). Pass ``design="2x2"`` for repeated
    cross-sections with many individual ids.

Assumptions
    Parallel trends (in the outcome's units, additively), no anticipation, and common
    timing: ``post`` must be a function of ``time`` that switches from 0 to 1 once for every
    unit (staggered adoption is rejected, since TWFE is biased there). ``treated`` must be
    constant within a unit. Relative periods count the distinct sorted values of ``time``
    (observed periods, not calendar distance); 0 is the first post-period.

Fixed effects
    Absorbed exactly, never as a big dummy matrix: the dimension with more levels (e.g.
    300k users) is removed by within-demeaning and the other one by solving its reduced
    normal equations (a dense L x L system, L = levels of the smaller dimension; at most
    ``_MAX_SMALL_FE_LEVELS``). Unbalanced panels are fine. The FE rank is
    ``n_units + n_times - (connected components of the unit-time graph)``.

Inference
    * No ``cluster``: classical OLS standard errors, t(N - K) reference, K = regressors +
      FE rank (identical to OLS with dummies; in the 2x2 design identical to
      ``statsmodels.formula.api.ols``).
    * ``cluster=``: cluster-robust sandwich CR1 with Stata's small-sample factor
      G/(G-1) * (N-1)/(N-K) and a t(G-1) reference. K counts the regressors and the absorbed
      FE *except* those nested within the clusters, which are counted as one constant
      (reghdfe's and fixest's "nested" convention; areg would count them, which inflates the
      SE badly when, e.g., 300k users are both the FE and the clusters). At least 2 clusters.
      CR1 is known to over-reject with few treated clusters (MacKinnon & Webb 2017, 2018).
      In the sandbox-like simulation (3 of 12 geos treated, ``simulation/did.py``) the 95%
      CR1 interval covers 88% with ``scale_by_pre_mean``; use
      ``inference="randomization"`` there.
    * ``inference="randomization"``: randomization inference over which units are treated
      (all C(U, U_treated) assignments when at most ``n_permutations``, else a seeded random
      sample, the observed one included). The statistic is the studentized one, |t| of
      treated x post in the same regression with the same standard error (CR1 or
      classical): ``p_value`` = share of assignments with |t| at least the observed one. The
      interval inverts the test of "effect = tau0" (outcome - tau0 * treated x post), found
      by bisection from the estimate outwards. Exact in finite samples under the sharp null
      when the treated units were drawn at random, whatever the number of clusters and the
      heteroskedasticity across units; studentizing keeps it asymptotically valid for the
      average effect when effects differ by unit (Wu & Ding 2021; MacKinnon & Webb 2020
      discuss few treated clusters). ``std_error`` is then the interval half-width over
      z_{1-alpha/2} (an approximation for tables).

Units of unequal size
    With multiplicative seasonality (revenue = geo size x season x noise), parallel trends
    in levels fails whenever the treated and control units differ in average size: a
    seasonal change of s% between the pre and post windows moves the treated-minus-control
    gap by s% of the size difference, which a level DID reads as effect. Over random
    assignments this averages out; for a given one it does not (for the sandbox's 2025 Meta
    holdout of three large US geos, early August with summer decline, the level DID of the
    baseline alone is about -3.6% of the treated geos' revenue). ``scale_by_pre_mean=True``
    fits the same model to y / (the unit's pre-period mean), where a common multiplicative
    season is parallel across units, and multiplies the coefficient (a share of the
    pre-period level) by the treated post rows' mean pre-period level. That recovers the ATT
    in outcome units exactly when the relative effect is common to the treated units (else
    it weights each treated unit's relative effect equally). Standard errors treat the unit
    means as fixed (their noise is O(1/n_pre)).

Event study and pre-trends
    ``details["event_study"]`` comes from the same specification with the single
    ``treated x post`` term replaced by ``treated x 1{relative period in bin b}``; the
    reference is the last pre-period (relative period -1), omitted. With
    ``event_window_bins=B`` the other leads (-2, -3, ...) are grouped into at most B bins of
    equal width counting back from -2 (the farthest bin may be shorter), and the lags
    (0, 1, ...) into at most B bins counting up from 0; ``None`` keeps one term per period.
    Binning is what keeps daily data testable: 55 daily leads with 12 clusters make a
    rank-deficient joint test, 8 weekly bins do not.

    ``details["pre_trend_p_value"]`` is the 1-df t-test of a linear differential pre-trend:
    the pre-period rows alone, same FE and covariates, plus ``treated x relative period``;
    t(N-K) or, clustered, CR1 with t(G-1); with ``inference="randomization"`` the
    randomization p-value of the same |t| (treated units permuted). A single restriction is
    what a cluster-robust test can carry with a dozen clusters. The joint Wald test that all
    binned leads are zero (F(q, N-K), or F(q, G-1) clustered; NaN when q > G-1) is reported
    too as ``pre_trend_joint_p_value``; clustered, it over-rejects (the q x q CR1 covariance
    is estimated from G clusters: 10% false rejections at the 5% level with 40 clusters and
    8 leads, ~90% with 12 clusters of which 3 treated), so read it as descriptive only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from cfap_orchestration.causal._validation import (
    require_alpha,
    require_binary,
    require_columns,
    require_frame,
    require_no_nans,
    require_numeric,
    require_variance,
)
from cfap_orchestration.causal.estimate import EffectEstimate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Design = Literal["auto", "2x2", "twfe"]
Inference = Literal["analytic", "randomization"]

_WHAT = "difference_in_differences input"
_METHOD = "difference_in_differences"
_MAX_SMALL_FE_LEVELS = 5_000
_COLLINEAR_TOL = 1e-8
_RI_CHUNK = 256
_D_NAME = "treated x post"


# ---- public API ---------------------------------------------------------------------


def difference_in_differences(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treated: str,
    post: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    alpha: float = 0.05,
    design: Design = "auto",
    event_window_bins: int | None = 8,
    inference: Inference = "analytic",
    n_permutations: int = 2_000,
    seed: int = 0,
    scale_by_pre_mean: bool = False,
) -> EffectEstimate:
    """Difference-in-differences estimate of the ATT (see the module docstring for the model).

    Parameters
    ----------
    df:
        Long data, one row per observation: (unit, time) in a TWFE panel (duplicates are an
        error there), any number of rows per group and period in the 2x2 design.
    outcome, unit, time:
        Column names; ``outcome`` numeric, ``time`` sortable (dates or integers).
    treated:
        0/1 (or bool) column: the row's unit is in the treatment group (constant per unit).
    post:
        0/1 (or bool) column: the row's period is at or after treatment start (a function of
        ``time``, 0 before and 1 after one common start).
    covariates:
        Numeric control columns (time-varying ones in TWFE: unit-constant ones are absorbed
        by the unit FE and rejected as collinear).
    cluster:
        Column to cluster on (usually ``unit``): CR1 standard errors, t(G-1) reference.
    alpha:
        1 - confidence level.
    design:
        ``"auto"``, ``"2x2"`` or ``"twfe"`` (module docstring).
    event_window_bins:
        At most this many lead bins and this many lag bins in the event study (``None``:
        one coefficient per relative period).
    inference:
        ``"analytic"`` (classical or CR1) or ``"randomization"`` (permute which units are
        treated; TWFE design only).
    n_permutations:
        Randomization inference: enumerate all assignments when there are at most this many,
        otherwise draw this many (observed one included) with ``seed``.
    seed:
        Seed of the random assignments (only used when they are sampled).
    scale_by_pre_mean:
        Fit on ``outcome / (the unit's pre-period mean outcome)`` and convert the effect back
        to outcome units (module docstring, "Units of unequal size"). Every unit needs a
        positive pre-period mean.

    Returns
    -------
    EffectEstimate
        ``effect`` = ATT, outcome units per row; negative when the treatment lowered the
        outcome. ``effect_relative`` = effect / (treated post-period mean - effect), the
        effect over the treated group's counterfactual mean (None when that is 0).
        ``details``: ``design``, ``se_type`` ("classical", "CR1" or "randomization"),
        ``event_study`` (DataFrame: relative_period = bin midpoint, period_first,
        period_last, estimate, std_error, ci_lower, ci_upper, p_value; the reference period
        -1 is omitted), ``reference_period``, ``pre_trend_p_value`` (linear 1-df test),
        ``pre_trend_test``, ``pre_trend_joint_p_value``, ``pre_trend_joint_n_leads``,
        ``pre_trend_notes``, ``n_units``, ``n_treated_units``, ``n_periods``,
        ``n_pre_periods``, ``n_post_periods``, ``n_clusters``, ``df`` (of the reference
        t), ``n_params`` (K), ``small_sample_factor``, ``treated_post_mean``,
        ``counterfactual_mean``, ``covariate_coefficients`` and, for randomization
        inference, ``randomization`` (number of assignments, whether exhaustive) and the
        analytic ``analytic_std_error``/``analytic_p_value``/``analytic_ci``. With
        ``scale_by_pre_mean``: ``effect_share_of_pre_mean`` (the fitted coefficient) and
        ``scale_factor`` (the treated post rows' mean pre-period level it is multiplied by);
        the event study is converted with the same factor, covariate coefficients are not.
    """
    covs = (covariates,) if isinstance(covariates, str) else tuple(covariates)
    _check_options(alpha, design, event_window_bins, inference, n_permutations)
    panel = _prepare(df, outcome, unit, time, treated, post, covs, cluster)
    chosen = _resolve_design(design, panel)
    if chosen == "twfe":
        _require_unique_cells(df, unit, time)
    if inference == "randomization" and chosen != "twfe":
        raise ValueError("inference='randomization' permutes treated units: it needs design 'twfe'")

    fit_panel, scale = _scaled_by_pre_mean(panel, outcome) if scale_by_pre_mean else (panel, 1.0)
    main = _main_fit(fit_panel, chosen)
    coef, coef_se = float(main.coef[0]), float(math.sqrt(main.vcov[0, 0]))
    p_value, ci_lower, ci_upper = _t_inference(coef, coef_se, main.df, alpha)
    effect, se, ci_lower, ci_upper = (
        coef * scale,
        coef_se * scale,
        ci_lower * scale,
        ci_upper * scale,
    )
    details = _base_details(panel, chosen, main, effect)
    ri_options = (n_permutations, seed) if inference == "randomization" else None
    details.update(_event_details(fit_panel, chosen, alpha, event_window_bins, scale, ri_options))
    if scale_by_pre_mean:
        details.update(
            outcome_scale="outcome / unit pre-period mean",
            effect_share_of_pre_mean=coef,
            scale_factor=scale,
        )
    se_type = "classical" if panel.cluster is None else "CR1"
    if inference == "randomization":
        ri = _randomization_inference(fit_panel, coef, coef_se, alpha, n_permutations, seed)
        details.update(
            analytic_std_error=se,
            analytic_p_value=p_value,
            analytic_ci=[ci_lower, ci_upper],
            analytic_se_type=se_type,
            randomization=ri.summary,
        )
        p_value, se = ri.p_value, ri.std_error * scale
        ci_lower, ci_upper = ri.ci_lower * scale, ri.ci_upper * scale
        se_type = "randomization"
    details["se_type"] = se_type
    counterfactual = details["counterfactual_mean"]
    return EffectEstimate(
        effect=effect,
        ci_lower=ci_lower,
        ci_upper=ci_upper,
        p_value=p_value,
        std_error=se,
        n_obs=len(panel.y),
        method=_METHOD,
        alpha=alpha,
        effect_relative=effect / counterfactual if counterfactual != 0 else None,
        details=details,
    )


# ---- input ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Panel:
    y: FloatArray
    treated: FloatArray  # per row, 0/1
    post: FloatArray  # per row, 0/1
    unit: IntArray  # codes 0..n_units-1
    time: IntArray  # codes of the sorted distinct times
    rel: IntArray  # relative period: time code - first post code
    n_pre: int
    n_post: int
    covariates: FloatArray  # (n, p)
    covariate_names: tuple[str, ...]
    cluster: IntArray | None
    n_units: int
    n_treated_units: int
    unit_treated: IntArray  # per unit code

    @property
    def n_times(self) -> int:
        return self.n_pre + self.n_post

    @property
    def n_clusters(self) -> int | None:
        return None if self.cluster is None else int(self.cluster.max()) + 1


def _check_options(
    alpha: float,
    design: str,
    event_window_bins: int | None,
    inference: str,
    n_permutations: int,
) -> None:
    require_alpha(alpha)
    if design not in ("auto", "2x2", "twfe"):
        raise ValueError(f"design must be 'auto', '2x2' or 'twfe', got {design!r}")
    if event_window_bins is not None and (
        not isinstance(event_window_bins, int) or event_window_bins < 1
    ):
        raise ValueError(
            f"event_window_bins must be a positive int or None, got {event_window_bins}"
        )
    if inference not in ("analytic", "randomization"):
        raise ValueError(f"inference must be 'analytic' or 'randomization', got {inference!r}")
    if n_permutations < 2:
        raise ValueError(f"n_permutations must be at least 2, got {n_permutations}")


def _prepare(
    df: pd.DataFrame,
    outcome: str,
    unit: str,
    time: str,
    treated: str,
    post: str,
    covs: tuple[str, ...],
    cluster: str | None,
) -> _Panel:
    require_frame(df, what=_WHAT)
    used = [outcome, unit, time, treated, post, *covs, *([cluster] if cluster else [])]
    require_columns(df, used, what=_WHAT)
    require_no_nans(df, used, what=_WHAT)
    require_numeric(df, [outcome, *covs], what=_WHAT)
    treated_s = require_binary(df, treated, what=_WHAT)
    post_s = require_binary(df, post, what=_WHAT)
    if int(post_s.min()) == 1:
        raise ValueError(f"no pre-period rows: {post!r} is 1 on every row")
    if int(post_s.max()) == 0:
        raise ValueError(f"no post-period rows: {post!r} is 0 on every row")
    unit_codes = pd.factorize(df[unit])[0].astype(np.int64)
    n_units = int(unit_codes.max()) + 1
    unit_treated = _unit_treated(unit_codes, treated_s.to_numpy(), n_units, unit, treated)
    time_codes = _time_codes(df[time], time)
    n_pre, n_post = _periods(time_codes, post_s.to_numpy(), post)
    _require_cells(treated_s.to_numpy(), post_s.to_numpy(), treated, post)
    require_variance(df[outcome], name=f"outcome {outcome!r}")
    for c in covs:
        require_variance(df[c], name=f"covariate {c!r}")
    cluster_codes = None
    if cluster is not None:
        cluster_codes = pd.factorize(df[cluster])[0].astype(np.int64)
        if cluster_codes.max() < 1:
            raise ValueError(
                f"cluster column {cluster!r} has a single cluster: cluster-robust standard "
                "errors need at least 2 clusters"
            )
    cov_matrix = df[list(covs)].to_numpy(dtype=float).reshape(len(df), len(covs))
    return _Panel(
        y=df[outcome].to_numpy(dtype=float),
        treated=treated_s.to_numpy(dtype=float),
        post=post_s.to_numpy(dtype=float),
        unit=unit_codes,
        time=time_codes,
        rel=time_codes - n_pre,
        n_pre=n_pre,
        n_post=n_post,
        covariates=cov_matrix,
        covariate_names=covs,
        cluster=cluster_codes,
        n_units=n_units,
        n_treated_units=int(unit_treated.sum()),
        unit_treated=unit_treated,
    )


def _unit_treated(
    unit_codes: IntArray, treated: npt.NDArray[Any], n_units: int, unit: str, column: str
) -> IntArray:
    lo = np.full(n_units, 2, dtype=np.int64)
    hi = np.full(n_units, -1, dtype=np.int64)
    np.minimum.at(lo, unit_codes, treated.astype(np.int64))
    np.maximum.at(hi, unit_codes, treated.astype(np.int64))
    if np.any(lo != hi):
        raise ValueError(
            f"treated column {column!r} must be constant within each {unit!r}: "
            f"{int(np.sum(lo != hi))} unit(s) have both 0 and 1"
        )
    if hi.sum() == 0:
        raise ValueError(f"no treated units: {column!r} is 0 on every row")
    if hi.sum() == n_units:
        raise ValueError(f"no control units: {column!r} is 1 on every row")
    return hi


def _time_codes(values: pd.Series, time: str) -> IntArray:
    message = f"time column {time!r} must be sortable (dates or numbers of one type)"
    try:
        codes, uniques = pd.factorize(values, sort=True)
        ordered = bool(uniques.is_monotonic_increasing)  # pandas puts unorderable values last
    except TypeError as exc:
        raise ValueError(message) from exc
    if not ordered:
        raise ValueError(message)
    return np.asarray(codes, dtype=np.int64)


def _periods(time_codes: IntArray, post: npt.NDArray[Any], column: str) -> tuple[int, int]:
    first_post = int(time_codes[post == 1].min())
    last_pre = int(time_codes[post == 0].max())
    if last_pre >= first_post:
        raise ValueError(
            f"{column!r} must be a function of time that switches from 0 to 1 once (common "
            "treatment timing): some period has post=0 at or after the first post=1 period"
        )
    n_times = int(time_codes.max()) + 1
    return first_post, n_times - first_post


def _require_cells(treated: npt.NDArray[Any], post: npt.NDArray[Any], t: str, p: str) -> None:
    if not np.any((treated == 1) & (post == 1)):
        raise ValueError(
            f"{t!r} x {p!r} is zero on every row: no treated unit is observed after treatment "
            "start, so there is no effect to estimate"
        )
    cells = {
        "treated units have no pre-period rows": (1, 0),
        "control units have no pre-period rows": (0, 0),
        "control units have no post-period rows": (0, 1),
    }
    for message, (tv, pv) in cells.items():
        if not np.any((treated == tv) & (post == pv)):
            raise ValueError(f"{message}: the difference-in-differences is not identified")


def _require_unique_cells(df: pd.DataFrame, unit: str, time: str) -> None:
    n_dup = int(df.duplicated([unit, time]).sum())
    if n_dup:
        raise ValueError(
            f"{n_dup} duplicated ({unit!r}, {time!r}) row(s): a two-way fixed-effects panel "
            "needs one row per unit and period (aggregate first, or use design='2x2' for "
            "repeated cross-sections)"
        )


def _scaled_by_pre_mean(panel: _Panel, outcome: str) -> tuple[_Panel, float]:
    """The panel with y / (its unit's pre-period mean), and the factor back to outcome units."""
    pre = panel.post == 0
    counts = np.bincount(panel.unit[pre], minlength=panel.n_units)
    if np.any(counts == 0):
        raise ValueError(
            f"scale_by_pre_mean: {int(np.sum(counts == 0))} unit(s) have no pre-period rows "
            "to take a scale from"
        )
    means = np.bincount(panel.unit[pre], weights=panel.y[pre], minlength=panel.n_units) / counts
    if np.any(means <= 0):
        raise ValueError(
            f"scale_by_pre_mean needs a positive pre-period mean of {outcome!r} in every unit: "
            f"{int(np.sum(means <= 0))} unit(s) have a mean <= 0"
        )
    level = means[panel.unit]
    treated_post = (panel.treated == 1) & (panel.post == 1)
    return replace(panel, y=panel.y / level), float(level[treated_post].mean())


def _resolve_design(design: Design, panel: _Panel) -> str:
    if design != "auto":
        return design
    return "2x2" if panel.n_units <= 2 and panel.n_times <= 2 else "twfe"


# ---- fixed effects and OLS -------------------------------------------------------------


class _FixedEffects:
    """Residual maker of two sets of dummies (e.g. unit and time), without the dummies.

    The dimension with more levels is absorbed by within-demeaning; the other by solving its
    reduced normal equations A beta = rhs, A = D_b'D_b - C' diag(1/n_a) C, C = D_a'D_b.
    """

    def __init__(self, a: IntArray, b: IntArray) -> None:
        n_a, n_b = int(a.max()) + 1, int(b.max()) + 1
        if n_b > n_a:
            a, b, n_a, n_b = b, a, n_b, n_a
        if n_b > _MAX_SMALL_FE_LEVELS:
            raise ValueError(
                f"both fixed-effect dimensions have more than {_MAX_SMALL_FE_LEVELS} levels "
                f"({n_a} and {n_b}): aggregate one of them first"
            )
        self.levels = (n_a, n_b)
        self._a, self._b = a, b
        n = len(a)
        ones = np.ones(n)
        self._da = sparse.csr_matrix((ones, (a, np.arange(n))), shape=(n_a, n))
        self._db = sparse.csr_matrix((ones, (b, np.arange(n))), shape=(n_b, n))
        self._na = np.bincount(a, minlength=n_a).astype(float)
        counts = (self._da @ self._db.T).tocsr()
        self._c = counts
        gram = np.diag(np.bincount(b, minlength=n_b).astype(float))
        gram -= (counts.T @ sparse.diags(1 / self._na) @ counts).toarray()
        self._gram_pinv = _psd_pinv(gram)
        graph = sparse.bmat([[None, counts], [counts.T, None]])
        n_components = int(connected_components(graph, directed=False)[0])
        self.rank = n_a + n_b - n_components

    def residualize(self, m: FloatArray) -> FloatArray:
        out = self._once(m)
        return self._once(out)  # a second pass removes the round-off of the first

    def _once(self, m: FloatArray) -> FloatArray:
        a_means = (self._da @ m) / self._na[:, None]
        beta = self._gram_pinv @ (self._db @ m - self._c.T @ a_means)
        r = m - beta[self._b]
        return np.asarray(r - ((self._da @ r) / self._na[:, None])[self._a], dtype=float)

    def nested_df(self, cluster: IntArray) -> int:
        """Absorbed parameters nested within clusters (levels - 1 per nested dimension)."""
        out = 0
        for codes, n_levels in ((self._a, self.levels[0]), (self._b, self.levels[1])):
            first = np.full(n_levels, -1, dtype=np.int64)
            first[codes] = cluster
            if np.all(first[codes] == cluster):
                out += n_levels - 1
        return out


def _psd_pinv(matrix: FloatArray) -> FloatArray:
    values, vectors = np.linalg.eigh(matrix)
    keep = values > 1e-10 * max(float(values.max()), 1.0)
    inv = np.where(keep, 1 / np.where(keep, values, 1.0), 0.0)
    return np.asarray((vectors * inv) @ vectors.T, dtype=float)


@dataclass(frozen=True)
class _Fit:
    coef: FloatArray
    vcov: FloatArray
    df: float
    n_params: int
    small_sample_factor: float


def _ols(
    y: FloatArray,
    x: FloatArray,
    names: Sequence[str],
    *,
    fe: _FixedEffects | None,
    cluster: IntArray | None,
) -> _Fit:
    """OLS of y on x (after absorbing `fe`), classical or CR1 covariance (module docstring)."""
    y_t = y if fe is None else fe.residualize(y[:, None])[:, 0]
    x_t = x if fe is None else fe.residualize(x)
    coef, bread = _solve_normal(x_t, y_t, np.linalg.norm(x, axis=0), names)
    resid = y_t - x_t @ coef
    n, k = x.shape
    fe_rank = 0 if fe is None else fe.rank
    if cluster is None:
        n_params = k + fe_rank
        _require_df(n, n_params)
        sigma2 = float(resid @ resid) / (n - n_params)
        return _Fit(coef, sigma2 * bread, float(n - n_params), n_params, 1.0)
    n_params = k + fe_rank - (0 if fe is None else fe.nested_df(cluster))
    _require_df(n, n_params)
    n_clusters = int(cluster.max()) + 1
    scores = np.column_stack(
        [np.bincount(cluster, weights=x_t[:, j] * resid, minlength=n_clusters) for j in range(k)]
    )
    factor = n_clusters / (n_clusters - 1) * (n - 1) / (n - n_params)
    vcov = factor * bread @ (scores.T @ scores) @ bread
    return _Fit(coef, vcov, float(n_clusters - 1), n_params, factor)


def _solve_normal(
    x_t: FloatArray, y_t: FloatArray, raw_norms: FloatArray, names: Sequence[str]
) -> tuple[FloatArray, FloatArray]:
    """OLS coefficients and (X'X)^-1 from the column-scaled normal equations.

    Normal equations rather than a QR of the tall matrix: LAPACK's threaded QR costs ~100x
    more on a busy machine, and unit-scaled columns keep the small system well conditioned.
    """
    norms = np.linalg.norm(x_t, axis=0)
    for j, name in enumerate(names):
        if norms[j] <= _COLLINEAR_TOL * max(float(raw_norms[j]), 1e-300):
            _raise_collinear(name)
    z = x_t / norms
    gram = z.T @ z
    _require_pivots(gram, names)
    gram_inv = np.linalg.inv(gram)
    coef = (gram_inv @ (z.T @ y_t)) / norms
    return coef, gram_inv / np.outer(norms, norms)


def _require_pivots(gram: FloatArray, names: Sequence[str]) -> None:
    """Cholesky pivots of a unit-diagonal Gram matrix: the share of each column's norm^2
    left after projecting it on the previous columns; ~0 means collinear."""
    k = gram.shape[0]
    lower = np.zeros((k, k))
    for j in range(k):
        pivot = gram[j, j] - lower[j, :j] @ lower[j, :j]
        if pivot <= _COLLINEAR_TOL**2 * 100:
            _raise_collinear(names[j])
        lower[j, j] = math.sqrt(pivot)
        lower[j + 1 :, j] = (gram[j + 1 :, j] - lower[j + 1 :, :j] @ lower[j, :j]) / lower[j, j]


def _raise_collinear(name: str) -> None:
    raise ValueError(
        f"{name} is collinear with the fixed effects and the other regressors (e.g. a "
        "covariate that does not vary within units or over time, or that duplicates another "
        "one): drop it"
    )


def _require_df(n: int, n_params: int) -> None:
    if n - n_params < 1:
        raise ValueError(
            f"too few observations: {n} rows for {n_params} parameters (fixed effects included)"
        )


def _t_inference(estimate: float, se: float, df: float, alpha: float) -> tuple[float, float, float]:
    if se == 0:
        return (0.0 if estimate != 0 else 1.0), estimate, estimate
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return p, estimate - half, estimate + half


# ---- the fits ---------------------------------------------------------------------------


def _cov_names(panel: _Panel) -> list[str]:
    return [f"covariate {c!r}" for c in panel.covariate_names]


def _main_fit(panel: _Panel, design: str) -> _Fit:
    """Coefficient 0 of the returned fit is the treated x post effect."""
    d = panel.treated * panel.post
    if design == "2x2":
        ones = np.ones_like(d)
        x = np.column_stack([d, ones, panel.treated, panel.post, panel.covariates])
        names = [_D_NAME, "intercept", "treated", "post", *_cov_names(panel)]
        return _ols(panel.y, x, names, fe=None, cluster=panel.cluster)
    fe = _FixedEffects(panel.unit, panel.time)
    x = np.column_stack([d, panel.covariates])
    return _ols(panel.y, x, [_D_NAME, *_cov_names(panel)], fe=fe, cluster=panel.cluster)


def _group_codes(panel: _Panel, design: str) -> IntArray:
    """The cross-sectional FE dimension: the units (TWFE) or the treated/control groups."""
    return panel.unit if design == "twfe" else panel.treated.astype(np.int64)


def _base_details(panel: _Panel, design: str, main: _Fit, effect: float) -> dict[str, Any]:
    in_treated_post = (panel.treated == 1) & (panel.post == 1)
    treated_post_mean = float(panel.y[in_treated_post].mean())
    return {
        "design": design,
        "n_units": panel.n_units,
        "n_treated_units": panel.n_treated_units,
        "n_periods": panel.n_times,
        "n_pre_periods": panel.n_pre,
        "n_post_periods": panel.n_post,
        "n_clusters": panel.n_clusters,
        "df": main.df,
        "n_params": main.n_params,
        "small_sample_factor": main.small_sample_factor,
        "treated_post_mean": treated_post_mean,
        "counterfactual_mean": treated_post_mean - effect,
        "covariate_coefficients": {
            c: float(main.coef[-len(panel.covariate_names) + i])
            for i, c in enumerate(panel.covariate_names)
        },
        "fixed_effects": "unit + time (absorbed)" if design == "twfe" else "none (2x2 regression)",
    }


# ---- event study and pre-trends ---------------------------------------------------------


@dataclass(frozen=True)
class _Bin:
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"treated x rel[{self.first},{self.last}]"


def _event_bins(n_pre: int, n_post: int, max_bins: int | None) -> list[_Bin]:
    bins: list[_Bin] = []
    n_leads = n_pre - 1  # relative periods -n_pre .. -2; -1 is the reference
    width = 1 if max_bins is None or n_leads == 0 else math.ceil(n_leads / max_bins)
    start = -2
    while start >= -n_pre:
        end = max(start - width + 1, -n_pre)
        bins.append(_Bin(end, start))
        start = end - 1
    width = 1 if max_bins is None else math.ceil(n_post / max_bins)
    for first in range(0, n_post, width):
        bins.append(_Bin(first, min(first + width - 1, n_post - 1)))
    return sorted(bins, key=lambda b: b.first)


def _event_details(
    panel: _Panel,
    design: str,
    alpha: float,
    max_bins: int | None,
    scale: float,
    ri_options: tuple[int, int] | None,
) -> dict[str, Any]:
    bins = _event_bins(panel.n_pre, panel.n_post, max_bins)
    fe = _FixedEffects(_group_codes(panel, design), panel.time)
    dummies = [panel.treated * ((panel.rel >= b.first) & (panel.rel <= b.last)) for b in bins]
    x = np.column_stack([*dummies, panel.covariates])
    fit = _ols(panel.y, x, [b.name for b in bins] + _cov_names(panel), fe=fe, cluster=panel.cluster)
    rows = []
    for j, b in enumerate(bins):
        est, se = float(fit.coef[j]), float(math.sqrt(fit.vcov[j, j]))
        p, lo, hi = _t_inference(est, se, fit.df, alpha)
        mid = (b.first + b.last) / 2
        rows.append((mid, b.first, b.last, est * scale, se * scale, lo * scale, hi * scale, p))
    columns = ["relative_period", "period_first", "period_last", "estimate", "std_error"]
    table = pd.DataFrame(rows, columns=[*columns, "ci_lower", "ci_upper", "p_value"])
    leads = [j for j, b in enumerate(bins) if b.last < 0]
    notes: list[str] = []
    joint_p = _joint_wald(fit, leads, panel.n_clusters, notes)
    linear_p = _linear_pre_trend(panel, design, notes, ri_options)
    test = "linear differential pre-trend, 1-df t-test on the pre-period rows"
    if ri_options is not None:
        test += " (randomization p-value of |t|, treated units permuted)"
    return {
        "event_study": table,
        "reference_period": -1,
        "event_window_bins": max_bins,
        "pre_trend_p_value": linear_p,
        "pre_trend_test": test,
        "pre_trend_joint_p_value": joint_p,
        "pre_trend_joint_n_leads": len(leads),
        "pre_trend_notes": notes,
    }


def _joint_wald(fit: _Fit, leads: list[int], n_clusters: int | None, notes: list[str]) -> float:
    q = len(leads)
    if q == 0:
        notes.append("joint test: no leads (needs at least two pre-periods)")
        return math.nan
    if n_clusters is not None and q > n_clusters - 1:
        notes.append(f"joint test: {q} leads exceed G-1 = {n_clusters - 1}; use fewer bins")
        return math.nan
    b = fit.coef[leads]
    v = fit.vcov[np.ix_(leads, leads)]
    if np.linalg.matrix_rank(v) < q:
        notes.append("joint test: the leads' covariance is singular")
        return math.nan
    wald = float(b @ np.linalg.solve(v, b))
    return float(stats.f.sf(wald / q, q, fit.df))


def _linear_pre_trend(
    panel: _Panel, design: str, notes: list[str], ri_options: tuple[int, int] | None
) -> float:
    if panel.n_pre < 2:
        notes.append("linear pre-trend test: needs at least two pre-periods")
        return math.nan
    pre = panel.post == 0
    groups = pd.factorize(_group_codes(panel, design)[pre])[0].astype(np.int64)
    times = pd.factorize(panel.time[pre])[0].astype(np.int64)
    cluster = None
    if panel.cluster is not None:
        cluster = pd.factorize(panel.cluster[pre])[0].astype(np.int64)
        if cluster.max() < 1:
            notes.append("linear pre-trend test: fewer than 2 clusters in the pre-period")
            return math.nan
    trend = panel.treated[pre] * panel.rel[pre]
    x = np.column_stack([trend, panel.covariates[pre]])
    names = ["treated x pre-period trend", *_cov_names(panel)]
    try:
        fit = _ols(panel.y[pre], x, names, fe=_FixedEffects(groups, times), cluster=cluster)
    except ValueError as exc:
        notes.append(f"linear pre-trend test not computed: {exc}")
        return math.nan
    se = math.sqrt(fit.vcov[0, 0])
    if se == 0:
        return math.nan
    if ri_options is None:
        return float(2 * stats.t.sf(abs(fit.coef[0]) / se, fit.df))
    sub = _subset(panel, pre)
    assignments = _assignments(sub, *ri_options)[0]
    return _PermutationDistribution(sub, assignments, exposure=sub.rel.astype(float)).p_value(0.0)


def _subset(panel: _Panel, rows: npt.NDArray[np.bool_]) -> _Panel:
    """The panel restricted to pre-period `rows`, with its codes renumbered densely."""
    unit, kept_units = pd.factorize(panel.unit[rows])
    cluster = None if panel.cluster is None else pd.factorize(panel.cluster[rows])[0]
    time = pd.factorize(panel.time[rows], sort=True)[0].astype(np.int64)
    unit_treated = panel.unit_treated[np.asarray(kept_units)]
    return _Panel(
        y=panel.y[rows],
        treated=panel.treated[rows],
        post=panel.post[rows],
        unit=unit.astype(np.int64),
        time=time,
        rel=panel.rel[rows],
        n_pre=int(time.max()) + 1,
        n_post=0,
        covariates=panel.covariates[rows],
        covariate_names=panel.covariate_names,
        cluster=None if cluster is None else cluster.astype(np.int64),
        n_units=len(kept_units),
        n_treated_units=int(unit_treated.sum()),
        unit_treated=unit_treated,
    )


# ---- randomization inference -------------------------------------------------------------


@dataclass(frozen=True)
class _Randomization:
    p_value: float
    ci_lower: float
    ci_upper: float
    std_error: float
    summary: dict[str, Any]


class _PermutationDistribution:
    """|t| of every assignment k as a function of the null effect tau0.

    D_k = treated_k x exposure (exposure = post for the effect, the relative period on the
    pre-period rows for the linear pre-trend test).
    Testing "effect = tau0" uses the outcome y - tau0 * D_obs. Its coefficient on assignment
    k's treated x post is a_k - tau0 * b_k (b_k: the coefficient of D_obs on D_k), and its
    residuals r_k - tau0 * q_k, so its squared standard error is a quadratic in tau0
    (classical or CR1, up to constants shared by all k, which cancel in the ranking). One
    pass over the assignments thus serves every tau0. Index 0 is the observed assignment.
    """

    def __init__(
        self,
        panel: _Panel,
        assignments: Iterable[tuple[int, ...]],
        exposure: FloatArray | None = None,
    ) -> None:
        exposure = panel.post if exposure is None else exposure
        fe = _FixedEffects(panel.unit, panel.time)
        covs = fe.residualize(panel.covariates) if panel.covariates.shape[1] else None
        q_cov = np.linalg.qr(covs)[0] if covs is not None else None
        d_obs = panel.treated * exposure
        y_c, d_c = fe.residualize(np.column_stack([panel.y, d_obs])).T
        if q_cov is not None:
            y_c = y_c - q_cov @ (q_cov.T @ y_c)
            d_c = d_c - q_cov @ (q_cov.T @ d_c)
        clusters = None
        if panel.cluster is not None:
            n = len(panel.y)
            clusters = sparse.csr_matrix(
                (np.ones(n), (panel.cluster, np.arange(n))), shape=(panel.n_clusters or 0, n)
            )
        parts: list[FloatArray] = []
        for chunk in _chunks(assignments, _RI_CHUNK):
            which = np.zeros((panel.n_units, len(chunk)))
            for k, units in enumerate(chunk):
                which[list(units), k] = 1.0
            d = fe.residualize(which[panel.unit] * exposure[:, None])
            if q_cov is not None:
                d -= q_cov @ (q_cov.T @ d)
            parts.append(_assignment_terms(d, y_c, d_c, clusters))
        terms = np.concatenate(parts, axis=1)
        keep = terms[0] > 1e-10 * len(panel.y)  # assignments collinear with the FE carry no test
        keep[0] = True
        self.ss, self.a, self.b, self.v0, self.v1, self.v2 = terms[:, keep]
        self.clustered = clusters is not None

    @property
    def n(self) -> int:
        return int(self.a.size)

    def statistics(self, tau0: float) -> FloatArray:
        numerator = np.abs(self.a - tau0 * self.b)
        variance = np.maximum(self.v0 - 2 * tau0 * self.v1 + tau0**2 * self.v2, 0.0)
        se = np.sqrt(variance) / (self.ss if self.clustered else np.sqrt(self.ss))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, numerator / se, np.where(numerator > 0, np.inf, 0.0))

    def p_value(self, tau0: float) -> float:
        values = self.statistics(tau0)
        return float(np.mean(values >= values[0] * (1 - 1e-9)))


def _assignment_terms(
    d: FloatArray, y: FloatArray, d_obs: FloatArray, clusters: sparse.csr_matrix | None
) -> FloatArray:
    """Rows ss, a, b, v0, v1, v2 (module notation) for the residualized assignments d."""
    ss = np.einsum("ij,ij->j", d, d)
    safe = np.where(ss > 0, ss, 1.0)
    a = (d.T @ y) / safe
    b = (d.T @ d_obs) / safe
    r = y[:, None] - d * a
    q = d_obs[:, None] - d * b
    if clusters is not None:
        r, q = clusters @ (d * r), clusters @ (d * q)
    v0 = np.einsum("ij,ij->j", r, r)
    v1 = np.einsum("ij,ij->j", r, q)
    v2 = np.einsum("ij,ij->j", q, q)
    return np.vstack([ss, a, b, v0, v1, v2])


def _chunks(items: Iterable[tuple[int, ...]], size: int) -> Iterable[list[tuple[int, ...]]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _assignments(
    panel: _Panel, n_permutations: int, seed: int
) -> tuple[Iterable[tuple[int, ...]], bool]:
    """The observed assignment first, then all others or a random sample of others."""
    observed = tuple(int(u) for u in np.flatnonzero(panel.unit_treated))
    n_total = math.comb(panel.n_units, panel.n_treated_units)
    if n_total <= n_permutations:
        combos = itertools.combinations(range(panel.n_units), panel.n_treated_units)
        return itertools.chain([observed], (c for c in combos if c != observed)), True
    rng = np.random.default_rng(seed)
    draws = (
        tuple(sorted(int(u) for u in rng.choice(panel.n_units, panel.n_treated_units, False)))
        for _ in range(n_permutations - 1)
    )
    return itertools.chain([observed], draws), False


def _randomization_inference(
    panel: _Panel, estimate: float, analytic_se: float, alpha: float, n_perm: int, seed: int
) -> _Randomization:
    n_total = math.comb(panel.n_units, panel.n_treated_units)
    if min(n_total, n_perm) * alpha < 1:
        raise ValueError(
            f"randomization inference: only {n_total} ways to choose the "
            f"{panel.n_treated_units} treated unit(s) among {panel.n_units} (or "
            f"n_permutations={n_perm}), so no p-value can fall below alpha={alpha}; it needs "
            f"at least {math.ceil(1 / alpha)}"
        )
    assignments, exhaustive = _assignments(panel, n_perm, seed)
    dist = _PermutationDistribution(panel, assignments)
    scale = analytic_se if analytic_se > 0 else max(abs(estimate), 1.0)
    lower = _ri_bound(dist, estimate, alpha, -scale)
    upper = _ri_bound(dist, estimate, alpha, scale)
    z = float(stats.norm.ppf(1 - alpha / 2))
    summary = {
        "statistic": "|t| of treated x post (CR1 or classical SE) under permuted treated units",
        "n_assignments": dist.n,
        "exhaustive": exhaustive,
        "p_value_resolution": 1 / dist.n,
        "ci_method": "inversion of the sharp-null test (outcome - tau0 x treated x post), "
        "bisection from the estimate outwards",
        "std_error_note": "approximation: interval half-width / z_{1-alpha/2}",
    }
    return _Randomization(
        p_value=dist.p_value(0.0),
        ci_lower=lower,
        ci_upper=upper,
        std_error=(upper - lower) / (2 * z),
        summary=summary,
    )


def _ri_bound(dist: _PermutationDistribution, estimate: float, alpha: float, step: float) -> float:
    """The interval end on the side of `step`: the first tau0 out from `estimate` rejected."""
    inside = estimate
    outside = estimate + step
    for _ in range(60):
        if dist.p_value(outside) <= alpha:
            break
        inside, outside = outside, estimate + 2 * (outside - estimate)
    else:
        return math.copysign(math.inf, step)
    tol = 1e-9 * abs(step)
    while abs(outside - inside) > tol:
        mid = (inside + outside) / 2
        if dist.p_value(mid) <= alpha:
            outside = mid
        else:
            inside = mid
    return (inside + outside) / 2
