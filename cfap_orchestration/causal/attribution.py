"""Path-based multi-touch attribution: Shapley, first-order Markov and heuristic credit.

Input: one row per distinct journey path (or per journey; rows with the same path are summed),
with the ordered channel sequence (a list of names or a string "a > b > c"), its conversions
and, optionally, its non-converting journeys and conversion value. `paths_from_journeys`
collapses the journey-level mart `marts.fct_conversion_paths` into that shape.

Estimands (each a descriptive allocation of the observed conversions, not a causal effect;
a channel's incremental conversions need an experiment):

- Shapley: the cooperative game whose coalition value v(S) is the conversions of journeys
  whose set of distinct channels lies within S. Credits are the exact Shapley values over all
  channels (v for all 2^k coalitions by a subset-sum / zeta transform over bitmasks), so they
  sum to the total conversions. v is a sum of unanimity games, one per path, so the Shapley
  value equals each path's conversions split equally over its distinct channels; the
  bootstrap uses that linear form (identical numbers, checked in the tests). Non-converting
  journeys carry no value in this game. At most `MAX_SHAPLEY_CHANNELS` (20) channels.
- Markov: a first-order absorbing chain start -> channels -> {conversion, null} estimated from
  transition counts (a path adds start -> c1 -> ... -> ck -> conversion once per conversion
  and -> null once per non-converting journey). P(conversion) from start is solved exactly
  from (I - Q) x = r; the removal effect of c is 1 - P_conv(without c) / P_conv, where removing
  c redirects every transition into c to null; equivalently RE_c = P(the chain visits c |
  it converts). Attributed conversions = total conversions * RE_c / sum RE (the standard
  normalisation, since removal effects overlap and add to more than one); value uses the same
  shares of the total value. Repeated touches of one channel are kept as self-loops: they do
  not change absorption probabilities, hence not the removal effects. Without non-converting
  counts the chain only sees converting journeys, so P_conv = 1 and RE_c is simply the share
  of converting journeys that pass through c: channels that lead journeys nowhere are not
  penalised. Pass `null_col` whenever the data has them. At most `MAX_MARKOV_CHANNELS` (100).
- Heuristics: first touch, last touch and linear (equal credit per touch, repeats counted).

Inference (`attribution_intervals`): percentile bootstrap over journeys. Each draw resamples
the journey counts of the distinct paths from one multinomial: with non-converting counts the
cells are (path, converted) and (path, not converted) with the total number of journeys fixed,
so the total of conversions varies as in a new sample of the same number of journeys; without
them, only converting journeys are resampled and the interval conditions on the observed total
of conversions (it reflects how the conversions split across paths, not how many there were).
Standard errors are the bootstrap standard deviations. All draws are vectorised: Shapley is
linear in the path counts; Markov solves one small batched fundamental matrix per draw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from math import factorial
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse

from cfap_orchestration.causal._validation import (
    require_alpha,
    require_binary,
    require_columns,
    require_frame,
    require_no_nans,
    require_numeric,
)

MAX_SHAPLEY_CHANNELS = 20
MAX_MARKOV_CHANNELS = 100
PATH_SEPARATOR = ">"
PATH_JOIN = " > "
MIN_BOOTSTRAP = 20
# bootstrap draws are processed in blocks of at most this many resampled cell counts
_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class _PathData:
    """Distinct paths as channel indices into the sorted `channels`, with summed counts."""

    channels: tuple[str, ...]
    sequences: tuple[tuple[int, ...], ...]
    conversions: np.ndarray
    nulls: np.ndarray | None
    value: np.ndarray | None

    @property
    def k(self) -> int:
        return len(self.channels)


# ---- input ---------------------------------------------------------------------------


def _parse_path(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        names = raw.split(PATH_SEPARATOR)
    elif isinstance(raw, list | tuple | np.ndarray):
        names = list(raw)
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise ValueError(
                f"channel names must be strings; path {names!r} holds {bad[0]!r} "
                f"({type(bad[0]).__name__})"
            )
        if any(PATH_SEPARATOR in n for n in names):
            raise ValueError(f"channel names must not contain {PATH_SEPARATOR!r}: {names!r}")
    else:
        raise ValueError(
            "a path must be a list of channel names or a string like 'a > b', "
            f"got {type(raw).__name__}: {raw!r}"
        )
    tokens = tuple(n.strip() for n in names)
    if not tokens or tokens == ("",):
        raise ValueError(f"paths holds an empty path ({raw!r}): every journey needs a touch")
    if "" in tokens:
        raise ValueError(f"path {raw!r} has an empty channel name")
    return tokens


def _parse_column(values: Iterable[object]) -> list[tuple[str, ...]]:
    cache: dict[str, tuple[str, ...]] = {}
    parsed = []
    for raw in values:
        if isinstance(raw, str):
            if raw not in cache:
                cache[raw] = _parse_path(raw)
            parsed.append(cache[raw])
        else:
            parsed.append(_parse_path(raw))
    return parsed


def _amounts(df: pd.DataFrame, column: str, *, what: str) -> np.ndarray:
    require_numeric(df, [column], what=what)
    values = df[column].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{what} column {column!r} has infinite value(s)")
    negative = int((values < 0).sum())
    if negative:
        raise ValueError(f"{what} column {column!r} has {negative} negative value(s)")
    return values


def _prepare(
    paths: object,
    *,
    path_col: str,
    conversions_col: str,
    null_col: str | None,
    value_col: str | None,
    max_channels: int | None,
    method: str,
) -> _PathData:
    df = require_frame(paths, what="paths")
    numeric = [c for c in (conversions_col, null_col, value_col) if c is not None]
    require_columns(df, [path_col, *numeric], what="paths")
    require_no_nans(df, [path_col, *numeric], what="paths")
    amounts = {c: _amounts(df, c, what="paths") for c in numeric}
    parsed = _parse_column(df[path_col])
    index: dict[tuple[str, ...], int] = {}
    codes = np.array([index.setdefault(p, len(index)) for p in parsed], dtype=np.int64)

    def summed(column: str | None) -> np.ndarray | None:
        if column is None:
            return None
        return np.bincount(codes, weights=amounts[column], minlength=len(index))

    channels = tuple(sorted({c for p in index for c in p}))
    if max_channels is not None and len(channels) > max_channels:
        raise ValueError(
            f"{method} supports at most {max_channels} channels, the paths hold {len(channels)}; "
            "group rare channels together first"
        )
    conversions = np.bincount(codes, weights=amounts[conversions_col], minlength=len(index))
    if conversions.sum() <= 0:
        raise ValueError(
            f"paths column {conversions_col!r} sums to zero: there are no conversions to attribute"
        )
    position = {c: i for i, c in enumerate(channels)}
    return _PathData(
        channels=channels,
        sequences=tuple(tuple(position[c] for c in p) for p in index),
        conversions=conversions,
        nulls=summed(null_col),
        value=summed(value_col),
    )


def paths_from_journeys(
    journeys: pd.DataFrame,
    *,
    path_col: str = "path",
    converted_col: str = "conversions",
    value_col: str | None = None,
) -> pd.DataFrame:
    """Collapse one-row-per-journey data (e.g. `marts.fct_conversion_paths`) to distinct paths.

    Parameters: `path_col` holds the ordered touches (list or "a > b" string),
    `converted_col` is 0/1 (or boolean), `value_col` the conversion value (optional).

    Returns columns `path` (normalised "a > b > c" string), `conversions`,
    `non_conversions` and, when `value_col` is given, `value` (summed over all journeys of
    the path), sorted by path. Feed it to the estimators with
    `null_col="non_conversions", value_col="value"`.
    """
    df = require_frame(journeys, what="journeys")
    columns = [path_col, converted_col] + ([value_col] if value_col is not None else [])
    require_columns(df, columns, what="journeys")
    require_no_nans(df, columns, what="journeys")
    converted = require_binary(df, converted_col, what="journeys").to_numpy()
    frame = pd.DataFrame(
        {
            "path": [PATH_JOIN.join(p) for p in _parse_column(df[path_col])],
            "conversions": converted,
            "non_conversions": 1 - converted,
        }
    )
    if value_col is not None:
        frame["value"] = _amounts(df, value_col, what="journeys")
    return frame.groupby("path", sort=True, as_index=False).sum()


def _frame(data: _PathData, conversions: np.ndarray, value: np.ndarray | None) -> pd.DataFrame:
    out = pd.DataFrame({"channel": list(data.channels), "conversions": conversions})
    if value is not None:
        out["value"] = value
    return out


# ---- Shapley -------------------------------------------------------------------------


def _channel_masks(data: _PathData) -> np.ndarray:
    return np.array([sum(1 << c for c in set(s)) for s in data.sequences], dtype=np.int64)


def _shapley_exact(masks: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Exact Shapley values of v(S) = sum of `weights` of paths whose channel set is within S."""
    v = np.bincount(masks, weights=weights, minlength=1 << k).astype(float)
    for i in range(k):  # zeta transform: v[S] becomes the sum over all subsets of S
        view = v.reshape(-1, 2, 1 << i)
        view[:, 1, :] += view[:, 0, :]
    all_masks = np.arange(1 << k)
    sizes = sum((all_masks >> i) & 1 for i in range(k))
    coef = np.array([factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)])
    phi = np.empty(k)
    for i in range(k):
        pairs = v.reshape(-1, 2, 1 << i)
        without = np.asarray(sizes).reshape(-1, 2, 1 << i)[:, 0, :]
        phi[i] = float(np.sum(coef[without] * (pairs[:, 1, :] - pairs[:, 0, :])))
    return phi


