"""Input checks shared by the estimators: each failure names the problem in plain words."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def require_frame(df: object, *, what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise ValueError(f"{what} is empty: there is nothing to estimate from")
    return df


def require_columns(df: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what} is missing column(s) {missing}; it has {sorted(map(str, df.columns))}"
        )


def require_no_nans(df: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    for column in columns:
        n = int(df[column].isna().sum())
        if n:
            raise ValueError(f"{what} column {column!r} has {n} missing (NaN) value(s)")


def require_numeric(df: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    for column in columns:
        if not (
            pd.api.types.is_numeric_dtype(df[column]) or pd.api.types.is_bool_dtype(df[column])
        ):
            raise ValueError(
                f"{what} column {column!r} must be numeric, got dtype {df[column].dtype}"
            )


def require_binary(df: pd.DataFrame, column: str, *, what: str) -> pd.Series:
    """A 0/1 or boolean column as integers; anything else is an error."""
    values = set(pd.unique(df[column]))
    if not values <= {0, 1}:
        shown = sorted(map(str, values))[:5]
        raise ValueError(f"{what} column {column!r} must be 0/1 or boolean, got {shown}")
    return df[column].astype(int)


def require_variance(values: pd.Series | np.ndarray, *, name: str) -> None:
    if float(np.nanvar(np.asarray(values, dtype=float))) == 0.0:
        raise ValueError(f"{name} has zero variance: every value is the same")


def require_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
