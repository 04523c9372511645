"""Raw extract assets: one per raw table, daily partitions, a whole range in one run.

Each run pulls its partition range (plus an optional restatement lookback) through the
platform connector and replaces exactly those days in `raw.<table>`, in one transaction.
Quality checks run on the rows just written and are reported with the materialization.
"""

import warnings
from datetime import date

import dagster as dg
import pandas as pd
from pydantic import Field

from cfap_orchestration.connectors.errors import ConnectorError, RetriesExhaustedError
from cfap_orchestration.defs.ingest import checks
from cfap_orchestration.defs.ingest.partitions import (
    daily_partitions,
    restatement_dates,
    window_dates,
)
from cfap_orchestration.defs.ingest.raw_tables import RAW_TABLES, RawTable
from cfap_orchestration.landing import FIRST_PARTY_EVENTS, LandingFileError, quarantine
from cfap_orchestration.settings import get_settings

# single_run backfills are what make a partition range one run; the beta label is noise here.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")

RAW_SCHEMA = "raw"
PRIMARY_KEY_CHECK = "primary_key_unique"
REQUIRED_FIELDS_CHECK = "required_fields_present"
NON_NEGATIVE_CHECK = "amounts_non_negative"


class IngestConfig(dg.Config):
    lookback_days: int = Field(
        default=0,
        ge=0,
        le=120,
        description=(
            "Also re-pull and replace this many days before the first partition of the run, so "
            "late platform restatements land. The daily schedule sets each source's default."
        ),
    )


def raw_asset_key(table: RawTable) -> dg.AssetKey:
    return dg.AssetKey([RAW_SCHEMA, table.name])


def _check_specs(table: RawTable) -> list[dg.AssetCheckSpec]:
    key = raw_asset_key(table)
    specs = [
        dg.AssetCheckSpec(
            PRIMARY_KEY_CHECK,
            asset=key,
            blocking=True,
            description=f"No duplicate ({', '.join(table.primary_key)}) in the rows written.",
        ),
        dg.AssetCheckSpec(
            REQUIRED_FIELDS_CHECK,
            asset=key,
            blocking=True,
            description=f"{', '.join(table.required)} present and non-empty in every row.",
        ),
    ]
    if table.non_negative:
        specs.append(
            dg.AssetCheckSpec(
                NON_NEGATIVE_CHECK,
                asset=key,
                description=f"{', '.join(table.non_negative)} are numbers and never negative.",
            )
        )
    return specs


def _check_results(table: RawTable, frame: pd.DataFrame) -> list[dg.AssetCheckResult]:
    outcomes = {
        PRIMARY_KEY_CHECK: checks.duplicate_keys(frame, table.primary_key),
        REQUIRED_FIELDS_CHECK: checks.missing_required(frame, table.required),
    }
    if table.non_negative:
        outcomes[NON_NEGATIVE_CHECK] = checks.negative_amounts(frame, table.non_negative)
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=outcome.passed,
            description=outcome.description,
            metadata=outcome.metadata,
            severity=dg.AssetCheckSeverity.ERROR,
        )
        for name, outcome in outcomes.items()
    ]


def _column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(c), type=str(frame[c].dtype)) for c in frame.columns]
    )


def build_raw_asset(table: RawTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=raw_asset_key(table),
        description=table.description,
        group_name="ingest",
        partitions_def=daily_partitions(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        required_resource_keys={table.platform, "warehouse"},
        check_specs=_check_specs(table),
        kinds={table.platform.split("_")[0], "python"},
        tags={"platform": table.platform},
        metadata={
            "partition_expr": "partition_date",
            "primary_key": list(table.primary_key),
            "default_lookback_days": table.default_lookback_days,
        },
    )
    def _extract(context: dg.AssetExecutionContext, config: IngestConfig) -> dg.MaterializeResult:
        window = context.partition_time_window
        dates = restatement_dates(
            window_dates(window.start, window.end),
            config.lookback_days,
            get_settings().start_date,
        )
        try:
            frame, stats = table.extract(
                getattr(context.resources, table.platform), dates[0], dates[-1]
            )
        except ConnectorError as exc:
            # The message already names the platform, the call and the remedy.
            raise dg.Failure(
                description=f"raw.{table.name} {dates[0]}..{dates[-1]}: {exc}",
                metadata={"error": type(exc).__name__, "platform": exc.platform},
                allow_retries=isinstance(exc, RetriesExhaustedError),
            ) from None
        except LandingFileError as exc:
            raise _refused_file(context, table, exc) from None
        frame = _conform(table, frame)
        written = context.resources.warehouse.get().replace_partitions(
            RAW_SCHEMA, table.name, frame, dates
        )
        context.log.info(
            f"{written.table}: wrote {written.rows_written} rows for {dates[0]}..{dates[-1]} "
            f"(replaced {written.rows_replaced}) in {stats.requests} requests"
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": written.rows_written,
                "dagster/table_name": f"{RAW_SCHEMA}.{table.name}",
                "dagster/column_schema": _column_schema(frame),
                "first_date": str(dates[0]),
                "last_date": str(dates[-1]),
                "restated_days": len(dates) - len(window_dates(window.start, window.end)),
                "rows_replaced": written.rows_replaced,
                **stats.as_metadata(),
            },
            check_results=_check_results(table, frame),
        )

    return _extract


def _refused_file(
    context: dg.AssetExecutionContext, table: RawTable, exc: LandingFileError
) -> dg.Failure:
    """A landing file that breaks its contract goes to quarantine; the run fails naming it."""
    description = f"raw.{table.name}: {exc}"
    if exc.path is not None and exc.path.exists():
        landing_dir = context.resources.landing_zone.root()
        moved = quarantine(landing_dir, FIRST_PARTY_EVENTS, exc.path, str(exc))
        description += f". The file was moved to {moved} with a .reason.txt beside it."
    return dg.Failure(description=description, metadata={"error": "LandingFileError"})


def _conform(table: RawTable, frame: pd.DataFrame) -> pd.DataFrame:
    """Fix the column order to the table's contract; an unexpected column is kept at the end."""
    missing = [c for c in table.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"raw.{table.name}: extract lacks contract columns {missing}")
    extra = [c for c in frame.columns if c not in table.columns]
    frame = frame[[*table.columns, *extra]].copy()
    frame["partition_date"] = [
        d if isinstance(d, date) else pd.Timestamp(d).date() for d in frame["partition_date"]
    ]
    return frame


raw_assets = [build_raw_asset(table) for table in RAW_TABLES]
