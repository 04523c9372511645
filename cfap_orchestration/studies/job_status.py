"""Run outcomes: the `causal.job_status` table and the alert webhook. No Dagster imports.

Every finished run of the code location (SUCCESS, FAILURE, CANCELED) is one row of
`causal.job_status`, replaced by run_id, so recording an outcome twice leaves one row.
Locally the warehouse is one DuckDB file with a single writer across processes: while
another process holds it, `DuckDBWarehouse` waits briefly (its `busy_timeout`), then
raises `WarehouseBusyError`, and the caller records the outcomes on a later try.

Alerts are JSON POSTs, Slack-compatible (`text`) plus the row's fields, configured by:

| variable | default | meaning |
|---|---|---|
| CFAP_ALERT_WEBHOOK_URL | unset | where alerts are POSTed; unset sends none |
| CFAP_ALERT_ON | failures | `failures` (FAILURE outcomes only) or `all` (every outcome) |

The URL may embed a token: it is never logged, nor put in an error message.

Outcomes that ended more than `ALERT_MAX_AGE` before they are recorded are written but
not alerted: a first start, or a reset cursor, would otherwise replay history to the channel.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import pandas as pd

from cfap_orchestration.connectors.http import redactor
from cfap_orchestration.studies.results import RESULTS_SCHEMA, Column, ResultTable
from cfap_orchestration.warehouse import Warehouse, WarehouseBusyError, WriteResult

logger = logging.getLogger(__name__)

OUTCOME_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")
ALERT_MAX_AGE = timedelta(hours=24)
ERROR_MAX_CHARS = 4000
ALERT_ERROR_MAX_CHARS = 1000
_TIMESTAMP = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")

JOB_STATUS = ResultTable(
    RESULTS_SCHEMA,
    "job_status",
    (
        Column("run_id", "VARCHAR", "STRING", "Dagster run id"),
        Column("job_name", "VARCHAR", "STRING", "job the run executed (__ASSET_JOB for assets)"),
        Column("status", "VARCHAR", "STRING", "outcome: SUCCESS, FAILURE or CANCELED"),
        Column("started_at", *_TIMESTAMP, "when the run started (null if it never did)"),
        Column("ended_at", *_TIMESTAMP, "when the run finished"),
        Column("duration_seconds", "DOUBLE", "FLOAT64", "ended_at - started_at, in seconds"),
        Column("error", "VARCHAR", "STRING", "why it failed or was canceled: run + first step"),
        Column("partition_key", "VARCHAR", "STRING", "the run's partition (dagster/partition)"),
        Column("partition_range_start", "VARCHAR", "STRING", "first partition of a range run"),
        Column("partition_range_end", "VARCHAR", "STRING", "last partition of a range run"),
        Column("asset_selection", "JSON", "JSON", "asset keys the run selected (JSON list)"),
        Column("recorded_at", *_TIMESTAMP, "when this row was written"),
    ),
)


class WebhookError(RuntimeError):
    """The alert webhook did not accept an alert. The message never contains the URL."""


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended, in plain values."""

    run_id: str
    job_name: str
    status: str
    ended_at: datetime
    started_at: datetime | None = None
    error: str | None = None
    partition_key: str | None = None
    partition_range_start: str | None = None
    partition_range_end: str | None = None
    asset_selection: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.run_id:
            raise ValueError("a run outcome needs a run_id")
        if self.status not in OUTCOME_STATUSES:
            raise ValueError(
                f"run {self.run_id}: status must be one of {OUTCOME_STATUSES}, got {self.status!r}"
            )
        for name in ("started_at", "ended_at"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"run {self.run_id}: {name} must be timezone-aware")

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    def as_record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job_name": self.job_name,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_seconds": self.duration_seconds,
            "error": _truncate(self.error, ERROR_MAX_CHARS),
            "partition_key": self.partition_key,
            "partition_range_start": self.partition_range_start,
            "partition_range_end": self.partition_range_end,
            "asset_selection": sorted(self.asset_selection) or None,
        }


