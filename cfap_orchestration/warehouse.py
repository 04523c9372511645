"""Writing raw extracts so that a partition is replaced whole or not at all.

`replace_partitions` deletes the rows of the given partitions and inserts the new
ones inside one transaction: re-running a partition leaves an identical table, and
a crash mid-write leaves the previous rows. No Dagster imports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

PARTITION_COLUMN = "partition_date"


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows_written: int
    rows_replaced: int
    partitions: int


class Warehouse(Protocol):
    dialect: str

    def replace_partitions(
        self, schema: str, table: str, frame: pd.DataFrame, partitions: Sequence[date]
    ) -> WriteResult: ...

    def replace_table(self, schema: str, table: str, frame: pd.DataFrame) -> WriteResult: ...

    def replace_rows(
        self,
        schema: str,
        table: str,
        frame: pd.DataFrame,
        *,
        column_types: Sequence[tuple[str, str]],
        match: Mapping[str, Sequence[Any]],
    ) -> WriteResult: ...

    def ensure_table(
        self, schema: str, table: str, column_types: Sequence[tuple[str, str]]
    ) -> None: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame: ...

    def relation(self, schema: str, table: str) -> str: ...

    def table_exists(self, schema: str, table: str) -> bool: ...


def check_frame_partitions(table: str, frame: pd.DataFrame, partitions: Sequence[date]) -> None:
    """Refuse rows outside the partitions being replaced: they would be duplicated or lost."""
    if PARTITION_COLUMN not in frame.columns:
        raise ValueError(f"{table}: frame has no {PARTITION_COLUMN!r} column")
    if frame.empty:
        return
    if frame[PARTITION_COLUMN].isna().any():
        raise ValueError(f"{table}: {PARTITION_COLUMN} is null in some rows")
    outside = set(frame[PARTITION_COLUMN]) - set(partitions)
    if outside:
        shown = ", ".join(str(d) for d in sorted(outside)[:5])
        raise ValueError(
            f"{table}: rows dated {shown} fall outside the partitions being written "
            f"({min(partitions)}..{max(partitions)})"
        )


def _duckdb_type(series: pd.Series) -> str:
    if series.name == PARTITION_COLUMN:
        return "DATE"
    if pd.api.types.is_bool_dtype(series):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series):
        return "BIGINT"
    if pd.api.types.is_float_dtype(series):
        return "DOUBLE"
    return "VARCHAR"


class WarehouseBusyError(duckdb.IOException):
    """Another process holds the DuckDB file (it takes one writer, and no reader beside it)."""


class DuckDBWarehouse:
    """The local warehouse: one DuckDB file, one writer at a time."""

    dialect = "duckdb"

    def __init__(self, path: Path | str, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        # A sensor's short read can hold the file when a run connects: wait it out.
        self.busy_timeout = busy_timeout

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() + pause > deadline:
                    raise WarehouseBusyError(
                        f"{self.path} is in use by another process (DuckDB takes one process "
                        f"at a time; waited {self.busy_timeout:g}s): {exc}"
                    ) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def replace_partitions(
        self, schema: str, table: str, frame: pd.DataFrame, partitions: Sequence[date]
    ) -> WriteResult:
        if not partitions:
            raise ValueError(f"{schema}.{table}: no partitions given to replace")
        check_frame_partitions(f"{schema}.{table}", frame, partitions)
        target = f'"{schema}"."{table}"'
        with self._transaction() as con:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._ensure_table(con, schema, table, frame)
            con.execute("CREATE TEMP TABLE _partitions (d DATE)")
            con.executemany("INSERT INTO _partitions VALUES (?)", [(d,) for d in partitions])
            replaced = con.execute(
                f"DELETE FROM {target} WHERE {PARTITION_COLUMN} IN (SELECT d FROM _partitions)"
            ).fetchone()
            con.register("_incoming", frame.reset_index(drop=True).copy())
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _incoming")
        return WriteResult(
            table=f"{schema}.{table}",
            rows_written=len(frame),
            rows_replaced=int(replaced[0]) if replaced else 0,
            partitions=len(partitions),
        )

    def replace_table(self, schema: str, table: str, frame: pd.DataFrame) -> WriteResult:
        """Swap a whole (unpartitioned) table for `frame`, atomically."""
        with self._transaction() as con:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.register("_incoming", frame.reset_index(drop=True).copy())
            con.execute(f'CREATE OR REPLACE TABLE "{schema}"."{table}" AS SELECT * FROM _incoming')
        return WriteResult(f"{schema}.{table}", len(frame), 0, 0)

    def replace_rows(
        self,
        schema: str,
        table: str,
        frame: pd.DataFrame,
        *,
        column_types: Sequence[tuple[str, str]],
        match: Mapping[str, Sequence[Any]],
    ) -> WriteResult:
        """Replace the rows whose `match` columns take the given values, in one transaction.

        The table is created with `column_types` (an explicit schema) when it is new.
        """
        where, params = _match_clause(match)
        target = f'"{schema}"."{table}"'
        with self._transaction() as con:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            ddl = ", ".join(f'"{name}" {kind}' for name, kind in column_types)
            con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({ddl})")
            replaced = con.execute(f"DELETE FROM {target} WHERE {where}", params).fetchone()
            con.register("_incoming", frame.reset_index(drop=True).copy())
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _incoming")
        return WriteResult(f"{schema}.{table}", len(frame), int(replaced[0]) if replaced else 0, 0)

    def ensure_table(
        self, schema: str, table: str, column_types: Sequence[tuple[str, str]]
    ) -> None:
        """Create an empty table with an explicit schema if it does not exist yet."""
        ddl = ", ".join(f'"{name}" {kind}' for name, kind in column_types)
        with self._transaction() as con:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" ({ddl})')

    def relation(self, schema: str, table: str) -> str:
        return f'"{schema}"."{table}"'

    def table_exists(self, schema: str, table: str) -> bool:
        if not self.path.exists():
            return False
        found = self.query(
            "SELECT count(*) AS n FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
        return bool(found["n"].iloc[0])

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection, one transaction: committed whole or rolled back whole."""
        con = self.connect()
        try:
            con.execute("BEGIN TRANSACTION")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    @staticmethod
    def _ensure_table(
        con: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pd.DataFrame
    ) -> None:
        existing = con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        target = f'"{schema}"."{table}"'
        if not existing:
            cols = ", ".join(f'"{c}" {_duckdb_type(frame[c])}' for c in frame.columns)
            con.execute(f"CREATE TABLE {target} ({cols})")
            return
        known = {row[0] for row in existing}
        for column in frame.columns:
            if column not in known:  # new field from the API: add it, never drop data
                con.execute(
                    f'ALTER TABLE {target} ADD COLUMN "{column}" {_duckdb_type(frame[column])}'
                )

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        con = self.connect(read_only=self.path.exists())
        try:
            return con.execute(sql, list(params)).df()
        finally:
            con.close()

    def table_checksum(self, schema: str, table: str) -> str:
        """An order-independent fingerprint of a table's contents."""
        row = self.query(
            f"SELECT count(*) AS n, coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR AS h "
            f'FROM "{schema}"."{table}" AS t'
        ).iloc[0]
        return f"{row['n']}:{row['h']}"


