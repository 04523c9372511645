"""The media-mix wiring: the code location loads without the modelling stack, the fit gates
what publishes from it, and the weekly refit targets the whole model."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from cfap_orchestration.defs.measure.media_mix import MEDIA_MIX_ASSETS, MediaMixConfig

HEAVY = ("pymc", "pymc_marketing", "arviz", "pytensor", "jax", "numpyro", "nutpie")


def test_definitions_load_without_the_modelling_stack() -> None:
    code = (
        "import sys\n"
        "from cfap_orchestration.definitions import defs\n"
        "defs().resolve_asset_graph()\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "[]"


def test_the_fit_check_blocks_and_the_refit_covers_every_media_mix_asset() -> None:
    from cfap_orchestration.definitions import defs

    definitions = defs()
    graph = definitions.resolve_asset_graph()
    fit = dg.AssetKey(["causal", "mmm_fit"])
    specs = {s.name: s for s in definitions.resolve_assets_def(fit).check_specs}
    assert set(specs) == {"converged"} and specs["converged"].blocking
    for key in MEDIA_MIX_ASSETS[1:]:
        assert graph.get(key).parent_keys == {fit}
    schedule = definitions.get_schedule_def("mmm_weekly_refit")
    assert schedule.cron_schedule == "0 10 * * 1"
    job = definitions.resolve_job_def(schedule.job_name)
    assert job.asset_layer.selected_asset_keys == set(MEDIA_MIX_ASSETS)


def test_sampler_defaults_are_the_fast_path() -> None:
    config = MediaMixConfig()
    assert (config.sampler, config.parameterisation) == ("numpyro", "level")
    assert (config.max_r_hat, config.min_ess_bulk) == (1.01, 400)


def test_the_truth_check_exists_only_beside_the_sandbox() -> None:
    """A declared check that an asset cannot evaluate would fail its runs in production."""
    from cfap_orchestration.defs.measure import measure_definitions

    roas = dg.AssetKey(["causal", "mmm_channel_roas"])
    for sandbox, expected in ((True, {"truth_inside_interval"}), (False, set())):
        checks = measure_definitions(sandbox=sandbox).asset_checks or []
        names = {key.name for c in checks for key in c.check_keys if key.asset_key == roas}
        assert names == expected, sandbox
