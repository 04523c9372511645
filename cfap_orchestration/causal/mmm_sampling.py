"""Sampling a pymc-marketing MMM fast: better-scaled coordinates and a JAX NUTS.

Why a change of coordinates
    On weekly data the media series move little around their means, so the data pin down
    the *level* of the fit, ``intercept + sum_c mean_t contribution_c`` (posterior sd about
    0.005 of the scaled target on the sandbox brand), while the intercept and each
    channel's ceiling ``beta_c`` trade off along a narrow curved ridge (posterior sd 0.2
    to 0.5). NUTS in the model's own coordinates needs tiny steps and long trees there,
    and PyMC's default adaptation diverges at the ridge's low-intercept end.

The level coordinates (:func:`level_coordinates`)
    The free variables become

    * ``u_level = intercept + sum_c exp(u_log_contribution_c)``;
    * ``u_log_contribution_c = log beta_c + log mean_t saturation(adstock(x_c))``, the log
      of the channel's mean contribution per period;
    * every other free variable unchanged, on its usual unconstrained scale.

    The map back, ``log beta_c = u_log_contribution_c - log sbar_c(lam_c, alpha_c)`` and
    ``intercept = u_level - sum_c exp(u_log_contribution_c)``, is triangular with a unit
    diagonal, so its Jacobian determinant is 1: the log density is the model's own
    ``model.logp()`` (priors, likelihood, lift tests and the usual transforms' Jacobians)
    at the mapped-back point. It is the same posterior, not a new model. The model's free
    variables come back as deterministics under their own names and dims.

:func:`sample_mmm` samples either coordinates with PyMC's, nutpie's or numpyro's NUTS and
finishes the fit as pymc-marketing's ``fit`` does (deterministics, fit data, attributes),
so the result is an ordinary fitted pymc-marketing ``MMM``.

No Dagster here, and pymc, pytensor and jax are imported inside the functions.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

PARAMETERISATIONS = ("level", "model")
INTERCEPT_NAMES = ("intercept_contribution", "intercept")
XLA_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def check_parameterisation(parameterisation: str) -> None:
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(
            f"parameterisation must be one of {list(PARAMETERISATIONS)}, got {parameterisation!r}"
        )


def level_coordinates(model: Any) -> Any:
    """The posterior of ``model`` (a pymc-marketing MMM's ``pm.Model``) in level coordinates.

    Needs a scalar ``intercept``, a positive ``saturation_beta`` (log-transformed) and the
    deterministic ``channel_contribution`` of shape (date, channel); anything else in the
    model (controls, seasonality, lift-test likelihoods) is carried along unchanged.
    """
    import pymc as pm
    import pytensor.tensor as pt
    from pytensor.graph.replace import graph_replace
    from pytensor.graph.rewriting.utils import rewrite_graph
    from pytensor.xtensor import as_xtensor

    values = {v.name: v for v in model.value_vars}
    # "intercept_contribution" in the multidimensional MMM, "intercept" in the older one
    intercept_name = next((n for n in INTERCEPT_NAMES if n in values), None)
    needed = ["saturation_beta_log__", "channel_contribution"]
    missing = [n for n in needed if n not in values and n not in model.named_vars]
    if intercept_name is None or missing or model[intercept_name].ndim != 0:
        raise ValueError(
            "level coordinates need a scalar intercept, a log-transformed saturation_beta and "
            f"channel_contribution; this model has {sorted(values)}"
        )
    intercept, log_beta = values[intercept_name], values["saturation_beta_log__"]
    point = model.initial_point()

    def like(value: Any, tensor: Any) -> Any:  # the model's value variables are xtensors
        return as_xtensor(tensor, dims=value.type.dims)

    def lower(graph: Any) -> Any:
        return rewrite_graph(graph, include=("lower_xtensor",))

    contribution = model["channel_contribution"]  # (date, channel) = beta * saturation
    (mean_contribution,) = model.replace_rvs_by_values([contribution.values.mean(axis=0)])
    # mean_t saturation(adstock(x_c)): the mean contribution at beta = 1
    saturation_mean = graph_replace(
        lower(mean_contribution),
        {log_beta: like(log_beta, pt.zeros(point[log_beta.name].shape))},
        strict=False,
    )
    originals = model.replace_rvs_by_values(model.free_RVs)
    logp = model.logp()
    renamed = {intercept_name: "u_level", "saturation_beta_log__": "u_log_contribution"}
    labelled = {name: labels for name, labels in model.coords.items() if labels is not None}
    with pm.Model(coords=labelled) as level:
        for name in set(model.coords) - set(labelled):  # e.g. the lift tests' row dim
            level.add_coord(name, length=int(model.dim_lengths[name].eval()))
        new = {
            name: pm.Flat(renamed.get(name, "u_" + name.rstrip("_")), dims=value.type.dims or None)
            for name, value in values.items()
        }
        unchanged = {
            values[name]: like(values[name], var)
            for name, var in new.items()
            if name not in renamed
        }
        log_contribution = new["saturation_beta_log__"]
        mapped = {
            **unchanged,
            log_beta: like(
                log_beta,
                log_contribution - pt.log(graph_replace(saturation_mean, unchanged, strict=False)),
            ),
            intercept: like(intercept, new[intercept_name] - pt.exp(log_contribution).sum()),
        }
        pm.Potential("model_logp", graph_replace(logp, mapped, strict=False))
        for rv, original in zip(model.free_RVs, originals, strict=True):
            pm.Deterministic(
                rv.name,
                lower(graph_replace(original, mapped, strict=False)),
                dims=model.named_vars_to_dims.get(rv.name),
            )
    return level


def prepare_jax_devices(chains: int) -> str:
    """numpyro's chain method: "parallel" (one XLA CPU device per chain) when possible.

    XLA fixes its CPU device count when jax is first imported, so the flag is set here
    only if jax has not been imported yet; otherwise chains run "vectorized" unless the
    process already has enough devices.
    """
    if "jax" not in sys.modules:
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if XLA_DEVICE_FLAG not in f]
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"{XLA_DEVICE_FLAG}={chains}"])
    import jax

    return "parallel" if jax.local_device_count() >= chains else "vectorized"


def use_jax_compilation_cache(folder: str | os.PathLike[str]) -> None:
    """Keep XLA's compiled sampler in ``folder`` so that later fits of the same model shape
    (e.g. next week's refit) skip most of the compilation.

    Before jax is imported this only sets jax's environment variables, so that
    :func:`prepare_jax_devices` can still choose the CPU device count.
    """
    os.makedirs(folder, exist_ok=True)
    options = {
        "jax_compilation_cache_dir": os.fspath(folder),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": -1,
    }
    if "jax" not in sys.modules:
        os.environ.update({name.upper(): str(value) for name, value in options.items()})
        return
    import jax

    for name, value in options.items():
        jax.config.update(name, value)


def sample_mmm(
    mmm: Any,
    X: Any,
    y: Any,
    *,
    sampler: str,
    parameterisation: str,
    draws: int,
    tune: int,
    chains: int,
    random_seed: int,
    target_accept: float,
    progressbar: bool = False,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Sample a built pymc-marketing ``MMM`` and finish it as its own ``fit`` would.

    ``sampler``: "pymc", "nutpie" or "numpyro" (``pm.sample``'s ``nuts_sampler``);
    ``parameterisation``: "level" (see the module doc) or "model" (the model's own).
    Returns the ``InferenceData``, also set as ``mmm.idata``. PyMC's NUTS gets a dense
    mass matrix: even in level coordinates the saturation parameters stay correlated.
    """
    import pymc as pm

    check_parameterisation(parameterisation)
    names = [rv.name for rv in mmm.model.free_RVs]
    kwargs: dict[str, Any] = {
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": random_seed,
        "progressbar": progressbar,
        "nuts_sampler": sampler,
        "target_accept": target_accept,
        "var_names": names,
        "compute_convergence_checks": False,  # MMMResult.diagnostics() reports them
    }
    if sampler == "pymc":
        kwargs.update(cores=min(chains, os.cpu_count() or 1), init="jitter+adapt_full")
    elif sampler == "numpyro":
        kwargs["nuts_sampler_kwargs"] = {"chain_method": prepare_jax_devices(chains)}
    sampled = level_coordinates(mmm.model) if parameterisation == "level" else mmm.model
    if log:
        log(
            f"NUTS ({sampler}, {parameterisation} coordinates): {chains} chains x "
            f"({tune} tune + {draws} draws) on {len(X)} periods"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message="QuadPotentialFullAdapt is an experimental")
        with sampled:
            idata = pm.sample(**kwargs)
    if log:
        log(f"sampled in {idata.posterior.attrs.get('sampling_time', float('nan')):.1f} s")
    return _finish_fit(mmm, idata, X, y)


def _finish_fit(mmm: Any, idata: Any, X: Any, y: Any) -> Any:
    """What pymc-marketing's ``fit`` does after ``pm.sample``: data groups, deterministics,
    fit data and the attributes ``MMM.load_from_idata`` needs."""
    import arviz as az
    import pymc as pm
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )
    from pymc_marketing import __version__

    model = mmm.model
    names = [rv.name for rv in model.free_RVs]
    posterior = idata.posterior[names]
    coords, dims = coords_and_dims_for_inferencedata(model)
    data = az.from_dict(
        observed_data=find_observations(model),
        constant_data=find_constants(model),
        coords=coords,
        dims=dims,
    )
    with model:
        posterior = pm.compute_deterministics(posterior, merge_dataset=True, progressbar=False)
    posterior.attrs = {**idata.posterior.attrs, "pymc_marketing_version": __version__}
    result = az.InferenceData(posterior=posterior, sample_stats=idata.sample_stats)
    result.extend(data)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The group fit_data is not defined")
        result.add_groups(fit_data=mmm.create_fit_data(X, y))
    mmm.idata = result
    mmm.set_idata_attrs(result)
    return result
