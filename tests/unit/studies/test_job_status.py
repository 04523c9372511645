"""job_status rows and run-outcome alerts: a real DuckDB file, a real webhook on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from job_status_support import held_duckdb_lock, webhook_receiver

from cfap_orchestration.studies.job_status import (
    JOB_STATUS,
    AlertSettings,
    RunOutcome,
    WebhookError,
    alert_payload,
    alert_settings_from_env,
    deliver_alerts,
    failure_message,
    job_status_frame,
    post_alert,
    record_outcomes,
)
from cfap_orchestration.warehouse import DuckDBWarehouse, WarehouseBusyError

ENDED = datetime(2025, 6, 2, 3, 0, 12, tzinfo=UTC)
ERROR = (
    "Execution of run for \"daily_refresh\" failed. Steps failed: ['raw__meta_ads'].\n"
    "Step raw__meta_ads: ValueError: Meta returned no rows for 2025-06-01"
)


def _failed(run_id: str = "run-failed", **changes: object) -> RunOutcome:
    values: dict[str, object] = {
        "run_id": run_id,
        "job_name": "daily_refresh",
        "status": "FAILURE",
        "started_at": ENDED - timedelta(seconds=72),
        "ended_at": ENDED,
        "error": ERROR,
        "partition_key": "2025-06-01",
        "asset_selection": ("raw/meta_ads", "raw/google_ads"),
    }
    return RunOutcome(**{**values, **changes})  # type: ignore[arg-type]


def _succeeded(run_id: str = "run-ok") -> RunOutcome:
    return RunOutcome(
        run_id=run_id,
        job_name="__ASSET_JOB",
        status="SUCCESS",
        started_at=ENDED - timedelta(seconds=5),
        ended_at=ENDED,
        partition_range_start="2025-05-01",
        partition_range_end="2025-05-31",
    )


# --- rows ---------------------------------------------------------------------------------


def test_a_frame_has_the_table_columns_typed() -> None:
    recorded = datetime(2025, 6, 2, 3, 1, tzinfo=UTC)
    frame = job_status_frame([_failed(), _succeeded()], recorded_at=recorded)
    assert list(frame.columns) == JOB_STATUS.column_names
    failed, ok = frame.to_dict("records")
    assert failed["duration_seconds"] == 72.0
    assert json.loads(failed["asset_selection"]) == ["raw/google_ads", "raw/meta_ads"]
    assert ok["asset_selection"] is None and ok["error"] is None
    assert ok["partition_range_end"] == "2025-05-31"
    assert str(frame["started_at"].dtype) == "datetime64[ns, UTC]"
    assert (frame["recorded_at"] == recorded).all()


def test_an_outcome_that_never_started_has_no_duration() -> None:
    canceled = RunOutcome("run-c", "daily_refresh", "CANCELED", ended_at=ENDED, error="Canceled")
    assert canceled.duration_seconds is None
    assert job_status_frame([canceled])["duration_seconds"].isna().all()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"status": "STARTED"}, "status must be one of"),
        ({"run_id": ""}, "needs a run_id"),
        ({"ended_at": datetime(2025, 6, 2, 3, 0)}, "ended_at must be timezone-aware"),
    ],
)
def test_a_bad_outcome_is_refused_naming_the_problem(
    changes: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _failed(**changes)


def test_one_write_cannot_hold_a_run_twice() -> None:
    with pytest.raises(ValueError, match="same run_id appears twice"):
        job_status_frame([_failed("r1"), _succeeded("r1")])


def test_a_failure_message_is_the_run_message_then_the_first_step() -> None:
    message = failure_message(
        'Execution of run for "j" failed.',
        "explode",
        ['Error occurred while executing op "explode"', "ValueError: file missing"],
    )
    assert message == (
        'Execution of run for "j" failed.\n'
        'Step explode: Error occurred while executing op "explode": ValueError: file missing'
    )
    assert failure_message("Run worker crashed.") == "Run worker crashed."
    assert failure_message(None, None, ["OSError: disk full"]) == "OSError: disk full"
    assert failure_message("  ", None, []) is None


def test_a_long_error_is_truncated() -> None:
    row = job_status_frame([_failed(error="x" * 10_000)]).iloc[0]
    assert len(row["error"]) == 4000 and row["error"].endswith("…")


# --- writing ------------------------------------------------------------------------------


def test_recording_twice_leaves_one_row_per_run(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    record_outcomes(warehouse, [_failed(), _succeeded()])
    result = record_outcomes(warehouse, [_failed(status="CANCELED")])
    rows = warehouse.query("SELECT run_id, status FROM causal.job_status ORDER BY run_id")
    assert rows.to_dict("records") == [
        {"run_id": "run-failed", "status": "CANCELED"},
        {"run_id": "run-ok", "status": "SUCCESS"},
    ]
    assert result.rows_replaced == 1
    types = warehouse.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'job_status' AND column_name IN ('ended_at', 'asset_selection')"
        " ORDER BY column_name"
    )
    assert list(types["data_type"]) == ["JSON", "TIMESTAMP WITH TIME ZONE"]


def test_a_locked_warehouse_is_reported_busy_naming_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path, busy_timeout=0.3)
    with held_duckdb_lock(str(path)), pytest.raises(WarehouseBusyError) as busy:
        record_outcomes(warehouse, [_failed(), _succeeded()])
    assert "2 run outcome(s) not recorded yet" in str(busy.value)
    assert "in use by another process" in str(busy.value)
    record_outcomes(warehouse, [_failed()])  # released: the same outcome is written
    assert warehouse.query("SELECT count(*) AS n FROM causal.job_status")["n"].iloc[0] == 1


def test_nothing_to_record_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no run outcomes"):
        record_outcomes(DuckDBWarehouse(tmp_path / "w.duckdb"), [])


# --- alert settings and payload -----------------------------------------------------------


def test_alerts_are_off_without_a_url_and_on_failures_by_default() -> None:
    assert not alert_settings_from_env({}).enabled
    settings = alert_settings_from_env({"CFAP_ALERT_WEBHOOK_URL": "https://hooks.example/x"})
    now = ENDED + timedelta(minutes=1)
    assert settings.wants(_failed(), now=now)
    assert not settings.wants(_succeeded(), now=now)
    everything = alert_settings_from_env(
        {"CFAP_ALERT_WEBHOOK_URL": "https://hooks.example/x", "CFAP_ALERT_ON": "ALL"}
    )
    assert everything.wants(_succeeded(), now=now)


def test_history_is_recorded_but_not_alerted() -> None:
    settings = AlertSettings(webhook_url="https://hooks.example/x")
    assert not settings.wants(_failed(), now=ENDED + timedelta(days=3))


def test_the_url_stays_out_of_the_settings_repr() -> None:
    settings = alert_settings_from_env({"CFAP_ALERT_WEBHOOK_URL": "https://hooks.example/s3cr3t"})
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"CFAP_ALERT_ON": "sometimes"}, "CFAP_ALERT_ON must be 'failures' or 'all'"),
        ({"CFAP_ALERT_WEBHOOK_URL": "hooks.example/s3cr3t"}, "must be an http"),
        ({"CFAP_ALERT_WEBHOOK_URL": "ftp://hooks.example/s3cr3t"}, "must be an http"),
        ({"CFAP_ALERT_WEBHOOK_URL": "https://hooks.example:notaport/s3cr3t"}, "must be an http"),
    ],
)
def test_bad_alert_settings_are_named_without_the_url(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        alert_settings_from_env(env)
    assert "s3cr3t" not in str(raised.value)


def test_the_payload_is_slack_text_plus_the_row_fields() -> None:
    payload = alert_payload(_failed())
    assert payload["text"].startswith(":x: CFAP run failed: `daily_refresh` (run run-failed)")
    assert "Partition: 2025-06-01" in payload["text"]
    assert "Meta returned no rows for 2025-06-01" in payload["text"]
    assert payload["status"] == "FAILURE" and payload["error"] == ERROR
    assert payload["ended_at"] == "2025-06-02T03:00:12+00:00"
    assert payload["duration_seconds"] == 72.0
    assert payload["asset_selection"] == ["raw/google_ads", "raw/meta_ads"]
    json.dumps(payload)  # serializable as is


# --- posting ------------------------------------------------------------------------------


def test_an_alert_is_posted_as_json() -> None:
    with webhook_receiver() as hook:
        post_alert(hook.url, alert_payload(_failed()))
    assert [p["run_id"] for p in hook.received] == ["run-failed"]
    assert hook.content_types == ["application/json"]


def test_a_server_error_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_receiver(statuses=[500, 503]) as hook:
        post_alert(hook.url, alert_payload(_failed()), first_wait_seconds=0.01)
    assert len(hook.received) == 3
    assert "retrying" in caplog.text
    assert hook.url not in caplog.text and "s3cr3t" not in caplog.text


def _assert_secret_free(error: BaseException, logs: str) -> None:
    shown = "".join(traceback.format_exception(error)) + logs
    assert "s3cr3t" not in shown and "/services/" not in shown


def test_a_webhook_that_keeps_failing_raises_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # includes httpx's own request log lines
    with webhook_receiver(statuses=[500] * 5) as hook, pytest.raises(WebhookError) as raised:
        post_alert(hook.url, {"text": "x"}, attempts=3, first_wait_seconds=0.01)
    assert len(hook.received) == 3
    assert "failed 3 times; last: HTTP 500" in str(raised.value)
    _assert_secret_free(raised.value, caplog.text)
    assert "HTTP Request: POST" in caplog.text  # httpx did log: with the URL scrubbed


def test_a_rejected_alert_is_not_retried() -> None:
    with webhook_receiver(statuses=[404]) as hook, pytest.raises(WebhookError, match="HTTP 404"):
        post_alert(hook.url, {"text": "x"}, first_wait_seconds=0.01)
    assert len(hook.received) == 1


def test_an_unreachable_webhook_raises_without_the_url(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_receiver() as hook:
        url = hook.url  # the server is closed on leaving: its port refuses connections
    with pytest.raises(WebhookError, match="ConnectError") as raised:
        post_alert(url, {"text": "x"}, attempts=2, first_wait_seconds=0.01)
    _assert_secret_free(raised.value, caplog.text)


def test_a_slow_webhook_times_out_and_is_retried() -> None:
    with webhook_receiver(delay_seconds=0.5) as hook, pytest.raises(WebhookError, match="Timeout"):
        post_alert(hook.url, {"text": "x"}, attempts=2, timeout_seconds=0.1, first_wait_seconds=0)
    assert len(hook.received) == 2


def test_delivery_sends_what_the_settings_want() -> None:
    log = logging.getLogger("test_job_status")
    with webhook_receiver() as hook:
        settings = AlertSettings(webhook_url=hook.url)
        sent = deliver_alerts([_failed(), _succeeded()], settings, log, now=ENDED)
    assert sent == 1 and [p["status"] for p in hook.received] == ["FAILURE"]
    assert deliver_alerts([_failed()], AlertSettings(), log, now=ENDED) == 0


def test_a_dead_webhook_costs_one_alert_per_round(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_receiver(statuses=[500] * 10) as hook:
        settings = AlertSettings(webhook_url=hook.url, notify="all")
        sent = deliver_alerts(
            [_failed("a"), _failed("b"), _succeeded("c")],
            settings,
            logging.getLogger("test_job_status"),
            now=ENDED,
        )
    assert sent == 0 and len(hook.received) == 3  # one alert, three attempts
    assert "Alert for run a (FAILURE) not delivered" in caplog.text
    assert "2 more alert(s) skipped" in caplog.text
    assert "s3cr3t" not in caplog.text
