"""Batch uploads from the landing zone: offline conversions and experiment definitions.

Each asset loads every file waiting in its landing folder. A valid file is upserted on its
key and moved to `loaded/`; a file whose bytes were loaded before is only moved; a bad file
is moved to `quarantine/` with a reason file, the good ones still load, and the run fails
with every refused file and why (the `landed_files_valid` check says the same). The
landing sensor requests these runs when files arrive.
"""

from collections.abc import Iterator

import dagster as dg

from cfap_orchestration.landing import (
    BATCH_CONTRACTS,
    EXPERIMENTS,
    OFFLINE_CONVERSIONS,
    RAW_SCHEMA,
    BatchContract,
    LoadReport,
    load_landed_files,
)

FILES_VALID_CHECK = "landed_files_valid"
DESCRIPTIONS = {
    OFFLINE_CONVERSIONS: (
        "Conversions that happened off the site (phone orders, in-store sales, CRM-qualified "
        "leads), uploaded as CSV to the landing zone's offline_conversions/ folder: one row per "
        "conversion_id, with its value, currency and the click id that links it to an ad."
    ),
    EXPERIMENTS: (
        "Geo holdout experiments defined by the growth team, uploaded as CSV to the landing "
        "zone's experiments/ folder. They join the seeded registry, so a new experiment gets "
        "its own partition and readouts without a code change."
    ),
}


def landed_asset_key(contract: BatchContract) -> dg.AssetKey:
    return dg.AssetKey([RAW_SCHEMA, contract.table])


def _files_check(report: LoadReport) -> dg.AssetCheckResult:
    if report.refused:
        listed = "; ".join(f"{name}: {reason}" for name, reason in report.refused.items())
        description = f"{len(report.refused)} file(s) refused and quarantined. {listed}"
    else:
        description = "Every waiting file matched its contract."
    return dg.AssetCheckResult(
        check_name=FILES_VALID_CHECK,
        passed=not report.refused,
        description=description,
        metadata={"refused": dg.MetadataValue.json(report.refused)},
    )


def build_landed_asset(contract: BatchContract) -> dg.AssetsDefinition:
    key = landed_asset_key(contract)

    @dg.asset(
        key=key,
        group_name="ingest",
        description=DESCRIPTIONS[contract.kind],
        kinds={"python", "csv"},
        required_resource_keys={"warehouse", "landing_zone"},
        # Unpartitioned, but allowed in the partition-range runs of the other extracts.
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec(
                FILES_VALID_CHECK,
                asset=key,
                description=f"Every file in {contract.kind}/ matched its contract; a refused "
                "file is in quarantine/ with a reason file, and this check names it (the "
                "run then fails with the same message, after the good files are recorded).",
            )
        ],
        metadata={"landing_folder": contract.kind, "primary_key": [contract.key]},
    )
    def _load(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        landing_dir = context.resources.landing_zone.root()
        report = load_landed_files(
            context.resources.warehouse.get(), landing_dir, contract, context.run.run_id
        )
        context.log.info(
            f"raw.{contract.table}: {len(report.loaded)} file(s), {report.rows} rows loaded; "
            f"{len(report.already_loaded)} already loaded; {len(report.refused)} refused"
        )
        for name, reason in report.refused.items():
            context.log.error(f"quarantined {contract.kind}/{name}: {reason}")
        check = _files_check(report)
        yield dg.MaterializeResult(
            metadata={
                "rows_loaded": report.rows,
                "files_loaded": dg.MetadataValue.json(report.loaded),
                "files_already_loaded": dg.MetadataValue.json(report.already_loaded),
                "dagster/table_name": f"{RAW_SCHEMA}.{contract.table}",
            },
            check_results=[check],
        )
        if report.refused:
            # After the result: the files that did load are recorded; the run still fails.
            raise dg.Failure(description=f"raw.{contract.table}: {check.description}")

    return _load


landed_assets = [build_landed_asset(c) for c in BATCH_CONTRACTS.values()]
