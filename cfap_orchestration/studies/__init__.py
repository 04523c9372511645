"""Studies: an estimator from `causal/` applied to a mart for one subject, as result rows.

Each study reads its mart through a parameterized query, runs the estimator and turns the
estimate into `causal.lift_analysis_results` rows with incremental value and ROAS. No
Dagster imports: `defs/measure/` wires these into assets.
"""
