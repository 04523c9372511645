"""The SQL the BigQuery warehouse sends: every value a query parameter, every name checked.

Nothing here can reach BigQuery, so the warehouse gets a client that records each call
instead (a stand-in for google-cloud-bigquery's `Client`, not for our code). The scripts
it records are parsed with sqlglot's BigQuery dialect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import pytest
import sqlglot
from google.api_core.exceptions import BadRequest, NotFound
from google.cloud import bigquery

from cfap_orchestration.warehouse import BigQueryWarehouse, sql_identifier

PROJECT = "cfap-offline"
DAYS = [date(2025, 2, 10), date(2025, 2, 11)]


@dataclass
class _Job:
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)

    def result(self) -> _Job:
        return self

    def to_dataframe(self) -> pd.DataFrame:
        return self.frame


@dataclass
class RecordingClient:
    """Records what google-cloud-bigquery's Client would have been asked to do."""

    queries: list[tuple[str, list[Any]]] = field(default_factory=list)
    conflicts: int = 0  # transactions to abort as BigQuery does on a concurrent update
    loads: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    created: list[Any] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)

    def query(self, sql: str, job_config: bigquery.QueryJobConfig) -> _Job:
        self.queries.append((sql, list(job_config.query_parameters)))
        if self.conflicts:
            self.conflicts -= 1
            raise BadRequest("Transaction is aborted due to concurrent update against table")
        return _Job(pd.DataFrame({"n": [0]}))

    def load_table_from_dataframe(
        self, frame: pd.DataFrame, table_id: str, job_config: bigquery.LoadJobConfig
    ) -> _Job:
        self.loads.append((table_id, frame))
        self.tables[table_id] = bigquery.Table(table_id, schema=job_config.schema or [])
        return _Job()

    def get_table(self, table_id: str) -> Any:
        if table_id not in self.tables:
            raise NotFound(table_id)
        return self.tables[table_id]

    def create_table(self, table: bigquery.Table, exists_ok: bool = False) -> Any:
        self.created.append(table)
        self.tables.setdefault(f"{table.project}.{table.dataset_id}.{table.table_id}", table)
        return table

    def update_table(self, table: Any, fields: list[str]) -> Any:
        return table

    def delete_table(self, table_id: str, not_found_ok: bool = False) -> None:
        self.deleted.append(table_id)
        self.tables.pop(table_id, None)


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def warehouse(client: RecordingClient) -> BigQueryWarehouse:
    @contextmanager
    def connect() -> Iterator[RecordingClient]:
        yield client

    return BigQueryWarehouse(PROJECT, "US", "cfap", connect=connect)


def _extract(values: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partition_date": [DAYS[0], DAYS[1]],
            "campaign_id": values,
            "spend": ["12.5", "3.25"],
        }
    )


def _statements(script: str) -> list[sqlglot.Expression]:
    parsed = sqlglot.parse(script, read="bigquery")
    assert parsed and all(s is not None for s in parsed), script
    return [s for s in parsed if s is not None]


def test_a_partition_replace_is_one_parameterized_transaction(
    warehouse: BigQueryWarehouse, client: RecordingClient
) -> None:
    hostile = ["x' OR '1'='1", "2025-02-11"]  # values never reach the SQL text
    warehouse.replace_partitions("raw", "meta_ads_insights", _extract(hostile), DAYS)

    ((script, params),) = client.queries
    assert script.startswith("BEGIN TRANSACTION;") and script.endswith("COMMIT TRANSACTION;")
    assert "IN UNNEST(@partitions)" in script
    for value in [*hostile, *(d.isoformat() for d in DAYS)]:
        assert value not in script
    (partitions,) = params
    assert partitions.name == "partitions" and partitions.array_type == "DATE"
    assert partitions.values == DAYS
    target = f"`{PROJECT}.cfap_raw.meta_ads_insights`"
    assert script.count(target) == 2
    kinds = [type(s).__name__ for s in _statements(script)]
    assert "Delete" in kinds and "Insert" in kinds


def test_a_new_raw_table_is_partitioned_by_day(
    warehouse: BigQueryWarehouse, client: RecordingClient
) -> None:
    warehouse.replace_partitions("raw", "meta_ads_insights", _extract(["a", "b"]), DAYS)
    (table,) = [t for t in client.created if t.table_id == "meta_ads_insights"]
    assert table.time_partitioning.field == "partition_date"
    assert table.time_partitioning.type_ == "DAY"


