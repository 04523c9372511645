"""The media-mix model: a weekly refit, channel ROAS and contributions, and a budget plan.

`causal/mmm_fit` fits pymc-marketing's MMM on the weekly calendar mart, calibrated by the
geo experiments' readouts, and again without them for comparison; it saves each posterior
and registers it. A failed convergence check blocks the assets that publish from it. pymc
and pymc-marketing are imported inside the asset bodies so the code location loads
without them.
"""

import json
from datetime import date, timedelta
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from cfap_orchestration.artifacts import write_artifact
from cfap_orchestration.defs.measure.experiments import DID_KEY, SC_KEY
from cfap_orchestration.defs.measure.publish import image_markdown
from cfap_orchestration.settings import get_settings
from cfap_orchestration.studies import plots
from cfap_orchestration.studies.media_mix import (
    SPEND_COLUMNS,
    contribution_rows,
    control_columns,
    lift_tests_from_readouts,
    load_weekly,
    roas_rows,
)
from cfap_orchestration.studies.results import (
    latest_fit,
    params_hash,
    register_fit,
    registry_frame,
    results_frame,
    write_results,
)

FIT_KEY = dg.AssetKey(["causal", "mmm_fit"])
ROAS_KEY = dg.AssetKey(["causal", "mmm_channel_roas"])
CONTRIBUTIONS_KEY = dg.AssetKey(["causal", "mmm_contributions"])
BUDGET_KEY = dg.AssetKey(["causal", "mmm_budget_plan"])
MODEL_NAME = "media_mix_model"
MODEL_VERSION = "1"
MAX_R_HAT = 1.01
MIN_ESS = 400
DIAGNOSTICS = ("r_hat_max", "ess_bulk_min", "divergences", "sampling_seconds")
# Model names of the two fits: the production (calibrated) model and the comparison.
VARIANTS = {"calibrated": MODEL_NAME, "uncalibrated": f"{MODEL_NAME}_uncalibrated"}
MEDIA_MIX_ASSETS = (FIT_KEY, ROAS_KEY, CONTRIBUTIONS_KEY, BUDGET_KEY)
CHANNEL_OF_COLUMN = {column: channel for channel, column in SPEND_COLUMNS.items()}


class MediaMixConfig(dg.Config):
    draws: int = Field(default=1000, ge=100, le=20_000, description="Posterior draws per chain.")
    tune: int = Field(default=1000, ge=100, le=20_000, description="Tuning steps per chain.")
    chains: int = Field(default=2, ge=1, le=8)
    sampler: Literal["numpyro", "nutpie", "pymc"] = Field(
        default="numpyro", description="NUTS implementation (numpyro: JAX, the fast one)."
    )
    parameterisation: Literal["level", "model"] = Field(
        default="level",
        description="'level': sample in the better-scaled level coordinates (fast); 'model': "
        "in the model's own, as pymc-marketing does.",
    )
    adstock_max_lag: int = Field(default=8, ge=1, le=26, description="Weeks of carry-over.")
    yearly_seasonality: int = Field(default=2, ge=0, le=10, description="Fourier pairs.")
    calibrate: bool = Field(default=True, description="Use the geo readouts as lift tests.")
    seed: int = Field(default=0)
    max_r_hat: float = Field(
        default=MAX_R_HAT, ge=1.0, le=1.1, description="Convergence check: largest r-hat."
    )
    min_ess_bulk: int = Field(
        default=MIN_ESS, ge=1, description="Convergence check: smallest bulk ESS."
    )


