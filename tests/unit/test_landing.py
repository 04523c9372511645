"""The landing zone's contracts: what a valid upload is, and where a refused one goes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from upath import UPath

from cfap_orchestration.landing import (
    EXPERIMENTS_CONTRACT,
    OFFLINE_CONVERSIONS_CONTRACT,
    LandingFileError,
    LandingPath,
    archive,
    day_of_file,
    file_sha256,
    landing_root,
    load_landed_files,
    pending_files,
    quarantine,
    read_batch_file,
)
from cfap_orchestration.warehouse import DuckDBWarehouse

CONVERSIONS = (
    "conversion_id,conversion_time,conversion_name,value,currency,order_id,click_id,platform\n"
    "c-1,2025-03-01T10:00:00-05:00,phone_order,120.5,USD,o-1,gclid-1,google_ads\n"
    "c-2,2025-03-02T11:30:00+01:00,store_sale,80,EUR,,,\n"
)
EXPERIMENT = (
    "experiment_id,experiment_type,platform,channel,start_date,end_date,treatment,holdout_units\n"
    "geo_holdout_meta_spring,geo_holdout,meta,paid_social,2025-03-03,2025-03-30,ads_off,"
    "US-TX|US-CA\n"
)


def _drop(folder: LandingPath, name: str, text: str) -> LandingPath:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_a_valid_conversions_file_is_typed(tmp_path: Path) -> None:
    frame = read_batch_file(OFFLINE_CONVERSIONS_CONTRACT, _drop(tmp_path, "a.csv", CONVERSIONS))
    assert list(frame["conversion_id"]) == ["c-1", "c-2"]
    assert frame["value"].tolist() == [120.5, 80.0]
    assert str(frame["conversion_date"].iloc[0]) == "2025-03-01"
    assert frame["order_id"].iloc[1] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conversion_id,value\nc-1,3\n", "header lacks columns"),
        (CONVERSIONS.replace("120.5", "lots"), "line 2: value 'lots' is not a number"),
        (CONVERSIONS.replace("120.5", "-1"), "line 2: value '-1' is negative"),
        (CONVERSIONS.replace("-05:00", ""), "line 2: conversion_time"),
        (CONVERSIONS.replace("c-2", "c-1"), "line 3: conversion_id 'c-1' repeats"),
        (CONVERSIONS.replace("USD", "dollars"), "currency 'dollars'"),
        (CONVERSIONS.splitlines()[0] + "\n", "no data rows"),
        (CONVERSIONS.replace("c-1", "c 1; DROP TABLE"), "conversion_id 'c 1; DROP TABLE'"),
    ],
)
def test_a_bad_conversions_file_names_its_line_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _drop(tmp_path, "bad.csv", text)
    with pytest.raises(LandingFileError, match=message) as raised:
        read_batch_file(OFFLINE_CONVERSIONS_CONTRACT, path)
    assert raised.value.path == path and "bad.csv" in str(raised.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("2025-03-30", "2025-02-01"), "end_date 2025-02-01 is before start_date"),
        (("meta,paid_social", "tiktok,paid_social"), "platform 'tiktok'"),
        (("meta,paid_social", "meta,paid_search"), "not meta's channel"),
        (("US-TX|US-CA", "Texas"), "holdout_units 'Texas'"),
        (("geo_holdout_meta_spring", "Spring Test!"), "experiment_id 'Spring Test!'"),
    ],
)
def test_a_bad_experiment_definition_is_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = _drop(tmp_path, "e.csv", EXPERIMENT.replace(*change))
    with pytest.raises(LandingFileError, match=message):
        read_batch_file(EXPERIMENTS_CONTRACT, path)


def test_holdout_units_are_normalized(tmp_path: Path) -> None:
    frame = read_batch_file(EXPERIMENTS_CONTRACT, _drop(tmp_path, "e.csv", EXPERIMENT))
    assert frame["holdout_units"].iloc[0] == "US-CA|US-TX"


def test_day_files_are_named_by_their_day() -> None:
    assert str(day_of_file("2025-02-03.jsonl")) == "2025-02-03"
    assert day_of_file("2025-02-30.jsonl") is None
    assert day_of_file("events.jsonl") is None


def test_uploads_being_written_are_not_pending(tmp_path: Path) -> None:
    folder = tmp_path / "offline_conversions"
    _drop(folder, "a.csv", CONVERSIONS)
    _drop(folder, ".b.csv", CONVERSIONS)
    _drop(folder, "c.csv.part", CONVERSIONS)
    (folder / "loaded").mkdir()
    assert [p.name for p in pending_files(tmp_path, "offline_conversions")] == ["a.csv"]


def test_quarantine_keeps_the_file_and_says_why(tmp_path: Path) -> None:
    path = _drop(tmp_path / "experiments", "e.csv", "junk")
    moved = quarantine(tmp_path, "experiments", path, "e.csv: header lacks columns")
    assert not path.exists() and moved.read_text() == "junk"
    assert moved.parent == tmp_path / "quarantine" / "experiments"
    reason = moved.with_name(moved.name + ".reason.txt").read_text()
    assert "header lacks columns" in reason and "drop it into experiments/ again" in reason


def test_archive_never_overwrites_an_earlier_upload(tmp_path: Path) -> None:
    first = archive(tmp_path, "experiments", _drop(tmp_path, "e.csv", "one"), "a" * 64)
    second = archive(tmp_path, "experiments", _drop(tmp_path, "e.csv", "two"), "b" * 64)
    assert first != second and first.read_text() == "one" and second.read_text() == "two"


@pytest.fixture(params=["local folder", "object store"])
def landing(request: pytest.FixtureRequest, tmp_path: Path) -> LandingPath:
    """A local landing folder, or a bucket-like one (fsspec's in-memory store, which
    behaves as GCS does here: no real folders, moves are copy + delete)."""
    if request.param == "local folder":
        return landing_root(str(tmp_path / "landing"))
    return UPath(f"memory://landing-{uuid.uuid4().hex}")


def test_loading_is_once_per_file_and_an_upsert_per_key(
    tmp_path: Path, landing: LandingPath
) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    folder = landing / "offline_conversions"
    first = _drop(folder, "march.csv", CONVERSIONS)
    sha = file_sha256(first)
    report = load_landed_files(warehouse, landing, OFFLINE_CONVERSIONS_CONTRACT, "run-1")
    assert report.loaded == ["march.csv"] and report.rows == 2 and not report.refused
    assert (folder / "loaded" / "march.csv").exists() and not first.exists()
    # The same bytes again: moved, not loaded. A correction of c-2: replaces that row.
    _drop(folder, "march-again.csv", CONVERSIONS)
    _drop(folder, "fix.csv", CONVERSIONS.splitlines()[0] + "\n" + "c-2,2025-03-02T11:30:00+01:00,"
          "store_sale,95,EUR,,,\n")  # fmt: skip
    _drop(folder, "broken.csv", "conversion_id\nc-9\n")
    report = load_landed_files(warehouse, landing, OFFLINE_CONVERSIONS_CONTRACT, "run-2")
    assert report.already_loaded == ["march-again.csv"]
    assert report.loaded == ["fix.csv"] and list(report.refused) == ["broken.csv"]
    rows = warehouse.query("SELECT conversion_id, value FROM raw.offline_conversions ORDER BY 1")
    assert rows.values.tolist() == [["c-1", 120.5], ["c-2", 95.0]]
    log = warehouse.query("SELECT file_sha256, run_id FROM raw.landing_file_log ORDER BY run_id")
    assert log["file_sha256"].iloc[0] == sha and len(log) == 2
    assert len(list((landing / "quarantine" / "offline_conversions").glob("*broken.csv"))) == 1


def test_the_landing_zone_is_a_local_folder_or_a_gcs_uri(tmp_path: Path) -> None:
    assert landing_root(str(tmp_path)) == tmp_path
    bucket = landing_root("gs://cfap-landing/")
    assert str(bucket / "experiments") == "gs://cfap-landing/experiments"
    with pytest.raises(ValueError, match="a local folder or a gs:// URI, got 's3://x'"):
        landing_root("s3://x")