def _shapley_split_matrix(data: _PathData) -> sparse.csr_matrix:
    """Paths x channels: 1/|set| for each distinct channel of the path (the unanimity form)."""
    rows, cols, vals = [], [], []
    for p, seq in enumerate(data.sequences):
        distinct = sorted(set(seq))
        rows += [p] * len(distinct)
        cols += distinct
        vals += [1.0 / len(distinct)] * len(distinct)
    shape = (len(data.sequences), data.k)
    return sparse.csr_matrix((vals, (rows, cols)), shape=shape)


def shapley_attribution(
    paths: pd.DataFrame,
    *,
    path_col: str = "path",
    conversions_col: str = "conversions",
    value_col: str | None = None,
) -> pd.DataFrame:
    """Exact Shapley attribution of conversions (and value) to channels.

    Parameters: `paths` has one row per path (duplicates summed); `path_col` the channel
    sequence (list or "a > b" string); `conversions_col` its conversions; `value_col` its
    conversion value (optional: the same game played on value). Rows without conversions
    are allowed and change nothing (a channel seen only there gets zero).

    Returns columns `channel`, `conversions` (and `value`), one row per channel sorted by
    channel name; the credits sum to the total conversions (value). `attrs` holds `method`
    and `total_conversions`. Raises ValueError above `MAX_SHAPLEY_CHANNELS` channels.
    """
    data = _prepare(
        paths,
        path_col=path_col,
        conversions_col=conversions_col,
        null_col=None,
        value_col=value_col,
        max_channels=MAX_SHAPLEY_CHANNELS,
        method="Shapley attribution",
    )
    masks = _channel_masks(data)
    value = None if data.value is None else _shapley_exact(masks, data.value, data.k)
    out = _frame(data, _shapley_exact(masks, data.conversions, data.k), value)
    out.attrs.update(method="shapley", total_conversions=float(data.conversions.sum()))
    return out


