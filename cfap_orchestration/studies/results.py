"""The causal results tables: their explicit schemas and the rows a study writes.

`causal.lift_analysis_results` holds one row per estimate and `causal.causal_model_registry`
one row per fitted model configuration (DESIGN, "Data contracts"). A study replaces its
own slice of each table (its model and subjects), so re-running an analysis never
duplicates rows and never touches another method's. No Dagster imports.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from cfap_orchestration.causal.estimate import EffectEstimate, to_jsonable
from cfap_orchestration.warehouse import Warehouse

RESULTS_SCHEMA = "causal"


@dataclass(frozen=True)
class Column:
    name: str
    duckdb_type: str
    bigquery_type: str
    description: str


@dataclass(frozen=True)
class ResultTable:
    schema: str
    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column_types(self, dialect: str) -> list[tuple[str, str]]:
        """(name, type) pairs in `dialect` ("duckdb" or "bigquery"), for explicit DDL."""
        if dialect == "bigquery":
            return [(c.name, c.bigquery_type) for c in self.columns]
        return [(c.name, c.duckdb_type) for c in self.columns]

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with exactly this table's columns, in order; extra or missing ones fail."""
        missing = [c for c in self.column_names if c not in frame.columns]
        extra = [c for c in frame.columns if c not in self.column_names]
        if missing or extra:
            raise ValueError(
                f"{self.schema}.{self.name}: rows do not match the table's contract "
                f"(missing {missing}, unexpected {extra})"
            )
        return frame[self.column_names].reset_index(drop=True)


def _col(name: str, duckdb_type: str, description: str) -> Column:
    bigquery = {"VARCHAR": "STRING", "DOUBLE": "FLOAT64", "BIGINT": "INT64", "JSON": "JSON"}
    bq = bigquery.get(duckdb_type, "TIMESTAMP" if duckdb_type.startswith("TIMESTAMP") else "")
    return Column(name, duckdb_type, bq, description)


LIFT_ANALYSIS_RESULTS = ResultTable(
    RESULTS_SCHEMA,
    "lift_analysis_results",
    (
        _col("run_id", "VARCHAR", "Dagster run that produced the estimate"),
        _col("model_name", "VARCHAR", "estimator: difference_in_differences, cuped, ..."),
        _col("model_version", "VARCHAR", "version of the estimator's method"),
        _col("code_version", "VARCHAR", "version of the code that ran it"),
        _col("subject", "VARCHAR", "what was measured: experiment id, channel, calendar level"),
        _col("metric", "VARCHAR", "outcome the effect is on: revenue, orders, conversions"),
        _col("effect", "DOUBLE", "estimated effect, in the metric's units per unit of analysis"),
        _col("effect_relative", "DOUBLE", "effect over the counterfactual level"),
        _col("ci_lower", "DOUBLE", "lower bound of the (1 - alpha) interval of effect"),
        _col("ci_upper", "DOUBLE", "upper bound of the (1 - alpha) interval of effect"),
        _col("p_value", "DOUBLE", "two-sided p-value of no effect"),
        _col("std_error", "DOUBLE", "standard error of effect"),
        _col("incremental_value", "DOUBLE", "total incremental revenue (reporting currency)"),
        _col("incremental_roas", "DOUBLE", "incremental revenue per unit of spend"),
        _col("n_obs", "BIGINT", "observations the estimate used"),
        _col("diagnostics", "JSON", "method diagnostics (JSON)"),
        _col("params", "JSON", "analysis parameters (JSON)"),
        _col("created_at", "TIMESTAMP WITH TIME ZONE", "when the row was written"),
    ),
)

CAUSAL_MODEL_REGISTRY = ResultTable(
    RESULTS_SCHEMA,
    "causal_model_registry",
    (
        _col("model_name", "VARCHAR", "estimator"),
        _col("model_version", "VARCHAR", "version of the estimator's method"),
        _col("code_version", "VARCHAR", "version of the code that fitted it"),
        _col("params_hash", "VARCHAR", "sha256 of the canonical params JSON"),
        _col("params", "JSON", "parameters of the fit (JSON)"),
        _col("fitted_at", "TIMESTAMP WITH TIME ZONE", "when it was fitted"),
        _col("artifact_uri", "VARCHAR", "saved model, when the method has one"),
        _col("diagnostics", "JSON", "fit diagnostics (JSON)"),
    ),
)


@dataclass(frozen=True)
class StudyRow:
    """One estimate of a study, before run context is added."""

    subject: str
    metric: str
    estimate: EffectEstimate
    incremental_value: float | None = None
    incremental_roas: float | None = None


def canonical_json(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))


