"""Reports: the results workbook (with a CSV per sheet) and the estimates report."""

import dagster as dg

from cfap_orchestration.defs.report.assets import report_assets


def report_definitions(*, sandbox: bool) -> dg.Definitions:
    """The report assets; with the sandbox, both also show the scorecard against its truth."""
    return dg.Definitions(assets=report_assets(sandbox=sandbox))
