"""Sensors on new data: files dropped in the landing zone, and newly completed experiments.

`landing_zone_sensor` watches the landing folders. Its cursor remembers, per folder, each
file it has already requested a load for (name, size and modification time), so a file is
requested once and a changed file again; Dagster's run keys make a repeated request a
no-op. The loads themselves validate, quarantine and fail (see `defs/ingest/landed.py`).

`new_geo_experiment_sensor` reads the experiment registry and the geo panel: each geo
holdout that has ended and whose panel is loaded becomes a partition of the geo readouts,
and its difference-in-differences and synthetic-control runs are requested.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import dagster as dg
import duckdb

from cfap_orchestration.defs.automation.job_status import RANGE_END_TAG, RANGE_START_TAG
from cfap_orchestration.defs.ingest.landed import landed_asset_key
from cfap_orchestration.defs.ingest.partitions import daily_partitions
from cfap_orchestration.defs.measure.experiments import DID_KEY, SC_KEY
from cfap_orchestration.defs.measure.partitions import GEO_EXPERIMENTS, completed_geo_experiments
from cfap_orchestration.landing import (
    BATCH_CONTRACTS,
    EXPERIMENTS,
    FIRST_PARTY_EVENTS,
    LandingPath,
    day_of_file,
    fingerprint,
    pending_files,
    quarantine,
)
from cfap_orchestration.resources import LandingZoneResource, WarehouseResource

FIRST_PARTY_KEY = dg.AssetKey(["raw", "first_party_touchpoints"])
# A new experiment definition is only visible to the experiment sensor once the registry
# view and the geo panel are rebuilt, so its load run rebuilds them too.
EXPERIMENT_PANEL = [
    dg.AssetKey(["staging", "stg_reference__experiment_registry"]),
    dg.AssetKey(["marts", "fct_experiment_geo_panel"]),
]
LANDING_KIND_TAG = "cfap/landing_kind"


def runs_in_progress(instance: dg.DagsterInstance) -> int:
    """Runs starting or running. Locally they hold the one-writer DuckDB file, so a sensor
    reads or writes the warehouse only while none is (a run takes seconds to load its code
    before it connects; a sensor's access takes milliseconds)."""
    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    return len(instance.get_run_records(filters=dg.RunsFilter(statuses=statuses), limit=5))


def batch_selection(kind: str) -> list[dg.AssetKey]:
    key = landed_asset_key(BATCH_CONTRACTS[kind])
    return [key, *EXPERIMENT_PANEL] if kind == EXPERIMENTS else [key]


def request_key(kind: str, fingerprints: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(fingerprints)).encode()).hexdigest()[:16]
    return f"{kind}:{digest}"


def day_ranges(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into inclusive (first, last) ranges."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _batch_requests(
    landing_dir: LandingPath, seen: dict[str, dict[str, str]]
) -> list[dg.RunRequest]:
    requests = []
    for kind in BATCH_CONTRACTS:
        waiting = {p.name: fingerprint(p) for p in pending_files(landing_dir, kind)}
        new = [fp for name, fp in waiting.items() if seen.get(kind, {}).get(name) != fp]
        # Only files still waiting are remembered: loaded ones have left the folder.
        seen[kind] = waiting
        if new:
            requests.append(
                dg.RunRequest(
                    run_key=request_key(kind, new),
                    asset_selection=batch_selection(kind),
                    tags={LANDING_KIND_TAG: kind},
                )
            )
    return requests


