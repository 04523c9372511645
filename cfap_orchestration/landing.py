"""Reading batch files from the landing zone. No Dagster imports.

The landing zone has one folder per kind of file:

- `first_party_events/YYYY-MM-DD.jsonl`, one per day -> `raw.first_party_touchpoints`: the
  day's partition is replaced, insert ids unique. The files stay: they are the event store.
- `offline_conversions/*.csv` -> `raw.offline_conversions`, upserted on conversion_id.
- `experiments/*.csv` -> `raw.experiment_definitions`, upserted on experiment_id.
  Loaded uploads move to `<kind>/loaded/`.

A file that breaks its contract is an error naming the file, the line and the problem,
never a silently skipped row; the loader moves it to `quarantine/<kind>/` beside a
`.reason.txt` that says why, so nothing is lost and it can be fixed and dropped again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
from upath import UPath

from cfap_orchestration.warehouse import Warehouse, column_types_for

TOUCHPOINT_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "insert_id",
    "anonymous_id",
    "event",
    "channel",
    "event_time",
    "value",
)
TOUCHPOINT_PRIMARY_KEY: tuple[str, ...] = ("insert_id",)
TOUCHPOINT_EVENTS = frozenset({"touch", "purchase", "session_end"})
REQUIRED_KEYS = ("insert_id", "anonymous_id", "event", "event_time")


RAW_SCHEMA = "raw"
FIRST_PARTY_EVENTS = "first_party_events"
OFFLINE_CONVERSIONS = "offline_conversions"
EXPERIMENTS = "experiments"
QUARANTINE = "quarantine"
LOADED = "loaded"
# A local folder, or a prefix in the landing bucket (prod: gs://…, through fsspec).
LandingPath = Path | UPath
DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")


class LandingFileError(ValueError):
    """A landing file is missing or does not match its contract."""

    def __init__(self, message: str, path: LandingPath | None = None) -> None:
        super().__init__(message)
        self.path = path


def landing_root(location: str) -> LandingPath:
    """The landing zone at `location`: a local folder, or `gs://<bucket>[/<prefix>]`."""
    if "://" not in location:
        return Path(location)
    if not location.startswith("gs://"):
        raise ValueError(f"landing zone must be a local folder or a gs:// URI, got {location!r}")
    return UPath(location.rstrip("/"))


def touchpoint_file(landing_dir: LandingPath, day: date) -> LandingPath:
    return landing_dir / "first_party_events" / f"{day.isoformat()}.jsonl"


def read_touchpoints(landing_dir: LandingPath, since: date, until: date) -> pd.DataFrame:
    """Every day's file in `since`..`until`; a missing day is an error, not an empty day."""
    rows: list[dict[str, object]] = []
    day = since
    while day <= until:
        rows.extend(_read_day(touchpoint_file(landing_dir, day), day))
        day += timedelta(days=1)
    return pd.DataFrame(rows, columns=list(TOUCHPOINT_COLUMNS))


def _read_day(path: LandingPath, day: date) -> list[dict[str, object]]:
    if not path.exists():
        raise LandingFileError(f"no first-party events file for {day}: expected {path}")
    try:
        return _parse_day(path, day)
    except LandingFileError as exc:
        raise LandingFileError(str(exc), path) from None


def _parse_day(path: LandingPath, day: date) -> list[dict[str, object]]:
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_parse_line(path, number, line, day))
    return rows


def _parse_line(path: LandingPath, number: int, line: str, day: date) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LandingFileError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
    missing = [k for k in REQUIRED_KEYS if not record.get(k)]
    if missing:
        raise LandingFileError(f"{path.name} line {number}: missing {missing}")
    if record["event"] not in TOUCHPOINT_EVENTS:
        raise LandingFileError(
            f"{path.name} line {number}: unknown event {record['event']!r}; "
            f"expected one of {sorted(TOUCHPOINT_EVENTS)}"
        )
    if record["event"] == "touch" and not record.get("channel"):
        raise LandingFileError(f"{path.name} line {number}: a touch without a channel")
    if not _is_timestamp(str(record["event_time"])):
        raise LandingFileError(
            f"{path.name} line {number}: event_time {record['event_time']!r} is not an ISO "
            "timestamp"
        )
    return {"partition_date": day, **{c: record.get(c) for c in TOUCHPOINT_COLUMNS[1:]}}