# ---- Markov --------------------------------------------------------------------------
# States: 0 = start, 1..k = channels, k + 1 = conversion, k + 2 = null. Transient: 0..k.


def _edge_incidence(data: _PathData) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Paths x edges counts of each path's transitions, ending in conversion / in null."""
    k = data.k
    width = k + 3
    rows, cols, last = [], [], []
    for p, seq in enumerate(data.sequences):
        states = [0, *(c + 1 for c in seq)]
        rows += [p] * (len(states) - 1)
        cols += [a * width + b for a, b in pairwise(states)]
        last.append(states[-1] * width)
    n_paths, n_edges = len(data.sequences), (k + 1) * width
    shared = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_paths, n_edges)).tocsr()
    ends = np.array(last, dtype=np.int64)
    index = np.arange(n_paths)
    ones = np.ones(n_paths)
    to_conv = sparse.csr_matrix((ones, (index, ends + k + 1)), shape=(n_paths, n_edges))
    to_null = sparse.csr_matrix((ones, (index, ends + k + 2)), shape=(n_paths, n_edges))
    return (shared + to_conv).tocsr(), (shared + to_null).tocsr()


def _transition_counts(
    incidence: tuple[sparse.csr_matrix, sparse.csr_matrix],
    conversions: np.ndarray,
    nulls: np.ndarray | None,
    k: int,
) -> np.ndarray:
    """(draws, k + 1, k + 3) transition counts for (draws, paths) conversion / null counts."""
    conv_inc, null_inc = incidence
    counts = np.asarray((conv_inc.T @ np.atleast_2d(conversions).T).T)
    if nulls is not None:
        counts = counts + np.asarray((null_inc.T @ np.atleast_2d(nulls).T).T)
    return counts.reshape(-1, k + 1, k + 3)