def _fit(
    context: dg.AssetExecutionContext,
    weekly: pd.DataFrame,
    config: MediaMixConfig,
    lift_tests: pd.DataFrame | None,
) -> tuple[Any, dict[str, Any]]:
    """The fit and its diagnostics (those the registry and the convergence check use)."""
    from cfap_orchestration.causal.mmm import fit_mmm
    from cfap_orchestration.causal.mmm_sampling import use_jax_compilation_cache

    if config.sampler == "numpyro":
        use_jax_compilation_cache(get_settings().compile_cache_dir)
    context.log.info(
        f"fitting on {len(weekly)} weeks with "
        f"{0 if lift_tests is None else len(lift_tests)} lift test(s)"
    )
    result = fit_mmm(
        weekly,
        date="week_start",
        channels=list(SPEND_COLUMNS.values()),
        controls=control_columns(weekly),
        target="revenue",
        adstock_max_lag=config.adstock_max_lag,
        yearly_seasonality=config.yearly_seasonality,
        draws=config.draws,
        tune=config.tune,
        chains=config.chains,
        sampler=config.sampler,
        parameterisation=config.parameterisation,
        random_seed=config.seed,
        lift_tests=lift_tests,
        log=context.log.info,
    )
    diagnostics = result.diagnostics()
    found = {k: diagnostics[k] for k in DIAGNOSTICS}
    context.log.info(
        f"fitted in {found['sampling_seconds']:.1f} s: max r-hat {found['r_hat_max']:.4f}, "
        f"min bulk ESS {found['ess_bulk_min']:.0f}, {found['divergences']} divergences"
    )
    return result, found


def _converged(diagnostics: dict[str, Any], config: MediaMixConfig) -> bool:
    return bool(
        diagnostics["r_hat_max"] <= config.max_r_hat
        and diagnostics["divergences"] == 0
        and diagnostics["ess_bulk_min"] >= config.min_ess_bulk
    )


@dg.asset(
    key=FIT_KEY,
    group_name="measure",
    deps=[dg.AssetKey(["marts", "fct_marketing_calendar_daily"]), DID_KEY, SC_KEY],
    kinds={"python", "pymc"},
    required_resource_keys={"warehouse"},
    code_version=MODEL_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "converged",
            asset=FIT_KEY,
            blocking=True,
            description=f"Every fit: max r-hat <= {MAX_R_HAT}, no divergences, bulk ESS >= "
            f"{MIN_ESS} (configurable). A fit that fails publishes nothing: the assets "
            "downstream read only fits registered as converged.",
        )
    ],
    description=(
        "The Bayesian media-mix model (pymc-marketing: geometric adstock, logistic "
        "saturation, yearly seasonality, trend, holiday and peak-season controls) on weekly "
        "net revenue and paid spend, calibrated by the geo experiments' DID and synthetic "
        "control readouts as lift tests, and fitted again without them for comparison. "
        "Posteriors saved under $CFAP_HOME/models and registered in "
        "causal.causal_model_registry."
    ),
)
def mmm_fit(context: dg.AssetExecutionContext, config: MediaMixConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    weekly = load_weekly(warehouse)
    lift_tests, left_out = lift_tests_from_readouts(warehouse, weekly)
    for note in left_out:
        context.log.warning(f"not calibrated by: {note}")
    calibrate = config.calibrate and not lift_tests.empty
    params: dict[str, Any] = {
        **config.model_dump(),
        "first_week": weekly["week_start"].min().date().isoformat(),
        "last_week": weekly["week_start"].max().date().isoformat(),
        "lift_tests": lift_tests["experiment_id"].tolist() if calibrate else [],
    }
    folder = get_settings().models_dir / MODEL_NAME / params_hash(MODEL_NAME, params)
    tests = lift_tests.assign(channel=lift_tests["channel"].map(SPEND_COLUMNS))
    fits: dict[str, pd.DataFrame | None] = {"calibrated": tests} if calibrate else {}
    fits["uncalibrated"] = None
    found: dict[str, dict[str, Any]] = {}
    for variant, variant_tests in fits.items():
        result, found[variant] = _fit(context, weekly, config, variant_tests)
        path = folder / f"{variant}.nc"
        write_artifact(path, result.save)
        found[variant]["converged"] = _converged(found[variant], config)
        register_fit(
            warehouse,
            registry_frame(
                model_name=VARIANTS[variant],
                model_version=MODEL_VERSION,
                params={**params, "variant": variant},
                diagnostics=found[variant],
                artifact_uri=str(path),
            ),
        )
    return dg.MaterializeResult(
        metadata={
            "artifacts": str(folder),
            "lift_tests": dg.MetadataValue.md(lift_tests.to_markdown(index=False, floatfmt=".4g")),
            "lift_tests_left_out": dg.MetadataValue.md(
                "\n".join(f"- {note}" for note in left_out) or "none"
            ),
            "diagnostics": dg.MetadataValue.json(found),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="converged",
                passed=all(d["converged"] for d in found.values()),
                metadata={f"{v}_{k}": x for v, d in found.items() for k, x in d.items()},
            )
        ],
    )