def _is_timestamp(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def day_of_file(name: str) -> date | None:
    """The day a first-party events file holds, from its name; None if misnamed."""
    match = DAY_FILE.match(name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


# --- Batch uploads: offline conversions and experiment definitions --------------------


@dataclass(frozen=True)
class BatchContract:
    """A CSV upload: its columns, key, and how each row is checked and typed."""

    kind: str
    table: str
    columns: tuple[str, ...]
    required: tuple[str, ...]
    key: str
    parse_row: Callable[[dict[str, str]], dict[str, object]]
    column_types: tuple[tuple[str, str], ...]  # DuckDB types, for explicit DDL

    def table_types(self) -> list[tuple[str, str]]:
        """The raw table's columns: the contract's, then where each row came from."""
        return [*self.column_types, *PROVENANCE_TYPES]


ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
EXPERIMENT_ID_PATTERN = re.compile(r"^[a-z0-9_]{1,64}$")
GEO_ID_PATTERN = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
EXPERIMENT_CHANNELS = {"meta": "paid_social", "google_ads": "paid_search"}


def _timestamp(value: str, column: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{column} {value!r} is not an ISO timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{column} {value!r} has no time zone offset")
    return parsed.astimezone(UTC)


def _date(value: str, column: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{column} {value!r} is not a YYYY-MM-DD date") from None


def _matches(pattern: re.Pattern[str], value: str, column: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{column} {value!r} does not match {pattern.pattern}")
    return value


def _offline_conversion(row: dict[str, str]) -> dict[str, object]:
    try:
        value = float(row["value"])
    except ValueError:
        raise ValueError(f"value {row['value']!r} is not a number") from None
    if value < 0 or value != value:
        raise ValueError(f"value {row['value']!r} is negative or not a number")
    occurred = _timestamp(row["conversion_time"], "conversion_time")
    return {
        "conversion_id": _matches(ID_PATTERN, row["conversion_id"], "conversion_id"),
        "conversion_time": occurred,
        "conversion_date": occurred.date(),
        "conversion_name": row["conversion_name"],
        "value": value,
        "currency": _matches(CURRENCY_PATTERN, row["currency"], "currency"),
        "order_id": row.get("order_id") or None,
        "click_id": row.get("click_id") or None,
        "platform": row.get("platform") or None,
    }


def _experiment_definition(row: dict[str, str]) -> dict[str, object]:
    start, end = _date(row["start_date"], "start_date"), _date(row["end_date"], "end_date")
    if end < start:
        raise ValueError(f"end_date {end} is before start_date {start}")
    if row["experiment_type"] != "geo_holdout":
        raise ValueError(f"experiment_type {row['experiment_type']!r}: only 'geo_holdout'")
    platform = row["platform"]
    if platform not in EXPERIMENT_CHANNELS:
        raise ValueError(f"platform {platform!r}: expected one of {sorted(EXPERIMENT_CHANNELS)}")
    channel = row.get("channel") or EXPERIMENT_CHANNELS[platform]
    if channel != EXPERIMENT_CHANNELS[platform]:
        raise ValueError(f"channel {channel!r} is not {platform}'s channel")
    units = [u.strip() for u in row["holdout_units"].split("|") if u.strip()]
    if not units:
        raise ValueError("holdout_units is empty: list geo ids separated by '|'")
    for unit in units:
        _matches(GEO_ID_PATTERN, unit, "holdout_units")
    return {
        "experiment_id": _matches(EXPERIMENT_ID_PATTERN, row["experiment_id"], "experiment_id"),
        "experiment_type": "geo_holdout",
        "platform": platform,
        "channel": channel,
        "start_date": start,
        "end_date": end,
        "treatment": row.get("treatment") or "ads_off",
        "holdout_units": "|".join(sorted(set(units))),
    }


OFFLINE_CONVERSIONS_CONTRACT = BatchContract(
    kind=OFFLINE_CONVERSIONS,
    table="offline_conversions",
    columns=(
        "conversion_id",
        "conversion_time",
        "conversion_date",
        "conversion_name",
        "value",
        "currency",
        "order_id",
        "click_id",
        "platform",
    ),
    required=("conversion_id", "conversion_time", "conversion_name", "value", "currency"),
    key="conversion_id",
    parse_row=_offline_conversion,
    column_types=(
        ("conversion_id", "VARCHAR"),
        ("conversion_time", "TIMESTAMP WITH TIME ZONE"),
        ("conversion_date", "DATE"),
        ("conversion_name", "VARCHAR"),
        ("value", "DOUBLE"),
        ("currency", "VARCHAR"),
        ("order_id", "VARCHAR"),
        ("click_id", "VARCHAR"),
        ("platform", "VARCHAR"),
    ),
)
EXPERIMENTS_CONTRACT = BatchContract(
    kind=EXPERIMENTS,
    table="experiment_definitions",
    columns=(
        "experiment_id",
        "experiment_type",
        "platform",
        "channel",
        "start_date",
        "end_date",
        "treatment",
        "holdout_units",
    ),
    required=("experiment_id", "experiment_type", "platform", "start_date", "end_date"),
    key="experiment_id",
    parse_row=_experiment_definition,
    column_types=(
        ("experiment_id", "VARCHAR"),
        ("experiment_type", "VARCHAR"),
        ("platform", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("treatment", "VARCHAR"),
        ("holdout_units", "VARCHAR"),
    ),
)
BATCH_CONTRACTS = {c.kind: c for c in (OFFLINE_CONVERSIONS_CONTRACT, EXPERIMENTS_CONTRACT)}
# Where every batch row came from, after the contract's columns.
PROVENANCE_TYPES = (
    ("source_file", "VARCHAR"),
    ("file_sha256", "VARCHAR"),
    ("loaded_at", "TIMESTAMP WITH TIME ZONE"),
)
# One row per upload loaded: what makes a second drop of the same bytes a no-op.
FILE_LOG_TABLE = "landing_file_log"
FILE_LOG_TYPES = (
    ("file_sha256", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("rows_loaded", "BIGINT"),
    ("loaded_at", "TIMESTAMP WITH TIME ZONE"),
    ("run_id", "VARCHAR"),
)


def read_batch_file(contract: BatchContract, path: LandingPath) -> pd.DataFrame:
    """Every row of one CSV upload, checked against its contract; the first bad row is an
    error naming the file, its line and the problem."""
    text = _text(path)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in contract.required if c not in (reader.fieldnames or [])]
    if missing:
        raise LandingFileError(f"{path.name}: header lacks columns {missing}", path)
    rows, seen = [], set()
    for number, row in enumerate(reader, start=2):
        blank = [c for c in contract.required if not (row.get(c) or "").strip()]
        if blank:
            raise LandingFileError(f"{path.name} line {number}: empty {blank}", path)
        try:
            parsed = contract.parse_row({k: (v or "").strip() for k, v in row.items() if k})
        except ValueError as exc:
            raise LandingFileError(f"{path.name} line {number}: {exc}", path) from None
        if parsed[contract.key] in seen:
            raise LandingFileError(
                f"{path.name} line {number}: {contract.key} {parsed[contract.key]!r} repeats "
                "an earlier line",
                path,
            )
        seen.add(parsed[contract.key])
        rows.append(parsed)
    if not rows:
        raise LandingFileError(f"{path.name}: no data rows", path)
    return pd.DataFrame(rows, columns=list(contract.columns))


def _text(path: LandingPath) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LandingFileError(f"{path.name}: not UTF-8 text ({exc.reason})", path) from None


# --- Files in the folders: what is waiting, what was loaded, what was refused ----------


def file_sha256(path: LandingPath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pending_files(landing_dir: LandingPath, kind: str) -> list[LandingPath]:
    """Files waiting in a kind's folder, oldest first. Names starting with '.' or ending in
    '.tmp'/'.part' are uploads still being written (write, then rename)."""
    folder = landing_dir / kind
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".part"))
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def fingerprint(path: LandingPath) -> str:
    """Cheap identity of a file's current content: name, size and modification time."""
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def quarantine(landing_dir: LandingPath, kind: str, path: LandingPath, reason: str) -> LandingPath:
    """Move a refused file to `quarantine/<kind>/` with a `.reason.txt` beside it."""
    folder = landing_dir / QUARANTINE / kind
    _make_folder(folder)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{stamp}-{path.name}"
    _move(path, target)
    target.with_name(target.name + ".reason.txt").write_text(
        f"{path.name} was refused at {stamp} and moved here from {kind}/.\n"
        f"Reason: {reason}\n"
        f"Fix the file and drop it into {kind}/ again.\n"
    )
    return target


def _make_folder(folder: LandingPath) -> None:
    # An object store has no folders (and gcsfs would try to create the bucket itself).
    if isinstance(folder, Path):
        folder.mkdir(parents=True, exist_ok=True)


def _move(path: LandingPath, target: LandingPath) -> None:
    if isinstance(path, Path) and isinstance(target, Path):
        path.replace(target)
    elif isinstance(path, UPath) and isinstance(target, UPath):
        path.rename(target)  # on GCS: copy, then delete the original
    else:
        raise TypeError(f"cannot move {path} to {target}: one is local, the other remote")


def archive(landing_dir: LandingPath, kind: str, path: LandingPath, sha256: str) -> LandingPath:
    """Move a loaded upload to `<kind>/loaded/`, never overwriting an earlier one."""
    folder = landing_dir / kind / LOADED
    _make_folder(folder)
    target = folder / path.name
    if target.exists():
        target = folder / f"{sha256[:12]}-{path.name}"
    _move(path, target)
    return target


# --- Loading batch uploads into the warehouse ------------------------------------------


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    rows: int = 0
    already_loaded: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # file -> reason


def load_landed_files(
    warehouse: Warehouse, landing_dir: LandingPath, contract: BatchContract, run_id: str
) -> LoadReport:
    """Load every file waiting in the contract's folder; see the module docstring."""
    table_types = column_types_for(warehouse.dialect, contract.table_types())
    log_types = column_types_for(warehouse.dialect, FILE_LOG_TYPES)
    warehouse.ensure_table(RAW_SCHEMA, contract.table, table_types)
    warehouse.ensure_table(RAW_SCHEMA, FILE_LOG_TABLE, log_types)
    report = LoadReport()
    for path in pending_files(landing_dir, contract.kind):
        if path.suffix.lower() != ".csv":
            reason = f"{path.name}: expected a .csv file"
            quarantine(landing_dir, contract.kind, path, reason)
            report.refused[path.name] = reason
            continue
        sha256 = file_sha256(path)
        if _was_loaded(warehouse, sha256):
            archive(landing_dir, contract.kind, path, sha256)
            report.already_loaded.append(path.name)
            continue
        try:
            frame = read_batch_file(contract, path)
        except LandingFileError as exc:
            quarantine(landing_dir, contract.kind, path, str(exc))
            report.refused[path.name] = str(exc)
            continue
        loaded_at = datetime.now(UTC)
        frame = frame.assign(source_file=path.name, file_sha256=sha256, loaded_at=loaded_at)
        warehouse.replace_rows(
            RAW_SCHEMA,
            contract.table,
            frame,
            column_types=table_types,
            match={contract.key: frame[contract.key].astype(str).tolist()},
        )
        # The log row is written after the data: a crash between the two re-loads the same
        # rows (an upsert, so no duplicates) instead of skipping a file that never landed.
        log = pd.DataFrame(
            [[sha256, contract.kind, path.name, len(frame), loaded_at, run_id]],
            columns=[name for name, _ in FILE_LOG_TYPES],
        )
        warehouse.replace_rows(
            RAW_SCHEMA, FILE_LOG_TABLE, log, column_types=log_types, match={"file_sha256": [sha256]}
        )
        archive(landing_dir, contract.kind, path, sha256)
        report.loaded.append(path.name)
        report.rows += len(frame)
    return report


def _was_loaded(warehouse: Warehouse, sha256: str) -> bool:
    found = warehouse.query(
        f"SELECT count(*) AS n FROM {warehouse.relation(RAW_SCHEMA, FILE_LOG_TABLE)} "
        "WHERE file_sha256 = ?",
        [sha256],
    )
    return bool(found["n"].iloc[0])
