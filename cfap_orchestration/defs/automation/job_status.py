"""`job_status_sensor`: every finished run of this code location becomes a `causal.job_status`
row, and a failure an alert to `CFAP_ALERT_WEBHOOK_URL` (see `studies/job_status.py`).

A plain `@dg.sensor`, not three `@run_status_sensor`s: in Dagster 1.13 a run-status
sensor moves its cursor past an event even when its function raises or returns a
SkipReason, so an outcome met while the DuckDB file is locked by a run would be lost
(and it starts from the newest event, skipping history). Here the cursor moves only
once the rows are written.

Cursor: the storage id (a decimal string) of the last run-status event handled, from
the event log's run-status index (RUN_SUCCESS, RUN_FAILURE, RUN_CANCELED, in storage-id
order); unset reads from the beginning. Each tick handles up to `BATCH_SIZE` events:

- the rows are written in one transaction, replaced by run_id, so a tick repeated
  after a crash rewrites the same rows instead of adding new ones;
- while another process holds the DuckDB file (a run writing), the warehouse retries the
  connection for its `busy_timeout` (10 s); if it stays locked the tick returns a
  SkipReason and keeps the cursor, and a later tick writes those outcomes;
- alerts are sent after the write; an undelivered one is logged, and the cursor
  still moves (the row is safe). A crash between the two can repeat an alert, never lose
  a row.

Runs of other code locations are passed over (the cursor moves past them). A run
launched from the UI or a schedule carries its code location; one executed in-process
(`dagster asset materialize`, `execute_in_process`) does not, and counts as ours when
its job is one of this repository's. The sensor launches no runs of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import dagster as dg

from cfap_orchestration.studies.job_status import (
    RunOutcome,
    alert_settings_from_env,
    deliver_alerts,
    failure_message,
    record_outcomes,
)
from cfap_orchestration.warehouse import WarehouseBusyError

OutcomeEventType = Literal[
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
]
OUTCOME_EVENTS: dict[OutcomeEventType, str] = {
    dg.DagsterEventType.RUN_SUCCESS: "SUCCESS",
    dg.DagsterEventType.RUN_FAILURE: "FAILURE",
    dg.DagsterEventType.RUN_CANCELED: "CANCELED",
}
OUTCOME_STATUS: dict[str, str] = {event.value: status for event, status in OUTCOME_EVENTS.items()}
BATCH_SIZE = 50
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def parse_cursor(cursor: str | None) -> int:
    """The storage id after which to read; 0 (the beginning) when unset."""
    if cursor is None or cursor == "":
        return 0
    try:
        return int(cursor)
    except ValueError:
        raise ValueError(
            f"job_status_sensor: cursor must be a run-status event storage id (an integer), "
            f"got {cursor!r}; clear it to re-read from the beginning"
        ) from None


def finished_run_events(
    instance: dg.DagsterInstance, after_storage_id: int, limit: int
) -> list[dg.EventLogRecord]:
    """Up to `limit` run-outcome events after `after_storage_id`, in storage-id order."""
    batches = [
        instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type=event_type, after_storage_id=after_storage_id
            ),
            limit=limit,
            ascending=True,
        ).records
        for event_type in OUTCOME_EVENTS
    ]
    # A full batch of one kind may stop before later events of another: read up to there.
    horizon = min((batch[-1].storage_id for batch in batches if len(batch) >= limit), default=None)
    events = sorted((e for batch in batches for e in batch), key=lambda e: e.storage_id)
    return [e for e in events if horizon is None or e.storage_id <= horizon][:limit]


def in_this_code_location(context: dg.SensorEvaluationContext, run: dg.DagsterRun) -> bool:
    origin, here = run.remote_job_origin, context.code_location_origin
    if origin is not None and here is not None:
        return (
            origin.location_name == here.location_name
            and origin.repository_origin.repository_name == context.repository_name
        )
    repository = context.repository_def
    return repository is None or repository.has_job(run.job_name)


def _error_chain(error: Any) -> list[str]:
    """Messages of a SerializableErrorInfo and its causes, outermost first; Dagster's own
    wrappers lose their module path (`Error occurred while executing op "x"`)."""
    messages: list[str] = []
    while error is not None and len(messages) < 10:
        message = str(error.message).strip().rstrip(":")
        if message.startswith("dagster.") and ": " in message:
            message = message.split(": ", 1)[1]
        messages.append(message)
        error = error.cause or error.context
    return messages


def run_error(instance: dg.DagsterInstance, event: dg.EventLogRecord) -> str | None:
    """The run failure (or cancel) event's message, then the first failed step's error."""
    entry = event.event_log_entry
    step_failures = instance.all_logs(entry.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    step = step_failures[0] if step_failures else None
    if step is not None and step.dagster_event is not None:
        error = step.dagster_event.step_failure_data.error
        return failure_message(entry.message, step.step_key, _error_chain(error))
    run_failure_data = entry.dagster_event.event_specific_data if entry.dagster_event else None
    return failure_message(
        entry.message, None, _error_chain(getattr(run_failure_data, "error", None))
    )


def _utc(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def run_outcome(
    instance: dg.DagsterInstance, event: dg.EventLogRecord, record: dg.RunRecord
) -> RunOutcome:
    run = record.dagster_run
    status = OUTCOME_STATUS[str(event.event_log_entry.get_dagster_event().event_type_value)]
    return RunOutcome(
        run_id=run.run_id,
        job_name=run.job_name,
        status=status,
        started_at=_utc(record.start_time),
        ended_at=datetime.fromtimestamp(record.end_time or event.timestamp, UTC),
        error=None if status == "SUCCESS" else run_error(instance, event),
        partition_key=run.tags.get(PARTITION_TAG),
        partition_range_start=run.tags.get(RANGE_START_TAG),
        partition_range_end=run.tags.get(RANGE_END_TAG),
        asset_selection=tuple(sorted(key.to_user_string() for key in run.asset_selection or ())),
    )


def outcomes_of(
    context: dg.SensorEvaluationContext, events: list[dg.EventLogRecord]
) -> list[RunOutcome]:
    """This code location's outcomes among `events`; a run met twice keeps its last one."""
    run_ids = sorted({e.event_log_entry.run_id for e in events})
    records = {
        r.dagster_run.run_id: r
        for r in context.instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
    }
    outcomes: dict[str, RunOutcome] = {}
    for event in events:
        record = records.get(event.event_log_entry.run_id)  # None: the run was deleted
        if record is not None and in_this_code_location(context, record.dagster_run):
            outcomes[record.dagster_run.run_id] = run_outcome(context.instance, event, record)
    return list(outcomes.values())


