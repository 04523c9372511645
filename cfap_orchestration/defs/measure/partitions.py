"""Geo experiments as dynamic partitions: one partition per registered experiment id."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from cfap_orchestration.studies.geo_holdouts import experiment_ids
from cfap_orchestration.warehouse import Warehouse

GEO_EXPERIMENTS = dg.DynamicPartitionsDefinition(name="geo_experiments")


def completed_geo_experiments(warehouse: Warehouse) -> Sequence[str]:
    """Registered geo holdouts whose test has ended and whose panel has both periods loaded."""
    registry = warehouse.query(
        "SELECT experiment_id, experiment_type, end_date FROM "
        f"{warehouse.relation('staging', 'stg_reference__experiment_registry')}"
    )
    panels = warehouse.query(
        "SELECT experiment_id, max(date_day) AS last_day FROM "
        f"{warehouse.relation('marts', 'fct_experiment_geo_panel')} GROUP BY 1 "
        "HAVING count(DISTINCT is_test_period) = 2"
    )
    if panels.empty:
        return []
    loaded = registry[registry["experiment_id"].isin(panels["experiment_id"])]
    return experiment_ids(loaded, through=pd.Timestamp(panels["last_day"].max()))


def register_geo_experiments(instance: dg.DagsterInstance, warehouse: Warehouse) -> list[str]:
    """Add a partition for each completed geo experiment not registered yet; return them."""
    known = set(instance.get_dynamic_partitions(GEO_EXPERIMENTS.name or ""))
    new = [e for e in completed_geo_experiments(warehouse) if e not in known]
    if new:
        instance.add_dynamic_partitions(GEO_EXPERIMENTS.name or "", new)
    return new
