"""How stale the data may get: the daily extracts and the marts built from them.

The daily refresh runs at 07:00 UTC; a day's data counts as late once it has missed the
next morning's run (warn after 26 hours) and as failed after a second missed run's worth
of slack (36 hours). The freshness daemon (`freshness: enabled` in dagster.yaml) evaluates
the policies and the UI shows each asset's state. Batch uploads arrive when people send
them, so they carry no policy.
"""

from datetime import timedelta

import dagster as dg

DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)
FRESHNESS_TAG = "cfap/freshness"


def needs_daily_freshness(spec: dg.AssetSpec) -> bool:
    """Daily-partitioned extracts and every mart: what the daily refresh keeps current."""
    if spec.group_name == "marts":
        return True
    return spec.group_name == "ingest" and spec.partitions_def is not None


def with_daily_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    if not needs_daily_freshness(spec):
        return spec
    return spec.replace_attributes(freshness_policy=DAILY_FRESHNESS)