def _summary(outcomes: list[RunOutcome], events: int, delivered: int) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("SUCCESS", "FAILURE", "CANCELED")}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none of this code location"
    return (
        f"Recorded {len(outcomes)} run outcome(s) in causal.job_status ({shown}) "
        f"from {events} run-status event(s); {delivered} alert(s) sent."
    )


@dg.sensor(
    name="job_status_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    required_resource_keys={"warehouse"},
    description=(
        "Writes every finished run (success, failure, cancel) to causal.job_status and "
        "POSTs failures to CFAP_ALERT_WEBHOOK_URL when it is set."
    ),
)
def job_status_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    after = parse_cursor(context.cursor)
    alerts = alert_settings_from_env()  # misconfigured: the tick fails, the cursor stays
    events = finished_run_events(context.instance, after, BATCH_SIZE)
    if not events:
        return dg.SkipReason(f"No run has finished since run-status event {after}.")
    outcomes = outcomes_of(context, events)
    delivered = 0
    if outcomes:
        try:
            record_outcomes(context.resources.warehouse.get(), outcomes)
        except WarehouseBusyError as busy:
            return dg.SkipReason(f"{busy}. The next tick retries them; the cursor stays.")
        delivered = deliver_alerts(outcomes, alerts, context.log)
    return dg.SensorResult(
        cursor=str(events[-1].storage_id),
        skip_reason=dg.SkipReason(_summary(outcomes, len(events), delivered)),
    )