def _loaded_since(instance: dg.DagsterInstance, day: date, mtime: float) -> bool:
    """True when the day's partition was materialized after the file was last written."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FIRST_PARTY_KEY, asset_partitions=[day.isoformat()]),
        limit=1,
    ).records
    return bool(records) and records[0].timestamp >= mtime


def _first_party_requests(
    context: dg.SensorEvaluationContext, landing_dir: LandingPath, seen: dict[str, dict[str, str]]
) -> list[dg.RunRequest]:
    partitions = daily_partitions()
    first = date.fromisoformat(partitions.get_first_partition_key() or "9999-12-31")
    last = date.fromisoformat(partitions.get_last_partition_key() or "0001-01-01")
    known = seen.setdefault(FIRST_PARTY_EVENTS, {})
    to_load: dict[date, str] = {}
    for path in pending_files(landing_dir, FIRST_PARTY_EVENTS):
        current = fingerprint(path)
        if known.get(path.name) == current:
            continue
        day = day_of_file(path.name)
        if day is None or day < first:
            _refuse_day_file(context, landing_dir, path, day, first)
            continue
        if day > last:
            continue  # the day is not over yet: its partition does not exist
        if not _loaded_since(context.instance, day, path.stat().st_mtime):
            to_load[day] = current
        known[path.name] = current
    return [
        _range_request(a, b, [fp for d, fp in to_load.items() if a <= d <= b])
        for a, b in day_ranges(list(to_load))
    ]


def _refuse_day_file(
    context: dg.SensorEvaluationContext,
    landing_dir: LandingPath,
    path: LandingPath,
    day: date | None,
    first: date,
) -> None:
    """A day file that maps to no partition cannot reach a run: the sensor quarantines it."""
    reason = (
        f"{path.name}: expected YYYY-MM-DD.jsonl, one file per day from {first}"
        if day is None
        else f"{path.name}: {day} is before the first partition ({first})"
    )
    moved = quarantine(landing_dir, FIRST_PARTY_EVENTS, path, reason)
    context.log.error(f"quarantined {FIRST_PARTY_EVENTS}/{path.name} to {moved}: {reason}")


def _range_request(first: date, last: date, fingerprints: list[str]) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=request_key(f"{FIRST_PARTY_EVENTS}:{first}...{last}", fingerprints),
        asset_selection=[FIRST_PARTY_KEY],
        tags={
            RANGE_START_TAG: first.isoformat(),
            RANGE_END_TAG: last.isoformat(),
            LANDING_KIND_TAG: FIRST_PARTY_EVENTS,
        },
    )


@dg.sensor(
    name="landing_zone_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[
        FIRST_PARTY_KEY,
        *(key for kind in BATCH_CONTRACTS for key in batch_selection(kind)),
    ],
    description=(
        "Loads files dropped in the landing zone: first-party event day files "
        "(first_party_events/YYYY-MM-DD.jsonl) into their day's partition, offline "
        "conversions and experiment definitions (CSV) into their raw tables. Bad files end in "
        "quarantine/ with a reason file."
    ),
)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource
) -> dg.SensorResult | dg.SkipReason:
    landing_dir = landing_zone.root()
    seen: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
    requests = _batch_requests(landing_dir, seen)
    requests += _first_party_requests(context, landing_dir, seen)
    cursor = json.dumps(seen, sort_keys=True)
    if not requests:
        context.update_cursor(cursor)
        return dg.SkipReason(f"no new files in {landing_dir}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dg.sensor(
    name="new_geo_experiment_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[DID_KEY, SC_KEY],
    description=(
        "Each geo holdout in the registry (seeded or uploaded) that has ended and whose panel "
        "is loaded becomes a partition of the geo readouts, and its difference-in-differences "
        "and synthetic-control runs are requested."
    ),
)
def new_geo_experiment_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    store = warehouse.get()
    busy = runs_in_progress(context.instance) if store.dialect == "duckdb" else 0
    if busy:
        return dg.SkipReason(f"{busy} run(s) in progress hold the warehouse; will look again")
    try:
        completed = completed_geo_experiments(store)
    except duckdb.IOException as exc:  # a run holds the file: try again next tick
        return dg.SkipReason(f"warehouse busy, will look again: {exc}")
    except duckdb.CatalogException:
        return dg.SkipReason("no experiment registry or geo panel yet: build the marts first")
    known = set(context.instance.get_dynamic_partitions(GEO_EXPERIMENTS.name or ""))
    new = [e for e in completed if e not in known]
    if not new:
        return dg.SkipReason(f"no new completed geo experiments ({len(known)} known)")
    context.log.info(f"new geo experiments: {', '.join(new)}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=e, run_key=f"geo_experiment:{e}", asset_selection=[DID_KEY, SC_KEY]
            )
            for e in new
        ],
        dynamic_partitions_requests=[GEO_EXPERIMENTS.build_add_request(list(new))],
    )
