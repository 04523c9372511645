"""The result every estimator returns: one effect with its interval, in one shape."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

# Columns of `causal.lift_analysis_results` an estimate fills by itself; the caller adds
# run_id, model_version, subject, metric, incremental value/ROAS, params and created_at.
ESTIMATE_COLUMNS = (
    "model_name",
    "effect",
    "effect_relative",
    "ci_lower",
    "ci_upper",
    "p_value",
    "std_error",
    "n_obs",
    "diagnostics",
)


@dataclass(frozen=True)
class EffectEstimate:
    """An estimated causal effect with its (1 - alpha) interval.

    `effect` is in the outcome's units (revenue per unit-day, orders per recipient, ...);
    `effect_relative` is the effect over the counterfactual mean when the method defines
    one. `details` holds method-specific diagnostics (tables as DataFrames, scalars, dicts):
    the event study of DID, the donor weights of synthetic control, CUPED's theta.
    """

    effect: float
    ci_lower: float
    ci_upper: float
    p_value: float
    std_error: float
    n_obs: int
    method: str
    alpha: float = 0.05
    effect_relative: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def contains(self, value: float) -> bool:
        """Whether `value` lies inside the interval (bounds included)."""
        return self.ci_lower <= value <= self.ci_upper

    def to_record(self) -> dict[str, Any]:
        """The estimate as one `lift_analysis_results` row (diagnostics as JSON text)."""
        return {
            "model_name": self.method,
            "effect": float(self.effect),
            "effect_relative": _optional_float(self.effect_relative),
            "ci_lower": float(self.ci_lower),
            "ci_upper": float(self.ci_upper),
            "p_value": _optional_float(self.p_value),
            "std_error": _optional_float(self.std_error),
            "n_obs": int(self.n_obs),
            "diagnostics": diagnostics_json(self.details),
        }

    def to_frame(self) -> pd.DataFrame:
        """A one-row DataFrame of :meth:`to_record` (concatenate several for a table)."""
        return pd.DataFrame([self.to_record()], columns=list(ESTIMATE_COLUMNS))


def _optional_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def to_jsonable(value: Any) -> Any:
    """Details made JSON-safe: tables become lists of records, numpy scalars Python ones."""
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def diagnostics_json(details: dict[str, Any]) -> str:
    return json.dumps(to_jsonable(details), sort_keys=True)