def params_hash(model_name: str, params: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{model_name}:{canonical_json(params)}".encode()).hexdigest()


@cache
def code_version() -> str:
    """The package version, with the git commit when running from a checkout."""
    try:
        base = version("cfap-orchestration")
    except PackageNotFoundError:
        base = "0+unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{sha}" if sha else base


def results_frame(
    rows: Sequence[StudyRow],
    *,
    run_id: str,
    model_name: str,
    model_version: str,
    params: Mapping[str, Any],
    created_at: datetime | None = None,
) -> pd.DataFrame:
    """`lift_analysis_results` rows for a study's estimates."""
    created = created_at or datetime.now(UTC)
    records = []
    for row in rows:
        estimate = row.estimate.to_record()
        records.append(
            {
                "run_id": run_id,
                "model_name": model_name,
                "model_version": model_version,
                "code_version": code_version(),
                "subject": row.subject,
                "metric": row.metric,
                **{k: estimate[k] for k in ("effect", "effect_relative", "ci_lower", "ci_upper")},
                "p_value": estimate["p_value"],
                "std_error": estimate["std_error"],
                "incremental_value": row.incremental_value,
                "incremental_roas": row.incremental_roas,
                "n_obs": estimate["n_obs"],
                "diagnostics": estimate["diagnostics"],
                "params": canonical_json(params),
                "created_at": created,
            }
        )
    return LIFT_ANALYSIS_RESULTS.conform(
        pd.DataFrame(records, columns=LIFT_ANALYSIS_RESULTS.column_names)
    )


def registry_frame(
    *,
    model_name: str,
    model_version: str,
    params: Mapping[str, Any],
    diagnostics: Mapping[str, Any],
    artifact_uri: str | None = None,
    fitted_at: datetime | None = None,
) -> pd.DataFrame:
    """The `causal_model_registry` row of one fit."""
    record = {
        "model_name": model_name,
        "model_version": model_version,
        "code_version": code_version(),
        "params_hash": params_hash(model_name, params),
        "params": canonical_json(params),
        "fitted_at": fitted_at or datetime.now(UTC),
        "artifact_uri": artifact_uri,
        "diagnostics": canonical_json(diagnostics),
    }
    return CAUSAL_MODEL_REGISTRY.conform(pd.DataFrame([record]))


def write_results(
    warehouse: Warehouse, *, model_name: str, results: pd.DataFrame, by_metric: bool = False
) -> None:
    """Replace this model's `lift_analysis_results` rows for the subjects in `results`
    (with `by_metric`, only those of its metrics: for models published by several assets)."""
    if results.empty:
        raise ValueError(f"{model_name}: the study produced no estimates to write")
    table = LIFT_ANALYSIS_RESULTS
    warehouse.replace_rows(
        table.schema,
        table.name,
        table.conform(results),
        column_types=table.column_types(warehouse.dialect),
        match={
            "model_name": [model_name],
            "subject": sorted(set(results["subject"])),
            **({"metric": sorted(set(results["metric"]))} if by_metric else {}),
        },
    )


def register_fit(warehouse: Warehouse, registry: pd.DataFrame) -> None:
    """Replace the registry rows of these models' fits with these parameters."""
    table = CAUSAL_MODEL_REGISTRY
    warehouse.replace_rows(
        table.schema,
        table.name,
        table.conform(registry),
        column_types=table.column_types(warehouse.dialect),
        match={
            "model_name": sorted(set(registry["model_name"])),
            "params_hash": list(registry["params_hash"]),
        },
    )


def write_study(
    warehouse: Warehouse,
    *,
    model_name: str,
    results: pd.DataFrame,
    registry: pd.DataFrame,
) -> None:
    """Replace this model's rows for these subjects, and its registry row for these params."""
    write_results(warehouse, model_name=model_name, results=results)
    register_fit(warehouse, registry)


def latest_fit(
    warehouse: Warehouse, model_name: str, *, converged_only: bool = False
) -> dict[str, Any]:
    """The most recent registry row of a model (with `converged_only`, of a converged fit:
    diagnostics `converged` true); an error naming the model when there is none."""
    table = CAUSAL_MODEL_REGISTRY
    if not warehouse.table_exists(table.schema, table.name):
        raise ValueError(f"{model_name} has never been fitted: causal_model_registry is empty")
    rows = warehouse.query(
        f"SELECT * FROM {warehouse.relation(table.schema, table.name)} WHERE model_name = ? "
        "ORDER BY fitted_at DESC",
        [model_name],
    )
    for row in rows.to_dict("records"):
        if not converged_only or json.loads(row["diagnostics"]).get("converged") is True:
            return {str(k): v for k, v in row.items()}
    which = "a converged fit" if converged_only else "a fit"
    raise ValueError(f"{model_name} has no {which} in causal_model_registry yet")