class BigQueryWarehouse:
    """The production warehouse: dataset `<prefix>_<schema>`, tables partitioned by day.

    A partition replace loads the frame into a short-lived staging table, then runs
    DELETE + INSERT in one multi-statement transaction, with the partition list as a
    query parameter: readers see the old partition or the new one, never a mix.
    """

    dialect = "bigquery"

    def __init__(self, project: str, location: str, dataset_prefix: str) -> None:
        self.project = project
        self.location = location
        self.dataset_prefix = dataset_prefix

    def dataset(self, schema: str) -> str:
        return f"{self.project}.{self.dataset_prefix}_{schema}"

    def _client(self) -> Any:
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, location=self.location)

    def replace_partitions(
        self, schema: str, table: str, frame: pd.DataFrame, partitions: Sequence[date]
    ) -> WriteResult:
        from google.cloud import bigquery

        if not partitions:
            raise ValueError(f"{schema}.{table}: no partitions given to replace")
        check_frame_partitions(f"{schema}.{table}", frame, partitions)
        client = self._client()
        target = f"{self.dataset(schema)}.{table}"
        staging = f"{self.dataset(schema)}._staging_{table}"
        load_config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
        client.load_table_from_dataframe(frame, staging, job_config=load_config).result()
        try:
            self._ensure_table(client, target, staging)
            columns = ", ".join(f"`{c}`" for c in frame.columns)
            script = (
                "BEGIN TRANSACTION;\n"
                f"DELETE FROM `{target}` WHERE {PARTITION_COLUMN} IN UNNEST(@partitions);\n"
                f"INSERT INTO `{target}` ({columns}) SELECT {columns} FROM `{staging}`;\n"
                "COMMIT TRANSACTION;"
            )
            params = [bigquery.ArrayQueryParameter("partitions", "DATE", list(partitions))]
            job = client.query(script, job_config=bigquery.QueryJobConfig(query_parameters=params))
            job.result()
        finally:
            client.delete_table(staging, not_found_ok=True)
        return WriteResult(f"{schema}.{table}", len(frame), -1, len(partitions))

    def replace_table(self, schema: str, table: str, frame: pd.DataFrame) -> WriteResult:
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
        target = f"{self.dataset(schema)}.{table}"
        self._client().load_table_from_dataframe(frame, target, job_config=config).result()
        return WriteResult(f"{schema}.{table}", len(frame), -1, 0)

    def replace_rows(
        self,
        schema: str,
        table: str,
        frame: pd.DataFrame,
        *,
        column_types: Sequence[tuple[str, str]],
        match: Mapping[str, Sequence[Any]],
    ) -> WriteResult:
        """Delete the matching rows and append `frame`, in one multi-statement transaction."""
        from google.cloud import bigquery

        client = self._client()
        target = self.relation(schema, table)
        staging = f"{self.dataset(schema)}._staging_{table}"
        schema_fields = [bigquery.SchemaField(name, kind) for name, kind in column_types]
        load_config = bigquery.LoadJobConfig(
            write_disposition="WRITE_TRUNCATE", schema=schema_fields
        )
        client.load_table_from_dataframe(frame, staging, job_config=load_config).result()
        try:
            client.create_table(bigquery.Table(target.strip("`"), schema=schema_fields),
                                exists_ok=True)  # fmt: skip
            conditions: list[str] = []
            params: list[Any] = []
            for i, (column, values) in enumerate(match.items()):
                conditions.append(f"`{column}` IN UNNEST(@match_{i})")
                params.append(bigquery.ArrayQueryParameter(f"match_{i}", "STRING", list(values)))
            columns = ", ".join(f"`{name}`" for name, _ in column_types)
            script = (
                "BEGIN TRANSACTION;\n"
                f"DELETE FROM {target} WHERE {' AND '.join(conditions)};\n"
                f"INSERT INTO {target} ({columns}) SELECT {columns} FROM `{staging}`;\n"
                "COMMIT TRANSACTION;"
            )
            config = bigquery.QueryJobConfig(query_parameters=params)
            client.query(script, job_config=config).result()
        finally:
            client.delete_table(staging, not_found_ok=True)
        return WriteResult(f"{schema}.{table}", len(frame), -1, 0)

    def ensure_table(
        self, schema: str, table: str, column_types: Sequence[tuple[str, str]]
    ) -> None:
        from google.cloud import bigquery

        fields = [bigquery.SchemaField(name, kind) for name, kind in column_types]
        table_id = f"{self.dataset(schema)}.{table}"
        self._client().create_table(bigquery.Table(table_id, schema=fields), exists_ok=True)

    def relation(self, schema: str, table: str) -> str:
        return f"`{self.dataset(schema)}.{table}`"

    def table_exists(self, schema: str, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        try:
            self._client().get_table(f"{self.dataset(schema)}.{table}")
        except NotFound:
            return False
        return True

    @staticmethod
    def _ensure_table(client: Any, target: str, staging: str) -> None:
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        try:
            client.get_table(target)
        except NotFound:
            schema = client.get_table(staging).schema
            table = bigquery.Table(target, schema=schema)
            table.time_partitioning = bigquery.TimePartitioning(field=PARTITION_COLUMN)
            client.create_table(table)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(None, _bq_type(p), p) for p in params]
        )
        return self._client().query(sql, job_config=config).to_dataframe()


def _bq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, date):
        return "DATE"
    return "STRING"


def _match_clause(match: Mapping[str, Sequence[Any]]) -> tuple[str, list[Any]]:
    """`col IN (?, ...) AND ...` with its parameters; an empty match would delete everything."""
    if not match or any(len(values) == 0 for values in match.values()):
        raise ValueError("replace_rows needs at least one value for every match column")
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in match.items():
        clauses.append(f'"{column}" IN ({", ".join("?" for _ in values)})')
        params.extend(values)
    return " AND ".join(clauses), params


BIGQUERY_TYPES = {
    "VARCHAR": "STRING",
    "DOUBLE": "FLOAT64",
    "BIGINT": "INT64",
    "BOOLEAN": "BOOL",
    "DATE": "DATE",
    "JSON": "JSON",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
}


def column_types_for(
    dialect: str, duckdb_types: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(name, type) pairs written in DuckDB's names, in the warehouse's own dialect."""
    if dialect != "bigquery":
        return list(duckdb_types)
    return [(name, BIGQUERY_TYPES[kind]) for name, kind in duckdb_types]
