"""MMM sampling speed: pymc-marketing's default NUTS against the product's sampler, in ESS/s.

The model and data are the ones the `causal/mmm_fit` asset fits: `build_mmm` of
`cfap_orchestration.causal.mmm` (pymc-marketing's MMM, geometric adstock with 8 weekly lags,
logistic saturation, 2 yearly Fourier modes, the priors of `default_priors()`) on the ISO
weeks of `marts.fct_marketing_calendar_daily` (`studies.media_mix.load_weekly`: spend on paid
social and paid search, net revenue, trend, holiday and peak-season controls), from a
warehouse (default `$CFAP_HOME/warehouse.duckdb`,
so run `make demo` first). `--calibrated` adds the geo readouts as lift tests, as the asset's
calibrated fit does.

Every sampler fits that same built model with the same draws, tune, chains and seed, each in
a fresh process (so each pays its own imports and compilation), measured on the model's own
free variables:

- **pymc-marketing default** (the baseline): the built model's own `MMM.fit` with
  pymc-marketing's default sampler settings (PyMC's NUTS, `jitter+adapt_diag`, target
  acceptance 0.8), given `cores=chains` so that both sides use every core (PyMC's own
  default would also run the two chains on the two cores here).
- **numpyro-level** (the product's default, `fit_mmm`): numpyro's NUTS, chains in parallel
  (one XLA CPU device each), on the same posterior in level coordinates
  (`causal.mmm_sampling.level_coordinates`: a change of variables with a unit Jacobian, so
  the same posterior; the draws are mapped back to the model's own variables, and a second
  table compares their posterior means with the baseline's). It runs twice, each in a fresh
  process sharing one JAX persistent compilation cache (a temporary folder unless
  `--jax-cache-dir` is given): *cold* compiles everything, *cached* is what the weekly refit
  pays once `$CFAP_HOME/models/jax_cache` holds last week's compilation.
- `--also` adds rows for comparison, any of `{sampler}-{coordinates}` with sampler numpyro,
  nutpie or pymc (fit_mmm's dense-mass PyMC NUTS) and coordinates level or model.

Columns: wall seconds of sampling (tune + draws as the sampler reports it; for numpyro it
includes tracing and XLA compilation of the sampler), wall seconds of the whole fit (building
the sampler's graph, compiling, sampling, the deterministics), min bulk ESS over every scalar
of the free variables, ESS/s for both, max r-hat (rank-normalised), divergences after tuning,
peak RSS (for pymc: the parent plus its largest chain process), and each ESS/s as a multiple
of the baseline's. The goal is >= 5x the baseline's ESS/s with r-hat <= 1.01 and no
divergences; the exit code is 1 when the product's sampler misses r-hat or divergences.

    .venv/bin/python benchmarks/mmm_sampling.py [--warehouse PATH] [--draws 1000] [--tune 1000]
        [--chains 2] [--seed 1] [--calibrated] [--also numpyro-model,nutpie-level]
        [--jax-cache-dir DIR] [--weeks N]

Progress goes to stderr, the markdown to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cfap_orchestration.causal.mmm import TARGET_ACCEPT
from cfap_orchestration.settings import load_settings

STARTED = time.perf_counter()
BASELINE = "pymc-marketing"
FAST = "numpyro-level"
SAMPLERS = ("numpyro", "nutpie", "pymc")
COORDINATES = ("level", "model")
VARIANTS = (BASELINE, *(f"{s}-{c}" for s, c in itertools.product(SAMPLERS, COORDINATES)))
RHAT_MAX = 1.01
GOAL_RATIO = 5.0
PACKAGES = ("pymc-marketing", "pymc", "pytensor", "numpyro", "jax", "jaxlib", "nutpie", "numba")


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data and model


def load_inputs(warehouse_path: Path, weeks: int | None, calibrated: bool) -> tuple[Any, Any]:
    """The asset's weekly frame (the last `weeks` if given) and, if `calibrated`, its lift
    tests with the model's channel names."""
    from cfap_orchestration.studies.media_mix import (
        SPEND_COLUMNS,
        lift_tests_from_readouts,
        load_weekly,
    )
    from cfap_orchestration.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(warehouse_path)
    frame = load_weekly(warehouse)
    if weeks is not None:
        frame = frame.tail(weeks).reset_index(drop=True)
    if not calibrated:
        return frame, None
    tests, _ = lift_tests_from_readouts(warehouse, frame)
    if tests.empty:
        raise SystemExit(f"--calibrated: no geo readouts in {warehouse_path} (make demo)")
    return frame, tests.assign(channel=tests["channel"].map(SPEND_COLUMNS))