def _latest(warehouse: Any, variant: str) -> tuple[Any, dict[str, Any]]:
    """The latest converged fit of a variant: its posterior and its params (a fit that failed
    its convergence check is registered, for the record, but never published from)."""
    from cfap_orchestration.causal.mmm import MMMResult

    fit = latest_fit(warehouse, VARIANTS[variant], converged_only=True)
    return MMMResult.load(fit["artifact_uri"]), json.loads(fit["params"])


def _variants(warehouse: Any) -> list[str]:
    """The calibrated fit when the latest run made one, and the uncalibrated one."""
    fit = latest_fit(warehouse, VARIANTS["uncalibrated"], converged_only=True)
    return (
        ["calibrated", "uncalibrated"]
        if json.loads(fit["params"])["lift_tests"]
        else ["uncalibrated"]
    )


def _result_params(params: dict[str, Any]) -> dict[str, Any]:
    last_day = date.fromisoformat(params["last_week"]) + timedelta(days=6)
    return {**params, "start_date": params["first_week"], "end_date": last_day.isoformat()}


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    """Spend-column channel names as the business's channel names."""
    return frame.assign(channel=frame["channel"].map(CHANNEL_OF_COLUMN))


def _sandbox_roas(params: dict[str, Any]) -> pd.DataFrame | None:
    settings = get_settings()
    if settings.env != "local":
        return None
    from cfap_orchestration.sandbox.world import SandboxWorld
    from cfap_orchestration.studies.truth import roas_truth

    span = _result_params(params)
    truth = roas_truth(
        SandboxWorld(settings.sandbox),
        date.fromisoformat(span["start_date"]),
        date.fromisoformat(span["end_date"]),
    )
    return truth.rename(columns={"subject": "channel", "true_value": "true_roas"})


def _published_from_fit(key: dg.AssetKey, *, description: str) -> Any:
    """An asset that publishes from the latest converged fits of `causal/mmm_fit`."""
    return dg.asset(
        key=key,
        group_name="measure",
        deps=[FIT_KEY],
        kinds={"python"},
        required_resource_keys={"warehouse"},
        code_version=MODEL_VERSION,
        description=description,
    )


