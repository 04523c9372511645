"""Writing raw extracts so that a partition is replaced whole or not at all.

`replace_partitions` deletes the rows of the given partitions and inserts the new
ones inside one transaction: re-running a partition leaves an identical table, and
a crash mid-write leaves the previous rows. No Dagster imports.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

PARTITION_COLUMN = "partition_date"
# Schema, table and column names are written into SQL (they cannot be query parameters),
# so every one is checked against this allow-list first.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# BigQuery project ids: lower-case letters, digits and hyphens (optionally domain-scoped).
PROJECT_ID = re.compile(r"^([a-z][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def sql_identifier(name: str, what: str = "identifier") -> str:
    """`name` if it is a plain SQL identifier (letters, digits, underscores), else an error."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid SQL identifier (letters, digits and underscores, "
            "not starting with a digit, at most 128 characters)"
        )
    return name


def _check_names(schema: str, table: str, columns: Iterable[Any] = ()) -> None:
    sql_identifier(schema, "schema")
    sql_identifier(table, "table")
    for column in columns:
        sql_identifier(str(column), f"column of {schema}.{table}")


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
        _check_names(schema, table, frame.columns)
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
        _check_names(schema, table, frame.columns)
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
        _check_names(schema, table, [*frame.columns, *(n for n, _ in column_types), *match])
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
        _check_names(schema, table, [name for name, _ in column_types])
        ddl = ", ".join(f'"{name}" {kind}' for name, kind in column_types)
        with self._transaction() as con:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" ({ddl})')

    def relation(self, schema: str, table: str) -> str:
        _check_names(schema, table)
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
            f"FROM {self.relation(schema, table)} AS t"
        ).iloc[0]
        return f"{row['n']}:{row['h']}"


