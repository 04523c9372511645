"""BigQuery schema files for the tables terraform creates, generated from the Python contracts.

Terraform creates the three `causal` tables with explicit schemas (terraform/bigquery.tf),
each loaded from `terraform/schemas/<table>.json`. Those files are written from the same
`ResultTable` contracts the code writes rows with, so the two cannot drift apart:

    python -m cfap_orchestration.bigquery_schemas terraform/schemas          # rewrite them
    python -m cfap_orchestration.bigquery_schemas terraform/schemas --check  # exit 1 if stale

Every column is NULLABLE: the writers leave optional fields null (a fit without an
artifact, a run that never started). No Dagster imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from cfap_orchestration.studies.job_status import JOB_STATUS
from cfap_orchestration.studies.results import (
    CAUSAL_MODEL_REGISTRY,
    LIFT_ANALYSIS_RESULTS,
    ResultTable,
)

# The tables terraform defines, in the order their files are written.
TERRAFORM_TABLES: tuple[ResultTable, ...] = (
    LIFT_ANALYSIS_RESULTS,
    CAUSAL_MODEL_REGISTRY,
    JOB_STATUS,
)
BIGQUERY_TYPES = frozenset({"STRING", "INT64", "FLOAT64", "BOOL", "JSON", "TIMESTAMP", "DATE"})


class SchemaField(TypedDict):
    """One column in BigQuery's JSON schema format (what `bq mk --schema` and terraform take)."""

    name: str
    type: str
    mode: str
    description: str


def bigquery_schema(table: ResultTable) -> list[SchemaField]:
    """The table's columns, in contract order, as BigQuery schema fields."""
    fields: list[SchemaField] = []
    for column in table.columns:
        if column.bigquery_type not in BIGQUERY_TYPES:
            raise ValueError(
                f"{table.schema}.{table.name}.{column.name}: no BigQuery type for "
                f"{column.duckdb_type!r} (got {column.bigquery_type!r})"
            )
        fields.append(
            SchemaField(
                name=column.name,
                type=column.bigquery_type,
                mode="NULLABLE",
                description=column.description,
            )
        )
    return fields


def schema_text(table: ResultTable) -> str:
    """The schema file's exact contents: indented JSON with a trailing newline."""
    return json.dumps(bigquery_schema(table), indent=2, ensure_ascii=False) + "\n"


def schema_path(folder: Path, table: ResultTable) -> Path:
    return folder / f"{table.name}.json"


def stale_files(folder: Path, tables: Sequence[ResultTable] = TERRAFORM_TABLES) -> list[Path]:
    """Schema files that are missing or differ from their contract."""
    stale = []
    for table in tables:
        path = schema_path(folder, table)
        if not path.is_file() or path.read_text(encoding="utf-8") != schema_text(table):
            stale.append(path)
    return stale


def write_schemas(folder: Path, tables: Sequence[ResultTable] = TERRAFORM_TABLES) -> list[Path]:
    """Write one `<table>.json` per table into `folder` (created if needed); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        path = schema_path(folder, table)
        path.write_text(schema_text(table), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cfap_orchestration.bigquery_schemas",
        description="Write the BigQuery schema files of the tables terraform creates.",
    )
    parser.add_argument("folder", type=Path, help="where the files go, e.g. terraform/schemas")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    args = parser.parse_args(argv)
    folder: Path = args.folder
    if args.check:
        stale = stale_files(folder)
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