def model_arguments(frame: Any, lift_tests: Any) -> dict[str, Any]:
    """What the `causal/mmm_fit` asset passes to fit_mmm / build_mmm, but the sampler's."""
    from cfap_orchestration.studies.media_mix import SPEND_COLUMNS, control_columns

    return {
        "date": "week_start",
        "channels": list(SPEND_COLUMNS.values()),
        "controls": control_columns(frame),
        "target": "revenue",
        "adstock_max_lag": 8,
        "yearly_seasonality": 2,
        "lift_tests": lift_tests,
    }


# --------------------------------------------------------------------------- one fit (child)


@dataclass
class Fit:
    variant: str
    label: str
    sampling_s: float
    total_s: float
    import_s: float
    ess_bulk_min: float
    ess_worst: str
    rhat_max: float
    divergences: int
    peak_rss_mb: float
    posterior: dict[str, list[float]]  # scalar name -> [mean, sd, mcse_mean]


def sample_variant(
    variant: str, args: argparse.Namespace, frame: Any, lift_tests: Any
) -> tuple[Any, list[str]]:
    """Fit one variant; return its InferenceData and the model's free variables."""
    from cfap_orchestration.causal.mmm import build_mmm, fit_mmm
    from cfap_orchestration.causal.mmm_sampling import use_jax_compilation_cache

    arguments = model_arguments(frame, lift_tests)
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    if variant == BASELINE:
        spec = build_mmm(frame, **arguments)
        idata = spec.model.fit(
            spec.prepared.X,
            spec.prepared.y,
            progressbar=False,
            random_seed=args.seed,
            cores=args.chains,
            **settings,
        )
        return idata, spec.meta["free_variables"]
    sampler, coordinates = variant.split("-")
    if sampler == "numpyro" and args.jax_cache_dir:
        use_jax_compilation_cache(args.jax_cache_dir)
    result = fit_mmm(
        frame,
        **arguments,
        **settings,
        sampler=sampler,
        parameterisation=coordinates,
        random_seed=args.seed,
    )
    return result.idata, result.meta["free_variables"]


def fit_variant(variant: str, args: argparse.Namespace) -> Fit:
    """Fit one sampler variant in this process and measure it."""
    started = time.perf_counter()
    import arviz as az
    import pymc_marketing  # noqa: F401

    import_s = time.perf_counter() - started
    frame, lift_tests = load_inputs(Path(args.warehouse), args.weeks, args.calibrated)
    log(f"{variant}: sampling {args.chains} chains x ({args.tune} tune + {args.draws} draws)")
    started = time.perf_counter()
    idata, names = sample_variant(variant, args, frame, lift_tests)
    total_s = time.perf_counter() - started
    sampling_s = float(idata.posterior.attrs.get("sampling_time", total_s))

    posterior = idata.posterior[names]
    ess = az.ess(posterior, method="bulk")
    rhat = az.rhat(posterior)
    mcse = az.mcse(posterior, method="mean")
    flat: dict[str, list[float]] = {}
    ess_flat: dict[str, float] = {}
    rhat_flat: list[float] = []
    for name in names:
        da = posterior[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        labels = [
            f"{name}[{','.join(str(c) for c in combo)}]" if extra else name
            for combo in itertools.product(*(da[d].values for d in extra))
        ]
        draws = da.values.reshape(-1, len(labels))
        for k, label in enumerate(labels):
            flat[label] = [
                float(draws[:, k].mean()),
                float(draws[:, k].std()),
                float(mcse[name].values.ravel()[k]),
            ]
            ess_flat[label] = float(ess[name].values.ravel()[k])
            rhat_flat.append(float(rhat[name].values.ravel()[k]))
    worst = min(ess_flat, key=ess_flat.__getitem__)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return Fit(
        variant=variant,
        label=variant,
        sampling_s=sampling_s,
        total_s=total_s,
        import_s=import_s,
        ess_bulk_min=ess_flat[worst],
        ess_worst=worst,
        rhat_max=max(rhat_flat),
        divergences=int(idata.sample_stats["diverging"].sum()),
        peak_rss_mb=(own + children) / 1024,
        posterior=flat,
    )


def run_child(variant: str, args: argparse.Namespace, label: str) -> Fit:
    """Run `fit_variant` in a fresh interpreter and read its JSON back."""
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--warehouse",
        str(args.warehouse),
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
        "--seed",
        str(args.seed),
    ]
    if args.weeks is not None:
        command += ["--weeks", str(args.weeks)]
    if args.calibrated:
        command.append("--calibrated")
    if args.jax_cache_dir:
        command += ["--jax-cache-dir", args.jax_cache_dir]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{label}: child process failed with exit code {done.returncode}")
    fit = Fit(**json.loads(done.stdout.strip().splitlines()[-1]))
    fit.label = label
    log(
        f"{label}: {fit.sampling_s:.1f}s sampling, {fit.total_s:.1f}s fit, "
        f"{time.perf_counter() - started:.1f}s process; ESS {fit.ess_bulk_min:.0f} "
        f"({fit.ess_worst}), r-hat {fit.rhat_max:.4f}, {fit.divergences} divergences"
    )
    return fit