def _absorbing_parts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q (transient -> transient) and r (transient -> conversion) from transition counts.

    A state never left in the data (a channel absent from a bootstrap draw) gets a zero row,
    i.e. a row of the identity in I - Q: it is unreachable anyway.
    """
    n_transient = counts.shape[-2]
    totals = counts.sum(axis=-1, keepdims=True)
    probs = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return probs[..., :n_transient], probs[..., n_transient]


def _markov_removal(q: np.ndarray, r: np.ndarray) -> tuple[float, np.ndarray]:
    """P(conversion) from start and every channel's removal effect, by definition."""
    n = q.shape[0]
    eye = np.eye(n)
    p_conv = float(np.linalg.solve(eye - q, r)[0])
    without = np.empty(n - 1)
    for c in range(1, n):
        removed = q.copy()
        removed[:, c] = 0.0  # transitions into c now end in null
        without[c - 1] = np.linalg.solve(eye - removed, r)[0]
    return p_conv, np.maximum(1.0 - without / p_conv, 0.0)


def _markov_credits_batch(counts: np.ndarray) -> np.ndarray:
    """Credit shares (draws, k) from the fundamental matrix G = (I - Q)^-1 of each draw.

    P(conv) - P(conv without c) = P(visit c) * P(conv | at c) = G[s, c] / G[c, c] * x_c:
    one inverse per draw gives every removal effect; the shares are these over their sum.
    """
    q, r = _absorbing_parts(counts)
    g = np.linalg.inv(np.eye(q.shape[-1]) - q)
    x = np.einsum("bij,bj->bi", g, r)
    visit = g[:, 0, 1:] / np.diagonal(g, axis1=1, axis2=2)[:, 1:]
    joint = visit * x[:, 1:]
    total = joint.sum(axis=1, keepdims=True)
    return np.divide(joint, total, out=np.zeros_like(joint), where=total > 0)


def _markov_point(data: _PathData) -> tuple[float, np.ndarray]:
    counts = _transition_counts(_edge_incidence(data), data.conversions, data.nulls, data.k)
    q, r = _absorbing_parts(counts[0])
    return _markov_removal(q, r)


