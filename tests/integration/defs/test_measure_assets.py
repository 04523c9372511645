"""The estimator assets end to end: sandbox APIs -> raw -> dbt marts -> causal results tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pytest
from tests_support import asset_job, sandbox_marts

from cfap_orchestration.defs.measure.partitions import register_geo_experiments
from cfap_orchestration.warehouse import DuckDBWarehouse

# The 2025 Google Ads holdout runs 2025-04-07..2025-05-04, after a 56-day pre-period.
RANGE = ("2025-02-10", "2025-05-10")
EXPERIMENT = "geo_holdout_google_ads_2025"
GEO = [
    dg.AssetKey(["causal", "difference_in_differences"]),
    dg.AssetKey(["causal", "synthetic_control"]),
]
MODELS = {
    "difference_in_differences", "synthetic_control", "cuped", "shapley_attribution",
    "markov_attribution", "temporal_effects",
}  # fmt: skip


@dataclass
class Measured:
    warehouse: DuckDBWarehouse
    defs: dg.Definitions
    instance: dg.DagsterInstance
    registered: list[str]
    geo: dg.ExecuteInProcessResult
    rest: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    home = tmp_path_factory.mktemp("cfap")
    with sandbox_marts(home, *RANGE) as (defs, instance):
        graph = defs.resolve_asset_graph()
        warehouse = DuckDBWarehouse(home / "warehouse.duckdb")
        registered = register_geo_experiments(instance, warehouse)
        geo = asset_job(defs).execute_in_process(
            instance=instance, partition_key=EXPERIMENT, asset_selection=GEO
        )
        # The media-mix model needs more weeks than these 90 days: it has its own test.
        rest = [
            k
            for k in graph.get_all_asset_keys()
            if k.path[0] == "causal" and k not in GEO and not k.path[-1].startswith("mmm_")
        ]
        # A 2,000-customer brand over 90 days: smaller than the production minimums.
        small = {
            "causal__cuped": {"config": {"min_arm_size": 50}},
            "causal__shapley_attribution": {"config": {"min_conversions": 200}},
            "causal__markov_attribution": {"config": {"min_conversions": 200}},
            # Orders updated in the window reach back before it: model the loaded days only.
            "causal__temporal_effects": {"config": {"start_date": RANGE[0]}},
        }
        others = asset_job(defs).execute_in_process(
            instance=instance, asset_selection=rest, run_config={"ops": small}
        )
        yield Measured(warehouse, defs, instance, registered, geo, others)


def _results(m: Measured):
    return m.warehouse.query("SELECT * FROM causal.lift_analysis_results")


def test_only_completed_experiments_with_a_panel_become_partitions(measured: Measured) -> None:
    assert measured.registered == [EXPERIMENT]


def test_every_method_writes_rows_and_registers(measured: Measured) -> None:
    assert measured.geo.success and measured.rest.success
    results = _results(measured)
    assert set(results["model_name"]) == MODELS
    assert results["run_id"].notna().all() and results["code_version"].str.startswith("0.1.0").all()
    geo = results[results["subject"] == EXPERIMENT].set_index("model_name")
    for model in ("difference_in_differences", "synthetic_control"):
        row = geo.loc[model]
        assert row["ci_lower"] <= row["effect"] <= row["ci_upper"]
        assert row["incremental_value"] == pytest.approx(row["effect"] * 3 * 28)
        assert json.loads(row["params"])["experiment_id"] == EXPERIMENT
    registry = measured.warehouse.query("SELECT * FROM causal.causal_model_registry")
    assert set(registry["model_name"]) == MODELS
    assert registry["params_hash"].str.len().eq(64).all()


def test_a_rerun_replaces_its_rows(measured: Measured) -> None:
    before = _results(measured)
    again = asset_job(measured.defs).execute_in_process(
        instance=measured.instance, partition_key=EXPERIMENT, asset_selection=GEO
    )
    assert again.success
    after = _results(measured)
    assert len(after) == len(before)
    assert set(after.loc[after["subject"] == EXPERIMENT, "run_id"]) == {again.run_id}


def test_plots_checks_and_results_table_show_in_the_ui(measured: Measured) -> None:
    materialization = measured.geo.asset_materializations_for_node("causal__synthetic_control")[0]
    assert "data:image/png;base64," in materialization.metadata["treated_vs_synthetic"].value
    assert EXPERIMENT in materialization.metadata["results"].value
    checks = {e.check_name: e for e in measured.geo.get_asset_check_evaluations()}
    assert {"parallel_pre_trends", "pre_period_fit", "design_size"} <= set(checks)
    assert checks["design_size"].passed


def test_the_scorecard_puts_truth_beside_every_experiment_estimate(measured: Measured) -> None:
    scored = measured.warehouse.query("SELECT * FROM causal.estimates_vs_truth")
    experiments = scored[scored["model_name"].isin(["difference_in_differences", "cuped"])]
    assert len(experiments) == 3  # one geo holdout, email and sms
    assert experiments["true_value"].gt(0).all()
    assert set(scored["model_name"]) >= {"synthetic_control", "temporal_effects"}


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "the run should have failed"
    error = failures[0].step_failure_data.error
    return "\n".join(str(e.message) for e in (error, error.cause) if e is not None)


def test_invalid_run_config_fails_with_the_field_named(measured: Measured) -> None:
    bad_alpha = asset_job(measured.defs).execute_in_process(
        instance=measured.instance,
        partition_key=EXPERIMENT,
        asset_selection=GEO[:1],
        run_config={"ops": {"causal__difference_in_differences": {"config": {"alpha": 1.5}}}},
        raise_on_error=False,
    )
    assert not bad_alpha.success
    assert "alpha" in _failure_message(bad_alpha)
    assert "less than 0.5" in _failure_message(bad_alpha)
    bad_channel = asset_job(measured.defs).execute_in_process(
        instance=measured.instance,
        asset_selection=[dg.AssetKey(["causal", "cuped"])],
        run_config={"ops": {"causal__cuped": {"config": {"channels": ["fax"]}}}},
        raise_on_error=False,
    )
    assert "unknown channel(s) ['fax']" in _failure_message(bad_channel)
    # Nothing was written by the refused runs.
    assert bad_alpha.run_id not in set(_results(measured)["run_id"])


def test_an_unknown_experiment_is_a_clear_error(measured: Measured) -> None:
    from cfap_orchestration.studies.geo_holdouts import load_geo_panel

    with pytest.raises(ValueError, match="'geo_holdout_nowhere' has no rows"):
        load_geo_panel(measured.warehouse, "geo_holdout_nowhere")


def test_planned_tests_get_a_power_plan_or_the_reason_they_cannot(measured: Measured) -> None:
    plan = measured.warehouse.query("SELECT * FROM causal.geo_test_power_plan")
    assert {"geo_holdout_meta_2025", "geo_holdout_meta_2027"} <= set(plan["experiment_id"])
    # Ninety days of history cannot replay a 56-day pre-period plus a 6-week test 40 times.
    assert plan["note"].str.contains("distinct placebo tests").all()
    assert plan["mde_relative"].isna().all()