# --------------------------------------------------------------------------- report


def package_versions() -> str:
    found = []
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name} {version(name)}")
    return ", ".join(found)


def results_table(fits: list[Fit], base: Fit) -> str:
    head = (
        "| sampler | sampling s | fit s (incl. compile) | min ESS bulk | worst variable "
        "| ESS/s sampling | ESS/s fit | max r-hat | divergences | peak RSS MB "
        "| x baseline (sampling) | x baseline (fit) |"
    )
    rows = [head, "|" + "---|" * 12]
    base_s = base.ess_bulk_min / base.sampling_s
    base_t = base.ess_bulk_min / base.total_s
    for f in fits:
        per_s = f.ess_bulk_min / f.sampling_s
        per_t = f.ess_bulk_min / f.total_s
        rows.append(
            f"| {f.label} | {f.sampling_s:.1f} | {f.total_s:.1f} | {f.ess_bulk_min:.0f} "
            f"| {f.ess_worst} | {per_s:.1f} | {per_t:.1f} | {f.rhat_max:.4f} | {f.divergences} "
            f"| {f.peak_rss_mb:.0f} | {per_s / base_s:.1f}x | {per_t / base_t:.1f}x |"
        )
    return "\n".join(rows)


def agreement_table(base: Fit, fast: Fit) -> tuple[str, float]:
    """Posterior means of the model's variables under both samplers, difference in MC s.e."""
    rows = [
        f"| variable | mean ({base.label}) | sd ({base.label}) | mean ({fast.label}) "
        f"| sd ({fast.label}) | difference / MC s.e. |",
        "|" + "---|" * 6,
    ]
    worst = 0.0
    for name, (m0, s0, e0) in base.posterior.items():
        m1, s1, e1 = fast.posterior[name]
        z = abs(m1 - m0) / max((e0**2 + e1**2) ** 0.5, 1e-12)
        worst = max(worst, z)
        rows.append(f"| {name} | {m0:.4g} | {s0:.3g} | {m1:.4g} | {s1:.3g} | {z:.1f} |")
    return "\n".join(rows), worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=load_settings().warehouse_path)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calibrated", action="store_true", help="add the geo lift tests")
    parser.add_argument(
        "--also",
        default="",
        help=f"comma-separated extra variants to time, among {', '.join(VARIANTS[1:])}",
    )
    parser.add_argument("--jax-cache-dir", help="JAX persistent compilation cache to (re)use")
    parser.add_argument("--weeks", type=int, help="use only the last N complete weeks")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        warnings.filterwarnings("ignore")
        import logging

        for name in ("pymc", "pymc_marketing", "jax"):
            logging.getLogger(name).setLevel(logging.ERROR)
        fit = fit_variant(args.child, args)
        print(json.dumps(asdict(fit)))
        return 0

    if not args.warehouse.exists():
        raise SystemExit(f"no warehouse at {args.warehouse} (make demo, or --warehouse PATH)")
    also = [v for v in args.also.split(",") if v]
    unknown = [v for v in also if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s): {', '.join(unknown)}; choose from {VARIANTS}")
    frame, lift_tests = load_inputs(args.warehouse, args.weeks, args.calibrated)
    n_tests = 0 if lift_tests is None else len(lift_tests)
    log(f"{len(frame)} complete weeks from {args.warehouse}, {n_tests} lift tests")

    with tempfile.TemporaryDirectory(prefix="mmm_jax_cache_") as scratch:
        own_cache = args.jax_cache_dir is None
        if own_cache:
            args.jax_cache_dir = scratch
        base = run_child(BASELINE, args, "pymc-marketing default NUTS")
        fast = run_child(FAST, args, f"{FAST} (cold JAX cache)")
        fits = [base, fast, run_child(FAST, args, f"{FAST} (cached JAX compilation)")]
        fits += [run_child(variant, args, variant) for variant in also if variant != FAST]
        if own_cache:
            args.jax_cache_dir = None

    cpus = os.cpu_count()
    n_controls = len(model_arguments(frame, None)["controls"])
    print(
        f"# MMM sampling: pymc-marketing default NUTS vs {FAST}\n\n"
        f"Data: `{args.warehouse}`, marts.fct_marketing_calendar_daily by ISO week, "
        f"{len(frame)} complete weeks {frame['week_start'].min():%Y-%m-%d} to "
        f"{frame['week_start'].max():%Y-%m-%d}; target net revenue; channels paid social and "
        f"paid search; {n_tests} lift tests.\n"
        f"Model: the causal/mmm_fit asset's (build_mmm: GeometricAdstock(l_max=8), "
        f"LogisticSaturation(), yearly_seasonality=2, {n_controls} "
        f"controls, default_priors()). Each sampler: "
        f"{args.chains} chains x ({args.tune} tune + {args.draws} draws), seed {args.seed}, "
        f"fresh process.\n"
        f"Machine: {cpus} CPUs ({platform.machine()}), shared. The baseline runs "
        f"cores={args.chains} (one process per chain), numpyro chain_method='parallel' "
        f"({args.chains} XLA CPU devices). Baseline target_accept 0.8 (pymc-marketing's "
        f"default); fit_mmm {TARGET_ACCEPT}.\n"
        f"Versions: {package_versions()}.\n"
    )
    print(results_table(fits, base))
    print(
        "\n'sampling s' is tune + draws as the sampler reports it (for numpyro it includes "
        "tracing and XLA compilation of the sampler); 'fit s' is the whole fit: graph "
        "building, compiling, sampling and the deterministics. ESS and r-hat are over every "
        "scalar of the model's own free variables.\n"
    )
    table, worst = agreement_table(base, fast)
    print(f"Same posterior? {base.label} vs {fast.label} (max difference {worst:.1f} MC s.e.)\n")
    print(table)
    if base.divergences:
        print(
            f"\nThe baseline had {base.divergences} divergences: it did not explore the whole "
            "posterior and its MC s.e. understate its error, so large differences are its bias."
        )

    per_s = (fast.ess_bulk_min / fast.sampling_s) / (base.ess_bulk_min / base.sampling_s)
    per_t = (fast.ess_bulk_min / fast.total_s) / (base.ess_bulk_min / base.total_s)
    healthy = fast.rhat_max <= RHAT_MAX and fast.divergences == 0
    print(
        f"\nGoal >= {GOAL_RATIO:g}x ESS/s with r-hat <= {RHAT_MAX} and no divergences: "
        f"{fast.label} gives {per_s:.1f}x (sampling), {per_t:.1f}x (whole fit), r-hat "
        f"{fast.rhat_max:.4f}, {fast.divergences} divergences: "
        f"{'met' if healthy and per_s >= GOAL_RATIO else 'NOT met'}."
    )
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