class BigQueryWarehouse:
    """The production warehouse: dataset `<prefix>_<schema>`, tables partitioned by day.

    A partition replace loads the frame into a short-lived staging table of its own, then
    runs DELETE + INSERT in one multi-statement transaction with the partition list as a
    query parameter: readers see the old partition or the new one, never a mix, and a
    re-run of a partition replaces that partition only. Every value reaches BigQuery as a
    query parameter; names are checked against the identifier allow-list first.

    `connect` opens a client for one operation (the Dagster resource passes dagster-gcp's
    `BigQueryResource.get_client`); by default a client from Application Default
    Credentials: Workload Identity on GKE, or the key file `GOOGLE_APPLICATION_CREDENTIALS`.
    """

    dialect = "bigquery"
    # A staging table nobody dropped (the process died) expires by itself.
    STAGING_TTL = timedelta(hours=6)

    def __init__(
        self,
        project: str,
        location: str,
        dataset_prefix: str,
        connect: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        if not PROJECT_ID.match(project):
            raise ValueError(f"GCP project id {project!r} is not a valid project id")
        self.project = project
        self.location = location
        self.dataset_prefix = sql_identifier(dataset_prefix, "dataset prefix")
        self._connect = connect or self._default_client

    def _default_client(self) -> AbstractContextManager[Any]:
        from google.cloud import bigquery

        return nullcontext(bigquery.Client(project=self.project, location=self.location))

    def dataset(self, schema: str) -> str:
        return f"{self.project}.{self.dataset_prefix}_{sql_identifier(schema, 'schema')}"

    def table_id(self, schema: str, table: str) -> str:
        _check_names(schema, table)
        return f"{self.dataset(schema)}.{table}"

    def relation(self, schema: str, table: str) -> str:
        return f"`{self.table_id(schema, table)}`"

    def replace_partitions(
        self, schema: str, table: str, frame: pd.DataFrame, partitions: Sequence[date]
    ) -> WriteResult:
        from google.cloud import bigquery

        if not partitions:
            raise ValueError(f"{schema}.{table}: no partitions given to replace")
        _check_names(schema, table, frame.columns)
        check_frame_partitions(f"{schema}.{table}", frame, partitions)
        target = self.table_id(schema, table)
        with self._connect() as client, self._staged(client, schema, table, frame) as staging:
            self._ensure_partitioned(client, target, staging)
            columns = ", ".join(f"`{c}`" for c in frame.columns)
            script = (
                "BEGIN TRANSACTION;\n"
                f"DELETE FROM `{target}` WHERE `{PARTITION_COLUMN}` IN UNNEST(@partitions);\n"
                f"INSERT INTO `{target}` ({columns}) SELECT {columns} FROM `{staging}`;\n"
                "COMMIT TRANSACTION;"
            )
            params = [bigquery.ArrayQueryParameter("partitions", "DATE", sorted(partitions))]
            self._run(client, script, params)
        return WriteResult(f"{schema}.{table}", len(frame), -1, len(partitions))

    def replace_table(self, schema: str, table: str, frame: pd.DataFrame) -> WriteResult:
        from google.cloud import bigquery

        _check_names(schema, table, frame.columns)
        config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
        with self._connect() as client:
            job = client.load_table_from_dataframe(
                frame, self.table_id(schema, table), job_config=config
            )
            job.result()
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
        """Delete the matching rows and append `frame`, in one multi-statement transaction.

        The table is created with `column_types` (an explicit schema) when it is new.
        """
        from google.cloud import bigquery

        _check_names(schema, table, [*frame.columns, *(n for n, _ in column_types), *match])
        _check_match(match)
        fields = [bigquery.SchemaField(name, kind) for name, kind in column_types]
        # JSON is loaded as text and parsed in the INSERT: a dataframe load has no JSON type.
        staged_fields = [
            bigquery.SchemaField(name, "STRING" if kind == "JSON" else kind)
            for name, kind in column_types
        ]
        target = self.table_id(schema, table)
        with (
            self._connect() as client,
            self._staged(client, schema, table, frame, staged_fields) as staging,
        ):
            client.create_table(bigquery.Table(target, schema=fields), exists_ok=True)
            conditions, params = [], []
            for i, (column, values) in enumerate(match.items()):
                conditions.append(f"`{column}` IN UNNEST(@match_{i})")
                params.append(
                    bigquery.ArrayQueryParameter(f"match_{i}", "STRING", [str(v) for v in values])
                )
            columns = ", ".join(f"`{name}`" for name, _ in column_types)
            values = ", ".join(
                f"PARSE_JSON(`{name}`)" if kind == "JSON" else f"`{name}`"
                for name, kind in column_types
            )
            script = (
                "BEGIN TRANSACTION;\n"
                f"DELETE FROM `{target}` WHERE {' AND '.join(conditions)};\n"
                f"INSERT INTO `{target}` ({columns}) SELECT {values} FROM `{staging}`;\n"
                "COMMIT TRANSACTION;"
            )
            self._run(client, script, params)
        return WriteResult(f"{schema}.{table}", len(frame), -1, 0)

    def ensure_table(
        self, schema: str, table: str, column_types: Sequence[tuple[str, str]]
    ) -> None:
        """Create an empty table with an explicit schema if it does not exist yet."""
        from google.cloud import bigquery

        _check_names(schema, table, [name for name, _ in column_types])
        fields = [bigquery.SchemaField(name, kind) for name, kind in column_types]
        with self._connect() as client:
            client.create_table(
                bigquery.Table(self.table_id(schema, table), schema=fields), exists_ok=True
            )

    def table_exists(self, schema: str, table: str) -> bool:
        from google.api_core.exceptions import NotFound

        with self._connect() as client:
            try:
                client.get_table(self.table_id(schema, table))
            except NotFound:
                return False
        return True

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run `sql` with positional `?` parameters (BigQuery's positional parameters)."""
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(None, _bq_type(p), p) for p in params]
        )
        with self._connect() as client:
            frame: pd.DataFrame = client.query(sql, job_config=config).to_dataframe()
        return frame

    @contextmanager
    def _staged(
        self,
        client: Any,
        schema: str,
        table: str,
        frame: pd.DataFrame,
        fields: Sequence[Any] | None = None,
    ) -> Iterator[str]:
        """`frame` loaded into a staging table of this write alone, dropped afterwards."""
        from google.cloud import bigquery

        staging = f"{self.dataset(schema)}._staging_{table}_{uuid.uuid4().hex[:12]}"
        config = bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE")
        if fields is not None:
            config.schema = list(fields)
        client.load_table_from_dataframe(frame, staging, job_config=config).result()
        try:
            loaded = client.get_table(staging)
            loaded.expires = datetime.now(UTC) + self.STAGING_TTL
            client.update_table(loaded, ["expires"])
            yield staging
        finally:
            client.delete_table(staging, not_found_ok=True)

    # Two transactions on one table at once: BigQuery aborts the later one. It is retried,
    # since each replaces only its own partitions or rows.
    CONFLICT_RETRIES = 4

    def _run(self, client: Any, script: str, params: Sequence[Any]) -> None:
        from google.api_core.exceptions import BadRequest, Conflict
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=list(params))
        for attempt in range(self.CONFLICT_RETRIES + 1):
            try:
                client.query(script, job_config=config).result()
                return
            except (BadRequest, Conflict) as exc:
                if "concurrent update" not in str(exc) or attempt == self.CONFLICT_RETRIES:
                    raise
                time.sleep(min(2**attempt, 30))

    @staticmethod
    def _ensure_partitioned(client: Any, target: str, staging: str) -> None:
        """Create `target` like the staging table, partitioned by day on partition_date."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        try:
            client.get_table(target)
        except NotFound:
            table = bigquery.Table(target, schema=client.get_table(staging).schema)
            table.time_partitioning = bigquery.TimePartitioning(field=PARTITION_COLUMN)
            client.create_table(table, exists_ok=True)


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


def _check_match(match: Mapping[str, Sequence[Any]]) -> None:
    """An empty match would delete every row (or none): refuse it before any SQL."""
    if not match or any(len(values) == 0 for values in match.values()):
        raise ValueError("replace_rows needs at least one value for every match column")


def _match_clause(match: Mapping[str, Sequence[Any]]) -> tuple[str, list[Any]]:
    """`col IN (?, ...) AND ...` with its parameters."""
    _check_match(match)
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
