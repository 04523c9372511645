"""Reference data computed in Python upstream of dbt."""

import dagster as dg

from cfap_orchestration.defs.reference.assets import public_holidays_asset


def reference_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[public_holidays_asset])
