"""Writing a study's rows and registry entry, and the metadata the UI shows for it."""

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from cfap_orchestration.studies.results import (
    StudyRow,
    params_hash,
    registry_frame,
    results_frame,
    write_study,
)
from cfap_orchestration.warehouse import Warehouse

SHOWN_COLUMNS = [
    "subject",
    "metric",
    "effect",
    "ci_lower",
    "ci_upper",
    "p_value",
    "effect_relative",
    "incremental_value",
    "incremental_roas",
    "n_obs",
]


def image_markdown(png: bytes, *, alt: str) -> dg.MetadataValue:
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def publish_study(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    *,
    model_name: str,
    model_version: str,
    rows: Sequence[StudyRow],
    params: Mapping[str, Any],
    diagnostics: Mapping[str, Any],
    plots: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write the rows and the registry entry; return the asset's metadata."""
    results = results_frame(
        rows,
        run_id=context.run.run_id,
        model_name=model_name,
        model_version=model_version,
        params=params,
    )
    registry = registry_frame(
        model_name=model_name,
        model_version=model_version,
        params=params,
        diagnostics=diagnostics,
    )
    write_study(warehouse, model_name=model_name, results=results, registry=registry)
    metadata: dict[str, Any] = {
        "results": dg.MetadataValue.md(_results_markdown(results)),
        "rows_written": len(results),
        "table": "causal.lift_analysis_results",
        "params_hash": params_hash(model_name, params),
        "model_version": model_version,
    }
    for name, png in (plots or {}).items():
        metadata[name] = image_markdown(png, alt=name)
    return metadata


def _results_markdown(results: pd.DataFrame) -> str:
    shown = results[SHOWN_COLUMNS]
    return shown.to_markdown(index=False, floatfmt=".4g")
