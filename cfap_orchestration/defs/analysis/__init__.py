"""Analyses launched by hand with parameters: jobs, not assets (their results are rows in
the causal tables, keyed by what was asked)."""

import dagster as dg

from cfap_orchestration.defs.analysis.jobs import geo_lift_analysis


def analysis_definitions() -> dg.Definitions:
    return dg.Definitions(jobs=[geo_lift_analysis])
