"""Reading batch files from the landing zone. No Dagster imports.

First-party touchpoints arrive as one JSON-lines file per day,
`<landing>/first_party_events/YYYY-MM-DD.jsonl`. A file that breaks the contract is an
error naming the file, the line and the problem, never a silently skipped row.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

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


class LandingFileError(ValueError):
    """A landing file is missing or does not match its contract."""


def touchpoint_file(landing_dir: Path, day: date) -> Path:
    return landing_dir / "first_party_events" / f"{day.isoformat()}.jsonl"


def read_touchpoints(landing_dir: Path, since: date, until: date) -> pd.DataFrame:
    """Every day's file in `since`..`until`; a missing day is an error, not an empty day."""
    rows: list[dict[str, object]] = []
    day = since
    while day <= until:
        rows.extend(_read_day(touchpoint_file(landing_dir, day), day))
        day += timedelta(days=1)
    return pd.DataFrame(rows, columns=list(TOUCHPOINT_COLUMNS))


def _read_day(path: Path, day: date) -> list[dict[str, object]]:
    if not path.exists():
        raise LandingFileError(f"no first-party events file for {day}: expected {path}")
    rows = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_parse_line(path, number, line, day))
    return rows


def _parse_line(path: Path, number: int, line: str, day: date) -> dict[str, object]:
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
    return {"partition_date": day, **{c: record.get(c) for c in TOUCHPOINT_COLUMNS[1:]}}
