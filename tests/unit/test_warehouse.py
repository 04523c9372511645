"""Partition replacement on a real DuckDB file: idempotent, atomic, and strict about dates."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from cfap_orchestration.warehouse import DuckDBWarehouse

D1, D2, D3 = date(2025, 1, 1), date(2025, 1, 2), date(2025, 1, 3)


def _frame(days: list[date], value: str = "a") -> pd.DataFrame:
    return pd.DataFrame(
        {"partition_date": days, "key": [f"k{i}" for i in range(len(days))], "v": value}
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "warehouse.duckdb")


def test_rerun_leaves_an_identical_table(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_partitions("raw", "t", _frame([D1, D2, D3]), [D1, D2, D3])
    before = warehouse.table_checksum("raw", "t")
    result = warehouse.replace_partitions("raw", "t", _frame([D1, D2, D3]), [D1, D2, D3])
    assert warehouse.table_checksum("raw", "t") == before
    assert (result.rows_written, result.rows_replaced) == (3, 3)


def test_replacing_one_partition_leaves_the_others(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_partitions("raw", "t", _frame([D1, D2, D3]), [D1, D2, D3])
    warehouse.replace_partitions("raw", "t", _frame([D2, D2], value="new"), [D2])
    rows = warehouse.query("SELECT partition_date, v FROM raw.t ORDER BY ALL")
    assert rows["v"].tolist() == ["a", "new", "new", "a"]


def test_an_empty_pull_empties_its_partition(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_partitions("raw", "t", _frame([D1, D2]), [D1, D2])
    warehouse.replace_partitions("raw", "t", _frame([]), [D2])
    assert warehouse.query("SELECT count(*) AS n FROM raw.t")["n"].item() == 1


def test_rows_outside_the_partitions_are_refused(warehouse: DuckDBWarehouse) -> None:
    with pytest.raises(ValueError, match=r"2025-01-03 fall outside the partitions"):
        warehouse.replace_partitions("raw", "t", _frame([D1, D3]), [D1, D2])


def test_a_new_api_field_becomes_a_new_column(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_partitions("raw", "t", _frame([D1]), [D1])
    wider = _frame([D2]).assign(extra="x")
    warehouse.replace_partitions("raw", "t", wider, [D2])
    rows = warehouse.query("SELECT partition_date, extra FROM raw.t ORDER BY 1")
    assert rows["extra"].tolist() == [None, "x"]


def test_a_failed_write_keeps_the_previous_rows(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_partitions("raw", "t", _frame([D1, D2]), [D1, D2])
    before = warehouse.table_checksum("raw", "t")
    bad = _frame([D1, D2]).assign(partition_date=["2025-01-01", "not a date"])
    with pytest.raises(Exception):  # noqa: B017 - any failure mid-insert must roll back
        warehouse.replace_partitions("raw", "t", bad, ["2025-01-01", "not a date"])  # type: ignore[list-item]
    assert warehouse.table_checksum("raw", "t") == before


def test_a_crash_mid_write_keeps_the_previous_rows(warehouse: DuckDBWarehouse) -> None:
    """Kill the writer after its DELETE and INSERT but before COMMIT: nothing changes."""
    warehouse.replace_partitions("raw", "t", _frame([D1, D2]), [D1, D2])
    before = warehouse.table_checksum("raw", "t")
    script = textwrap.dedent(
        f"""
        import os, duckdb
        con = duckdb.connect({str(warehouse.path)!r})
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM raw.t WHERE partition_date = DATE '2025-01-01'")
        con.execute("INSERT INTO raw.t VALUES (DATE '2025-01-01', 'half', 'written')")
        os._exit(9)
        """
    )
    crashed = subprocess.run([sys.executable, "-c", script], check=False)
    assert crashed.returncode == 9
    assert warehouse.table_checksum("raw", "t") == before


@pytest.mark.parametrize(
    "name", ['meta"; DROP TABLE raw.x; --', "spend value", "1st", "a" * 129, ""]
)
def test_names_outside_the_identifier_allow_list_never_reach_sql(
    warehouse: DuckDBWarehouse, name: str
) -> None:
    frame = pd.DataFrame({"partition_date": [date(2025, 1, 1)], "spend": [1.0]})
    with pytest.raises(ValueError, match="is not a valid SQL identifier"):
        warehouse.replace_partitions("raw", name, frame, [date(2025, 1, 1)])
    with pytest.raises(ValueError, match="is not a valid SQL identifier"):
        warehouse.replace_partitions(
            "raw", "t", frame.rename(columns={"spend": name}), [date(2025, 1, 1)]
        )
    with pytest.raises(ValueError, match="is not a valid SQL identifier"):
        warehouse.relation(name, "t")
    assert not warehouse.path.exists()  # refused before a connection was opened
