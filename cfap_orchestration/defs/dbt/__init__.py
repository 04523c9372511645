"""dbt: staging, intermediate and marts on DuckDB (local) or BigQuery (prod)."""

import dagster as dg
from dagster_dbt import DbtCliResource

from cfap_orchestration.defs.dbt.assets import cfap_dbt_models
from cfap_orchestration.defs.dbt.project import DBT_EXECUTABLE, cfap_dbt_project


def dbt_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[cfap_dbt_models()],
        resources={
            "dbt": DbtCliResource(project_dir=cfap_dbt_project(), dbt_executable=DBT_EXECUTABLE)
        },
    )