def markov_attribution(
    paths: pd.DataFrame,
    *,
    path_col: str = "path",
    conversions_col: str = "conversions",
    null_col: str | None = None,
    value_col: str | None = None,
) -> pd.DataFrame:
    """First-order Markov (removal effect) attribution of conversions and value.

    Parameters: as `shapley_attribution`, plus `null_col`, the number of non-converting
    journeys of each path. Without it the chain knows only converting journeys (P_conv = 1,
    removal effect = share of converting journeys through the channel; see the module
    docstring). `value_col` is split with the same shares as the conversions.

    Returns columns `channel`, `conversions` (and `value`), sorted by channel name, summing
    to the totals. `attrs` holds `method`, `p_conversion` (P(conversion) from start),
    `removal_effects` ({channel: 1 - P_conv(without c) / P_conv}) and `total_conversions`.
    """
    data = _prepare(
        paths,
        path_col=path_col,
        conversions_col=conversions_col,
        null_col=null_col,
        value_col=value_col,
        max_channels=MAX_MARKOV_CHANNELS,
        method="Markov attribution",
    )
    p_conv, removal = _markov_point(data)
    shares = removal / removal.sum()
    total = float(data.conversions.sum())
    value = None if data.value is None else float(data.value.sum()) * shares
    out = _frame(data, total * shares, value)
    out.attrs.update(
        method="markov",
        p_conversion=p_conv,
        removal_effects=dict(zip(data.channels, map(float, removal), strict=True)),
        total_conversions=total,
    )
    return out


def markov_transition_matrix(
    paths: pd.DataFrame,
    *,
    path_col: str = "path",
    conversions_col: str = "conversions",
    null_col: str | None = None,
) -> pd.DataFrame:
    """The estimated transition probabilities of the Markov chain (a diagnostic).

    Rows: `start` and each channel; columns: each channel, `conversion` and `null`.
    """
    data = _prepare(
        paths,
        path_col=path_col,
        conversions_col=conversions_col,
        null_col=null_col,
        value_col=None,
        max_channels=MAX_MARKOV_CHANNELS,
        method="Markov attribution",
    )
    counts = _transition_counts(_edge_incidence(data), data.conversions, data.nulls, data.k)[0]
    totals = counts.sum(axis=1, keepdims=True)
    probs = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return pd.DataFrame(
        probs[:, 1:],
        index=["start", *data.channels],
        columns=[*data.channels, "conversion", "null"],
    )


# ---- heuristics ----------------------------------------------------------------------


def heuristic_attribution(
    paths: pd.DataFrame,
    *,
    path_col: str = "path",
    conversions_col: str = "conversions",
    value_col: str | None = None,
) -> pd.DataFrame:
    """First-touch, last-touch and linear credit, for comparison with the model-based ones.

    Returns columns `channel`, `first_touch`, `last_touch`, `linear` (conversions credited;
    linear splits each path's conversions equally over its touches, repeats counted), plus
    `first_touch_value`, `last_touch_value`, `linear_value` when `value_col` is given.
    Sorted by channel name; each column sums to the total.
    """
    data = _prepare(
        paths,
        path_col=path_col,
        conversions_col=conversions_col,
        null_col=None,
        value_col=value_col,
        max_channels=None,
        method="heuristic attribution",
    )
    first = np.array([s[0] for s in data.sequences])
    last = np.array([s[-1] for s in data.sequences])
    lengths = np.array([len(s) for s in data.sequences])
    touches = np.concatenate([np.asarray(s) for s in data.sequences])
    owner = np.repeat(np.arange(len(data.sequences)), lengths)
    out = pd.DataFrame({"channel": list(data.channels)})
    weights = {"": data.conversions} | ({} if data.value is None else {"_value": data.value})
    for suffix, w in weights.items():
        out[f"first_touch{suffix}"] = np.bincount(first, weights=w, minlength=data.k)
        out[f"last_touch{suffix}"] = np.bincount(last, weights=w, minlength=data.k)
        share = (w / lengths)[owner]
        out[f"linear{suffix}"] = np.bincount(touches, weights=share, minlength=data.k)
    return out


# ---- bootstrap -----------------------------------------------------------------------


def _require_whole_counts(data: _PathData, conversions_col: str, null_col: str | None) -> None:
    for name, counts in ((conversions_col, data.conversions), (null_col, data.nulls)):
        if counts is not None and not np.array_equal(counts, np.round(counts)):
            raise ValueError(
                f"paths column {name!r} must hold whole journey counts to be resampled "
                "by the bootstrap"
            )


