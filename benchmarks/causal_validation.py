"""Simulation study of every estimator: bias and 95% interval coverage against a known truth.

Runs each scenario of `cfap_orchestration.causal.simulation.*` (data simulated with a
known effect, estimated, compared) for `--replications` draws and prints one markdown row
per scenario: mean estimate, truth, bias (absolute and % of the truth), coverage of the
95% interval with its Monte-Carlo standard error, mean interval width, seconds.
Goal: |bias| < 5% of the effect and coverage in [93%, 97%]. The media-mix model's interval
is its 94% highest-density interval (goal [92%, 96%]), and each of its replications is a
full fit (10-20 s): run it with fewer, e.g. `--only mmm --replications 100`.

    .venv/bin/python benchmarks/causal_validation.py [--replications 200] [--scale full]
        [--only did,cuped] [--seed 20261122]
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from typing import Any

import numpy as np

MODULES = ("did", "cuped", "synthetic_control", "attribution", "temporal", "mmm")


def run_scenario(replicate: Any, *, replications: int, scale: str, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    estimates, truths, covered, widths = [], [], [], []
    started = time.perf_counter()
    for _ in range(replications):
        result = replicate(rng, scale=scale)
        est = result.estimate
        estimates.append(est.effect)
        truths.append(result.truth)
        covered.append(est.ci_lower <= result.truth <= est.ci_upper)
        widths.append(est.ci_upper - est.ci_lower)
    truth = float(np.mean(truths))
    bias = float(np.mean(np.subtract(estimates, truths)))
    coverage = float(np.mean(covered))
    return {
        "mean_estimate": float(np.mean(estimates)),
        "truth": truth,
        "bias": bias,
        "bias_pct": 100 * bias / abs(truth) if truth else math.nan,
        "coverage": coverage,
        "coverage_se": math.sqrt(coverage * (1 - coverage) / replications),
        "width": float(np.mean(widths)),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--scale", choices=["full", "fast"], default="full")
    parser.add_argument("--only", default=",".join(MODULES))
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args(argv)
    print(
        f"### Simulation study: {args.replications} replications per scenario, "
        f"scale={args.scale}, seed {args.seed}\n"
    )
    print(
        "| estimator | scenario | mean estimate | truth | bias | bias % | coverage (95%; MMM 94%) "
        "| mean CI width | s |"
    )
    print("|:--|:--|--:|--:|--:|--:|--:|--:|--:|")
    for name in args.only.split(","):
        module = importlib.import_module(f"cfap_orchestration.causal.simulation.{name}")
        for scenario, replicate in module.SCENARIOS.items():
            r = run_scenario(
                replicate, replications=args.replications, scale=args.scale, seed=args.seed
            )
            print(
                f"| {name} | {scenario} | {r['mean_estimate']:.4g} | {r['truth']:.4g} "
                f"| {r['bias']:+.3g} | {r['bias_pct']:+.2f}% "
                f"| {r['coverage']:.1%} ± {r['coverage_se']:.1%} | {r['width']:.4g} "
                f"| {r['seconds']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
