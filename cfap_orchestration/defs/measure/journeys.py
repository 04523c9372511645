"""Attribution of conversions to channels over visitor journeys, one asset per method."""

from typing import Any

import dagster as dg
from pydantic import Field

from cfap_orchestration.defs.measure.publish import publish_study
from cfap_orchestration.studies import plots
from cfap_orchestration.studies.journeys import (
    MODEL_NAMES,
    Method,
    attribution_rows,
    credits_by_method,
    load_paths,
)

PATHS = dg.AssetKey(["marts", "fct_conversion_paths"])
MODEL_VERSION = "1"
MIN_CONVERSIONS = 500  # below this, bootstrap shares swing by several points


class AttributionConfig(dg.Config):
    lookback_days: int = Field(
        default=90, ge=7, le=730, description="Journeys that ended in the last N loaded days."
    )
    n_boot: int = Field(default=300, ge=50, le=5000, description="Bootstrap draws.")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    seed: int = Field(default=0, description="Seed of the bootstrap.")
    min_conversions: int = Field(
        default=MIN_CONVERSIONS, ge=1, description="Fewer converting journeys block the asset."
    )


def _attribution_asset(method: Method, description: str) -> dg.AssetsDefinition:
    model_name = MODEL_NAMES[method]
    key = dg.AssetKey(["causal", model_name])

    @dg.asset(
        key=key,
        group_name="measure",
        deps=[PATHS],
        kinds={"python"},
        required_resource_keys={"warehouse"},
        code_version=MODEL_VERSION,
        check_specs=[
            dg.AssetCheckSpec(
                "enough_conversions",
                asset=key,
                blocking=True,
                description="Enough converting journeys in the window (run config "
                f"min_conversions, {MIN_CONVERSIONS} by default).",
            )
        ],
        description=description,
    )
    def attribution(
        context: dg.AssetExecutionContext, config: AttributionConfig
    ) -> dg.MaterializeResult:
        warehouse = context.resources.warehouse.get()
        window = load_paths(warehouse, lookback_days=config.lookback_days)
        rows = attribution_rows(
            window, method=method, n_boot=config.n_boot, alpha=config.alpha, seed=config.seed
        )
        by_method = credits_by_method(window)
        params: dict[str, Any] = {
            **config.model_dump(),
            "start_date": window.start.isoformat(),
            "end_date": window.end.isoformat(),
        }
        conversions = int(window.paths["conversions"].sum())
        metadata = publish_study(
            context,
            warehouse,
            model_name=model_name,
            model_version=MODEL_VERSION,
            rows=rows,
            params=params,
            diagnostics={
                "journeys": window.journeys,
                "conversions": conversions,
                "distinct_paths": len(window.paths),
            },
            plots={
                "attribution_by_method": plots.attribution_by_method_png(
                    by_method, title=f"Conversions credited, {window.start}..{window.end}"
                )
            },
        )
        metadata["credits_by_method"] = dg.MetadataValue.md(
            by_method.to_markdown(index=False, floatfmt=".1f")
        )
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name="enough_conversions",
                    passed=conversions >= config.min_conversions,
                    metadata={"conversions": conversions},
                )
            ],
        )

    return attribution


shapley_attribution = _attribution_asset(
    "shapley",
    "Conversions credited to each channel by the Shapley value of the journeys: a channel "
    "set is worth the conversions of journeys that touched only channels in it. Bootstrap "
    "intervals over journeys; compared with first/last touch, linear and Markov.",
)
markov_attribution = _attribution_asset(
    "markov",
    "Conversions credited to each channel by its removal effect in a first-order Markov "
    "chain of the journeys, converting and not (exact absorbing-chain algebra). Bootstrap "
    "intervals over journeys.",
)