def _truncate(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def failure_message(
    run_message: str | None, step_key: str | None = None, step_errors: Sequence[str] = ()
) -> str | None:
    """The run's own failure message, then the first failed step and its error chain
    (outermost first), e.g. `Step explode: Error occurred while executing op ...:
    ValueError: source file missing`."""
    parts = [run_message.strip()] if run_message and run_message.strip() else []
    chain = ": ".join(e.strip() for e in step_errors if e and e.strip())
    if chain:
        parts.append(f"Step {step_key}: {chain}" if step_key else chain)
    return "\n".join(parts) or None


def job_status_frame(
    outcomes: Sequence[RunOutcome], *, recorded_at: datetime | None = None
) -> pd.DataFrame:
    """`causal.job_status` rows, one per outcome, typed for the table's explicit schema."""
    ids = [o.run_id for o in outcomes]
    if len(set(ids)) != len(ids):
        raise ValueError("job_status: the same run_id appears twice in one write")
    records = [o.as_record() for o in outcomes]
    frame = pd.DataFrame(
        records, columns=[c for c in JOB_STATUS.column_names if c != "recorded_at"]
    )
    frame["asset_selection"] = [
        json.dumps(keys) if keys is not None else None for keys in frame["asset_selection"]
    ]
    frame["recorded_at"] = recorded_at or datetime.now(UTC)
    for column in ("started_at", "ended_at", "recorded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["duration_seconds"] = frame["duration_seconds"].astype("float64")
    return JOB_STATUS.conform(frame)


def record_outcomes(warehouse: Warehouse, outcomes: Sequence[RunOutcome]) -> WriteResult:
    """Replace these runs' job_status rows in one transaction. A DuckDB file that stays
    locked past the warehouse's busy wait raises `WarehouseBusyError`, naming how many
    outcomes wait to be recorded."""
    if not outcomes:
        raise ValueError("job_status: no run outcomes given to record")
    frame = job_status_frame(outcomes)
    try:
        return warehouse.replace_rows(
            JOB_STATUS.schema,
            JOB_STATUS.name,
            frame,
            column_types=JOB_STATUS.column_types(warehouse.dialect),
            match={"run_id": list(frame["run_id"])},
        )
    except WarehouseBusyError as busy:
        raise WarehouseBusyError(
            f"{len(outcomes)} run outcome(s) not recorded yet: {busy}"
        ) from None


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go and which outcomes raise one. The URL is kept out of repr."""

    webhook_url: str | None = field(default=None, repr=False)
    notify: Literal["failures", "all"] = "failures"
    max_age: timedelta = ALERT_MAX_AGE

    @property
    def enabled(self) -> bool:
        return self.webhook_url is not None

    def wants(self, outcome: RunOutcome, *, now: datetime | None = None) -> bool:
        age = (now or datetime.now(UTC)) - outcome.ended_at
        if not self.enabled or age > self.max_age:
            return False
        return self.notify == "all" or outcome.status == "FAILURE"


def alert_settings_from_env(environ: Mapping[str, str] | None = None) -> AlertSettings:
    """Read CFAP_ALERT_WEBHOOK_URL and CFAP_ALERT_ON; a bad value is an error naming the variable
    (never echoing the URL)."""
    env = os.environ if environ is None else environ
    url = env.get("CFAP_ALERT_WEBHOOK_URL", "").strip() or None
    notify = env.get("CFAP_ALERT_ON", "failures").strip().lower() or "failures"
    if notify not in ("failures", "all"):
        raise ValueError(f"CFAP_ALERT_ON must be 'failures' or 'all', got {notify!r}")
    if url is not None and not _is_http_url(url):
        raise ValueError("CFAP_ALERT_WEBHOOK_URL must be an http(s) URL with a host")
    return AlertSettings(webhook_url=url, notify="all" if notify == "all" else "failures")


def _is_http_url(url: str) -> bool:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:  # its message can quote the URL
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


_STATUS_LABEL = {
    "SUCCESS": ":white_check_mark: CFAP run succeeded",
    "FAILURE": ":x: CFAP run failed",
    "CANCELED": ":warning: CFAP run canceled",
}


def _alert_text(outcome: RunOutcome) -> str:
    lines = [f"{_STATUS_LABEL[outcome.status]}: `{outcome.job_name}` (run {outcome.run_id})"]
    if outcome.partition_key:
        lines.append(f"Partition: {outcome.partition_key}")
    if outcome.partition_range_start or outcome.partition_range_end:
        lines.append(f"Partitions: {outcome.partition_range_start}…{outcome.partition_range_end}")
    if outcome.asset_selection:
        lines.append(f"Assets: {', '.join(sorted(outcome.asset_selection))}")
    if outcome.duration_seconds is not None:
        lines.append(f"Duration: {outcome.duration_seconds:.1f} s")
    error = _truncate(outcome.error, ALERT_ERROR_MAX_CHARS)
    if error:
        lines.append("```" + error + "```")
    return "\n".join(lines)


def alert_payload(outcome: RunOutcome) -> dict[str, Any]:
    """Slack-compatible `text`, plus every job_status field for other receivers."""
    record = outcome.as_record()
    for name in ("started_at", "ended_at"):
        record[name] = record[name].isoformat() if record[name] is not None else None
    return {"text": _alert_text(outcome), **record}


def _retryable(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def post_alert(
    url: str,
    payload: Mapping[str, Any],
    *,
    attempts: int = 3,
    timeout_seconds: float = 5.0,
    first_wait_seconds: float = 0.5,
) -> None:
    """POST `payload` as JSON, retrying timeouts, connection errors, 429 and 5xx (waiting
    `first_wait_seconds`, doubling). Raises `WebhookError`, whose message has no URL."""
    if not _is_http_url(url):
        raise WebhookError("the alert webhook URL is not an http(s) URL with a host")
    redactor.register(url)  # httpx logs each request's URL: scrub it there too
    redactor.register(str(httpx.URL(url)))
    reason = "no attempt made"
    with httpx.Client(timeout=timeout_seconds) as client:
        for attempt in range(attempts):
            if attempt:
                logger.warning("alert webhook attempt %d failed (%s); retrying", attempt, reason)
                time.sleep(first_wait_seconds * 2 ** (attempt - 1))
            try:
                response = client.post(url, json=dict(payload))
            except httpx.TransportError as error:
                reason = f"{type(error).__name__}: {redactor.redact(str(error))}"
                continue
            if response.is_success:
                return
            reason = f"HTTP {response.status_code}"
            if not _retryable(response.status_code):
                raise WebhookError(f"the alert webhook rejected the alert: {reason}")
    raise WebhookError(f"the alert webhook failed {attempts} times; last: {reason}")


def deliver_alerts(
    outcomes: Sequence[RunOutcome],
    settings: AlertSettings,
    log: logging.Logger,
    *,
    now: datetime | None = None,
) -> int:
    """POST an alert for each outcome the settings want; returns how many were delivered.
    A failure is logged (never the URL) and ends this round: a dead webhook costs one
    alert's retries, not one per outcome."""
    wanted = [o for o in outcomes if settings.wants(o, now=now)]
    if settings.webhook_url is None:
        return 0
    for delivered, outcome in enumerate(wanted):
        try:
            post_alert(settings.webhook_url, alert_payload(outcome))
        except WebhookError as error:
            log.warning(
                "Alert for run %s (%s) not delivered: %s. Its job_status row is written; "
                "%d more alert(s) skipped this round.",
                outcome.run_id, outcome.status, error, len(wanted) - delivered - 1,
            )  # fmt: skip
            return delivered
    return len(wanted)