def test_each_write_stages_its_rows_in_its_own_table_and_drops_it(
    warehouse: BigQueryWarehouse, client: RecordingClient
) -> None:
    warehouse.replace_partitions("raw", "meta_ads_insights", _extract(["a", "b"]), DAYS)
    warehouse.replace_partitions("raw", "meta_ads_insights", _extract(["a", "b"]), DAYS)
    staged = [table_id for table_id, _ in client.loads]
    assert len(set(staged)) == 2  # two runs of one table never share a staging table
    assert all(t.startswith(f"{PROJECT}.cfap_raw._staging_meta_ads_insights_") for t in staged)
    assert client.deleted == staged


def test_replacing_rows_matches_on_parameters_and_writes_the_explicit_schema(
    warehouse: BigQueryWarehouse, client: RecordingClient
) -> None:
    frame = pd.DataFrame({"conversion_id": ["c-1", "c'2"], "value": [1.0, 2.0]})
    types = [("conversion_id", "STRING"), ("value", "FLOAT64")]
    warehouse.replace_rows(
        "raw",
        "offline_conversions",
        frame,
        column_types=types,
        match={"conversion_id": frame["conversion_id"].tolist()},
    )
    ((script, params),) = client.queries
    assert "c'2" not in script and "c-1" not in script
    assert "`conversion_id` IN UNNEST(@match_0)" in script
    assert params[0].values == ["c-1", "c'2"]
    (created,) = [t for t in client.created if t.table_id == "offline_conversions"]
    assert [(f.name, f.field_type) for f in created.schema] == types
    _statements(script)


def test_a_query_sends_its_values_as_positional_parameters(
    warehouse: BigQueryWarehouse, client: RecordingClient
) -> None:
    relation = warehouse.relation("raw", "landing_file_log")
    warehouse.query(f"SELECT count(*) AS n FROM {relation} WHERE file_sha256 = ?", ["ab'c"])
    ((sql, params),) = client.queries
    assert "ab'c" not in sql
    assert [(p.name, p.type_, p.value) for p in params] == [(None, "STRING", "ab'c")]
    assert relation == f"`{PROJECT}.cfap_raw.landing_file_log`"
    _statements(sql)


@pytest.mark.parametrize(
    ("schema", "table", "column"),
    [
        ("raw", "meta_ads_insights`; DROP TABLE x; --", "spend"),
        ("raw--", "meta_ads_insights", "spend"),
        ("raw", "meta_ads_insights", "spend` FROM x; --"),
        ("raw", "9lives", "spend"),
    ],
)
def test_names_outside_the_allow_list_are_refused_before_any_call(
    warehouse: BigQueryWarehouse, client: RecordingClient, schema: str, table: str, column: str
) -> None:
    frame = pd.DataFrame({"partition_date": [DAYS[0]], column: ["1"]})
    with pytest.raises(ValueError, match="is not a valid SQL identifier"):
        warehouse.replace_partitions(schema, table, frame, DAYS)
    with pytest.raises(ValueError, match="is not a valid SQL identifier"):
        warehouse.ensure_table(schema, table, [(column, "STRING")])
    assert not client.queries and not client.loads and not client.created


def test_project_and_prefix_are_checked_too() -> None:
    with pytest.raises(ValueError, match="is not a valid project id"):
        BigQueryWarehouse("my project`; --", "US", "cfap")
    with pytest.raises(ValueError, match="dataset prefix 'cfap-prod' is not a valid"):
        BigQueryWarehouse(PROJECT, "US", "cfap-prod")
    assert sql_identifier("fct_marketing_daily") == "fct_marketing_daily"


def test_a_transaction_aborted_by_a_concurrent_one_is_retried(
    warehouse: BigQueryWarehouse, client: RecordingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cfap_orchestration.warehouse.time.sleep", lambda _: None)
    client.conflicts = 2
    warehouse.replace_partitions("raw", "meta_ads_insights", _extract(["a", "b"]), DAYS)
    assert len(client.queries) == 3
    client.conflicts = 99
    with pytest.raises(BadRequest, match="concurrent update"):
        warehouse.replace_partitions("raw", "meta_ads_insights", _extract(["a", "b"]), DAYS)
    assert not client.tables.keys() - {f"{PROJECT}.cfap_raw.meta_ads_insights"}  # staging gone


def test_json_columns_are_staged_as_text_and_parsed_on_insert(
    warehouse: BigQueryWarehouse, client: RecordingClient
) -> None:
    frame = pd.DataFrame({"run_id": ["r-1"], "diagnostics": ['{"r_hat": 1.01}']})
    types = [("run_id", "STRING"), ("diagnostics", "JSON")]
    warehouse.replace_rows(
        "causal", "lift_analysis_results", frame, column_types=types, match={"run_id": ["r-1"]}
    )
    ((script, _),) = client.queries
    assert "SELECT `run_id`, PARSE_JSON(`diagnostics`) FROM" in script
    (created,) = [t for t in client.created if t.table_id == "lift_analysis_results"]
    assert [(f.name, f.field_type) for f in created.schema] == types
    _statements(script)