def _bootstrap_draws(
    data: _PathData, n_boot: int, rng: np.random.Generator
) -> Iterable[tuple[np.ndarray, np.ndarray | None]]:
    """Blocks of resampled (conversions, nulls) path counts, one row per bootstrap draw."""
    cells = (
        data.conversions if data.nulls is None else np.concatenate([data.conversions, data.nulls])
    )
    n = int(cells.sum())  # whole counts, checked before
    probs = cells / cells.sum()
    block = max(1, _BLOCK_CELLS // len(cells))
    n_paths = len(data.sequences)
    for start in range(0, n_boot, block):
        draws = rng.multinomial(n, probs, size=min(block, n_boot - start)).astype(float)
        yield draws[:, :n_paths], (None if data.nulls is None else draws[:, n_paths:])


def _bootstrap_estimates(
    data: _PathData, method: str, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_boot, k) attributed conversions, one row per bootstrap draw."""
    split = _shapley_split_matrix(data) if method == "shapley" else None
    incidence = _edge_incidence(data) if method == "markov" else None
    blocks = []
    for conv, nulls in _bootstrap_draws(data, n_boot, rng):
        if split is not None:
            blocks.append(np.asarray((split.T @ conv.T).T))
        elif incidence is not None:
            shares = _markov_credits_batch(_transition_counts(incidence, conv, nulls, data.k))
            blocks.append(conv.sum(axis=1, keepdims=True) * shares)
    return np.vstack(blocks)


def attribution_intervals(
    paths: pd.DataFrame,
    *,
    method: Literal["shapley", "markov"],
    path_col: str = "path",
    conversions_col: str = "conversions",
    null_col: str | None = None,
    n_boot: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile-bootstrap intervals for the conversions attributed to each channel.

    Parameters: as the estimators; `method` "shapley" or "markov"; `null_col` the
    non-converting journeys of each path (recommended: with it the draws resample all
    journeys, so the total of conversions varies too; without it the interval conditions on
    the observed total); `n_boot` draws (at least 20); `alpha` for (1 - alpha) intervals;
    `seed` for the generator. Counts must be whole numbers.

    Returns columns `channel`, `conversions` (the point estimate of the method),
    `ci_lower`, `ci_upper` (bootstrap percentiles) and `std_error` (bootstrap standard
    deviation), sorted by channel name. `attrs` holds `method`, `n_boot`, `alpha`,
    `resampled` and `total_conversions`.
    """
    if method not in ("shapley", "markov"):
        raise ValueError(f"method must be 'shapley' or 'markov', got {method!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < MIN_BOOTSTRAP:
        raise ValueError(f"n_boot must be an integer >= {MIN_BOOTSTRAP}, got {n_boot!r}")
    require_alpha(alpha)
    data = _prepare(
        paths,
        path_col=path_col,
        conversions_col=conversions_col,
        null_col=null_col,
        value_col=None,
        max_channels=MAX_SHAPLEY_CHANNELS if method == "shapley" else MAX_MARKOV_CHANNELS,
        method=f"{method} attribution",
    )
    _require_whole_counts(data, conversions_col, null_col)
    total = float(data.conversions.sum())
    if method == "shapley":
        point = _shapley_exact(_channel_masks(data), data.conversions, data.k)
    else:
        removal = _markov_point(data)[1]
        point = total * removal / removal.sum()
    draws = _bootstrap_estimates(data, method, n_boot, np.random.default_rng(seed))
    lower, upper = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    out = pd.DataFrame(
        {
            "channel": list(data.channels),
            "conversions": point,
            "ci_lower": lower,
            "ci_upper": upper,
            "std_error": draws.std(axis=0, ddof=1),
        }
    )
    out.attrs.update(
        method=method,
        n_boot=n_boot,
        alpha=alpha,
        resampled="journeys" if data.nulls is not None else "converting journeys",
        total_conversions=total,
    )
    return out
