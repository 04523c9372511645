"""Data-quality report over the warehouse."""

import dagster as dg

from cfap_orchestration.defs.quality.assets import data_quality_report


def quality_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[data_quality_report])
