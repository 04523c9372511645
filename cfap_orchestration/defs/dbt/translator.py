"""How dbt resources appear in Dagster: keys by schema, groups by layer, daily partitions
for incremental models, and each dbt source mapped onto the ingest asset that lands it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from cfap_orchestration.defs.ingest.partitions import daily_partitions

LAYER_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "marts"}


class CfapDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(
            settings=DagsterDbtTranslatorSettings(
                enable_asset_checks=True, enable_source_tests_as_checks=True
            )
        )
        self._daily = daily_partitions()

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        resource_type = dbt_resource_props["resource_type"]
        name = dbt_resource_props["name"]
        if resource_type == "source":
            # raw/<table>: the key of the ingest asset that lands this source.
            return dg.AssetKey([dbt_resource_props["source_name"], name])
        # Models and seeds: <schema>/<name>, the relation's own address in the warehouse.
        return dg.AssetKey([dbt_resource_props["schema"].split("_")[-1], name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "seed":
            return "reference"
        return LAYER_GROUPS.get(self._layer(dbt_resource_props), "staging")

    def get_partitions_def(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.PartitionsDefinition | None:
        if dbt_resource_props.get("config", {}).get("materialized") == "incremental":
            return self._daily
        return None

    @staticmethod
    def _layer(dbt_resource_props: Mapping[str, Any]) -> str:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "staging"