@_published_from_fit(
    ROAS_KEY,
    description=(
        "Each paid channel's return on ad spend from the media-mix model: revenue it caused "
        "per unit of spend over the modelled weeks, posterior mean with its 94% HDI, from "
        "the experiment-calibrated fit and from the uncalibrated one side by side."
    ),
)
def mmm_channel_roas(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    shown = []
    params: dict[str, Any] = {}
    for variant in _variants(warehouse):
        result, params = _latest(warehouse, variant)
        roas = _named(result.channel_roas())
        rows = roas_rows(roas, n_obs=len(result.dates))
        write_results(
            warehouse,
            model_name=VARIANTS[variant],
            results=results_frame(
                rows,
                run_id=context.run.run_id,
                model_name=VARIANTS[variant],
                model_version=MODEL_VERSION,
                params=_result_params(params),
            ),
            by_metric=True,
        )
        shown.append(roas.assign(variant=variant))
    table = pd.concat(shown, ignore_index=True)
    truth = _sandbox_roas(params)
    if truth is not None:
        table = table.merge(truth[["channel", "true_roas"]], on="channel", how="left")
    columns = [
        c
        for c in ("variant", "channel", "mean", "hdi_low", "hdi_high", "true_roas")
        if c in table.columns
    ]
    return dg.MaterializeResult(
        metadata={
            "roas": dg.MetadataValue.md(table[columns].to_markdown(index=False, floatfmt=".3g")),
            "roas_plot": image_markdown(
                plots.roas_png(table, title="ROAS, 94% HDI: calibrated vs uncalibrated"),
                alt="roas",
            ),
        },
    )


@dg.asset_check(
    asset=ROAS_KEY,
    name="truth_inside_interval",
    required_resource_keys={"warehouse"},
    description="Sandbox only: each paid channel's true ROAS lies inside the published "
    "(calibrated when there are geo tests) 94% HDI; warns otherwise.",
)
def mmm_roas_covers_the_truth(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    warehouse = context.resources.warehouse.get()
    model_name = VARIANTS[_variants(warehouse)[0]]
    published = warehouse.query(
        "SELECT subject AS channel, effect, ci_lower, ci_upper, params FROM "
        f"{warehouse.relation('causal', 'lift_analysis_results')} "
        "WHERE model_name = ? AND metric = 'roas' ORDER BY subject",
        [model_name],
    )
    truth = _sandbox_roas(json.loads(published["params"].iloc[0]))
    if truth is None:
        raise ValueError("truth_inside_interval needs the sandbox (CFAP_ENV=local)")
    scored = published.merge(truth[["channel", "true_roas"]], on="channel", how="left")
    inside = (scored["ci_lower"] <= scored["true_roas"]) & (
        scored["true_roas"] <= scored["ci_upper"]
    )
    return dg.AssetCheckResult(
        passed=bool(inside.all()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "model": model_name,
            "outside": ", ".join(scored.loc[~inside, "channel"]) or "none",
            **{
                f"{r['channel']}_mean_vs_truth": round(r["effect"] / r["true_roas"] - 1, 4)
                for r in scored.to_dict("records")
            },
        },
    )


@_published_from_fit(
    CONTRIBUTIONS_KEY,
    description=(
        "Revenue each paid channel caused over the modelled weeks (calibrated model: "
        "posterior mean and 94% HDI of the total), and its contribution week by week."
    ),
)
def mmm_contributions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    variant = _variants(warehouse)[0]
    result, params = _latest(warehouse, variant)
    rows = contribution_rows(result, CHANNEL_OF_COLUMN, variant=variant)
    frame = results_frame(
        rows,
        run_id=context.run.run_id,
        model_name=VARIANTS[variant],
        model_version=MODEL_VERSION,
        params=_result_params(params),
    )
    write_results(warehouse, model_name=VARIANTS[variant], results=frame, by_metric=True)
    weekly = _named(result.contributions())
    return dg.MaterializeResult(
        metadata={
            "totals": dg.MetadataValue.md(
                frame[["subject", "effect", "ci_lower", "ci_upper"]].to_markdown(
                    index=False, floatfmt=",.0f"
                )
            ),
            "contributions_plot": image_markdown(
                plots.contributions_png(weekly, title="Weekly revenue caused, 94% HDI"),
                alt="contributions",
            ),
        }
    )


class BudgetConfig(dg.Config):
    budget_change: float = Field(
        default=0.0,
        gt=-0.9,
        lt=5.0,
        description="Weekly budget to plan, relative to the current average (0 = same total).",
    )
    max_shift: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Each channel's planned weekly spend stays within this share of its "
        "current average, up or down: the response curves are measured near the spend "
        "levels the brand has run, and beyond them they are the priors' extrapolation.",
    )


@_published_from_fit(
    BUDGET_KEY,
    description=(
        "The weekly budget split across paid channels that maximises expected revenue under "
        "the calibrated model's response curves, against the current split: expected "
        "revenue per week with its 94% HDI. Written to causal.mmm_budget_plan."
    ),
)
def mmm_budget_plan(
    context: dg.AssetExecutionContext, config: BudgetConfig
) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse.get()
    variant = _variants(warehouse)[0]
    result, _ = _latest(warehouse, variant)
    current = result.spend.mean(axis=0)
    budget = float(current.sum()) * (1 + config.budget_change)
    shift = config.max_shift
    bounds = {
        channel: (
            spend * (1 - shift) * (1 + config.budget_change),
            spend * (1 + shift) * (1 + config.budget_change),
        )
        for channel, spend in current.items()
    }
    plan = _named(result.optimize_budget(budget, bounds=bounds))
    warehouse.replace_table(
        "causal",
        "mmm_budget_plan",
        plan.assign(model_name=VARIANTS[variant], run_id=context.run.run_id),
    )
    curves = _named(result.response_curves())
    gain = float(plan["expected_contribution"].sum() - plan["current_contribution"].sum())
    return dg.MaterializeResult(
        metadata={
            "plan": dg.MetadataValue.md(plan.to_markdown(index=False, floatfmt=",.1f")),
            "weekly_budget": round(budget, 2),
            "expected_weekly_gain": dg.MetadataValue.float(round(gain, 2)),
            "budget_shift_plot": image_markdown(
                plots.response_curves_png(curves, plan, title="Response curves and the shift"),
                alt="budget shift",
            ),
        }
    )
