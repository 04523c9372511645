"""Settings and fixtures' building blocks shared by the tests (importable from any module)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from cfap_orchestration.settings import get_settings

# A small brand and a fixed "now", so runs are fast and reproducible.
SANDBOX_ENV = {
    "CFAP_ENV": "local",
    "CFAP_SANDBOX_CUSTOMERS": "2000",
    "CFAP_SANDBOX_AS_OF": "2025-06-01T00:00:00+00:00",
    "CFAP_START_DATE": "2024-01-01",
}


def asset_job(defs: dg.Definitions) -> dg.JobDefinition:
    return defs.resolve_implicit_global_asset_job_def()


@contextmanager
def sandbox_marts(
    home: Path, first_day: str, last_day: str
) -> Iterator[tuple[dg.Definitions, dg.DagsterInstance]]:
    """The Definitions over the sandbox in `home` and a test instance, with every asset
    upstream of the measurement ones (ingest, dbt) materialized over the days given."""
    from cfap_orchestration.definitions import defs as build_defs

    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        for key, value in {**SANDBOX_ENV, "CFAP_HOME": str(home)}.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        defs = build_defs()
        graph = defs.resolve_asset_graph()
        upstream = [k for k in graph.get_all_asset_keys() if k.path[0] not in ("causal", "reports")]
        tags = {
            "dagster/asset_partition_range_start": first_day,
            "dagster/asset_partition_range_end": last_day,
        }
        asset_job(defs).execute_in_process(instance=instance, tags=tags, asset_selection=upstream)
        try:
            yield defs, instance
        finally:
            get_settings.cache_clear()
