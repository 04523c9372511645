"""Meta Marketing API (Ads Insights) connector: campaign-level daily insights as raw frames.

Short ranges use the synchronous `GET /act_{id}/insights`; longer ones use async report
runs (`POST`, poll, read), one per window of at most 31 days. Errors are classified by
the JSON body's `code`, not by HTTP status, because Meta sends throttles as HTTP 400.
The token rides as the `access_token` query parameter, as Meta's own `paging.next`
links do; it is registered with the redactor and never appears in logs or errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import httpx
import pandas as pd

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitedError,
    ReportJobFailedError,
    TransientApiError,
)
from cfap_orchestration.connectors.http import (
    PlatformClient,
    PlatformHttpClient,
    RetryPolicy,
    describe,
    parse_retry_after,
    redactor,
    require_fields,
)

PLATFORM = "meta_ads"
DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_LOOKBACK_DAYS = 28  # Meta restates conversions for 28 days, then freezes them
MAX_WINDOW_DAYS = 31
PACE_SECONDS = 60.0  # pause when a usage header passes 95 %, as Airbyte does
PACE_THRESHOLD_PCT = 95.0
SUPPORTED_BREAKDOWNS = ("region",)

INSIGHTS_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "account_id",
    "account_name",
    "account_currency",
    "account_timezone",
    "campaign_id",
    "campaign_name",
    "date_start",
    "date_stop",
    "impressions",
    "clicks",
    "spend",
    "actions",
    "action_values",
    "attribution_windows",
)
INSIGHTS_PRIMARY_KEY: tuple[str, ...] = ("account_id", "campaign_id", "date_start")
REGION_INSIGHTS_COLUMNS: tuple[str, ...] = (
    *INSIGHTS_COLUMNS[: INSIGHTS_COLUMNS.index("date_stop") + 1],
    "region",
    *INSIGHTS_COLUMNS[INSIGHTS_COLUMNS.index("date_stop") + 1 :],
)
REGION_INSIGHTS_PRIMARY_KEY: tuple[str, ...] = (*INSIGHTS_PRIMARY_KEY, "region")

INSIGHTS_FIELDS: tuple[str, ...] = (
    "account_id",
    "account_name",
    "account_currency",
    "campaign_id",
    "campaign_name",
    "date_start",
    "date_stop",
    "impressions",
    "clicks",
    "spend",
    "actions",
    "action_values",
)
# `actions`/`action_values` are omitted by Meta when every action count is zero.
REQUIRED_ROW_FIELDS: tuple[str, ...] = tuple(
    f for f in INSIGHTS_FIELDS if f not in ("actions", "action_values")
)
ACCOUNT_FIELDS = ("id", "account_id", "name", "currency", "timezone_name")

THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
AUTH_CODES = frozenset({102, 104, 190})
DONE, FAILED = "Job Completed", frozenset({"Job Failed", "Job Skipped"})


class MetaAdsClient(PlatformClient):
    """Reads Meta ad accounts and campaign-level daily insights."""

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = "v21.0",
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = 500,
        async_threshold_days: int = 7,
        poll_interval: float = 5.0,
        job_timeout: float = 1800.0,
        attribution_windows: tuple[str, ...] = ("7d_click", "1d_view"),
    ) -> None:
        if not access_token:
            raise AuthenticationError(PLATFORM, "no access token given")
        self._token = access_token
        self._origin = httpx.URL(base_url)
        self._sleep = sleep
        self.page_size = page_size
        self.async_threshold_days = async_threshold_days
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self.attribution_windows = tuple(attribution_windows)
        self._accounts: dict[str, dict[str, Any]] = {}
        self._http = PlatformHttpClient(
            PLATFORM,
            f"{base_url.rstrip('/')}/{api_version}/",
            secrets=(access_token,),
            classify_error=classify_error,
            pace=usage_pause,
            retry=retry,
            transport=transport,
            sleep=sleep,
        )

    # ---- accounts -----------------------------------------------------------------

    def list_ad_accounts(self) -> list[dict[str, Any]]:
        """Every ad account the token can read: id ("act_…"), account_id, name, currency, tz."""
        params = {"fields": ",".join(ACCOUNT_FIELDS), "limit": self.page_size}
        accounts = []
        for account in self._pages("me/adaccounts", params):
            require_fields(PLATFORM, account, ACCOUNT_FIELDS, "An ad account from /me/adaccounts")
            accounts.append(account)
        return accounts

    def get_account(self, account_id: str) -> dict[str, Any]:
        """One ad account's name, currency, time zone and id (cached per client)."""
        key = _bare_id(account_id)
        if key not in self._accounts:
            params = {"fields": ",".join(ACCOUNT_FIELDS[1:])}
            body = self._get(f"act_{key}", params)
            require_fields(PLATFORM, body, ACCOUNT_FIELDS, f"Ad account act_{key}")
            self._accounts[key] = body
        return self._accounts[key]

    # ---- insights -----------------------------------------------------------------

    def fetch_insights(
        self, account_id: str, since: date, until: date, *, breakdowns: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        """Campaign x day insights for `since`..`until` (inclusive, account time zone).

        With `breakdowns=("region",)` one row per campaign x region x day. Ranges longer
        than `async_threshold_days` go through async report runs of at most 31 days.
        """
        if since > until:
            raise ValueError(f"since ({since}) is after until ({until})")
        unsupported = [b for b in breakdowns if b not in SUPPORTED_BREAKDOWNS]
        if unsupported:
            raise ValueError(f"unsupported breakdowns {unsupported}; use {SUPPORTED_BREAKDOWNS}")
        account = self.get_account(account_id)
        act = f"act_{account['account_id']}"
        if (until - since).days + 1 > self.async_threshold_days:
            rows: Iterator[dict[str, Any]] = (
                row
                for start, end in date_windows(since, until, MAX_WINDOW_DAYS)
                for row in self._report_run(act, start, end, breakdowns)
            )
        else:
            rows = self._pages(f"{act}/insights", self._insights_params(since, until, breakdowns))
        columns = REGION_INSIGHTS_COLUMNS if breakdowns else INSIGHTS_COLUMNS
        records = [self._record(row, account, breakdowns) for row in rows]
        return pd.DataFrame(records, columns=list(columns))

    def _insights_params(
        self, since: date, until: date, breakdowns: tuple[str, ...]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "level": "campaign",
            "time_increment": 1,
            "time_range": json.dumps({"since": since.isoformat(), "until": until.isoformat()}),
            "fields": ",".join(INSIGHTS_FIELDS),
            "action_attribution_windows": json.dumps(list(self.attribution_windows)),
            "limit": self.page_size,
        }
        if breakdowns:
            params["breakdowns"] = ",".join(breakdowns)
        return params

    def _record(
        self, row: Mapping[str, Any], account: Mapping[str, Any], breakdowns: tuple[str, ...]
    ) -> dict[str, Any]:
        required = (*REQUIRED_ROW_FIELDS, *breakdowns)
        require_fields(PLATFORM, row, required, f"An insights row of act_{account['account_id']}")
        record: dict[str, Any] = {f: str(row[f]) for f in required}
        record["partition_date"] = date.fromisoformat(record["date_start"])
        record["account_timezone"] = account["timezone_name"]
        record["actions"] = _json(row.get("actions"))
        record["action_values"] = _json(row.get("action_values"))
        record["attribution_windows"] = ",".join(self.attribution_windows)
        return record

    # ---- async report runs --------------------------------------------------------

    def _report_run(
        self, act: str, since: date, until: date, breakdowns: tuple[str, ...]
    ) -> Iterator[dict[str, Any]]:
        params = self._with_token(self._insights_params(since, until, breakdowns))
        params.pop("limit")
        body, _ = self._http.request_json("POST", f"{act}/insights", params=params)
        require_fields(PLATFORM, body, ("report_run_id",), f"The report run created for {act}")
        run_id = str(body["report_run_id"])
        self._await_job(run_id, f"{act} {since}..{until}")
        yield from self._pages(f"{run_id}/insights", {"limit": self.page_size})

    def _await_job(self, run_id: str, scope: str) -> None:
        started, slept = time.monotonic(), 0.0
        while True:
            status = self._get(run_id, {})
            require_fields(PLATFORM, status, ("async_status",), f"Report run {run_id}")
            state, pct = status["async_status"], status.get("async_percent_completion", 0)
            if state == DONE:
                return
            if state in FAILED:
                raise ReportJobFailedError(
                    PLATFORM,
                    f"report run {run_id} for {scope} ended in {state!r} at {pct}%. "
                    "Retry later or request a shorter range.",
                )
            if max(time.monotonic() - started, slept) >= self.job_timeout:
                raise ReportJobFailedError(
                    PLATFORM,
                    f"report run {run_id} for {scope} did not finish within "
                    f"{self.job_timeout:g}s (last status {state!r} at {pct}%).",
                )
            self._sleep(self.poll_interval)
            slept += self.poll_interval
            self.stats.waited_seconds += self.poll_interval

    # ---- requests and paging ------------------------------------------------------

    def _with_token(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**params, "access_token": self._token}

    def _get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body, response = self._http.request_json("GET", path, params=self._with_token(params))
        if not isinstance(body, dict):
            raise TransientApiError(PLATFORM, f"{describe(response.request)} returned no object")
        return body

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every element of `data`, following `paging.next` until it is absent."""
        url, query = path, dict(params)
        while True:
            body = self._get(url, query)
            require_fields(PLATFORM, body, ("data",), f"The response of GET {path}")
            self.stats.pages += 1
            yield from body["data"]
            next_link = (body.get("paging") or {}).get("next")
            if not next_link:
                return
            url, query = self._split_next(next_link, path)

    def _split_next(self, link: str, path: str) -> tuple[str, dict[str, Any]]:
        """The next page's URL and query, minus the token it carries (we add our own)."""
        parsed = httpx.URL(link)
        if (parsed.scheme, parsed.host, parsed.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise InvalidRequestError(
                PLATFORM,
                f"paging.next of GET {path} points to another host ({parsed.host}); "
                "refusing to send the token there",
            )
        query = {k: v for k, v in parsed.params.items() if k != "access_token"}
        return str(parsed.copy_with(query=None)), query


# ---- error classification and pacing --------------------------------------------


def classify_error(response: httpx.Response, body: Any) -> ConnectorError | None:
    """Map Meta's body-coded errors to typed errors; None defers to status-code rules."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    code, subcode = _int(error.get("code")), error.get("error_subcode")
    message = redactor.redact(str(error.get("message", "")))[:300]
    coded = f"code {code}" + (f"/{subcode}" if subcode is not None else "")
    text = f"{describe(response.request)} returned HTTP {response.status_code}, {coded}: {message}"
    if code in THROTTLE_CODES:
        return RateLimitedError(PLATFORM, text, throttle_wait(response))
    if code in AUTH_CODES:
        return AuthenticationError(PLATFORM, f"{text}. Refresh the access token.")
    if code == 10 or 200 <= code <= 299:
        return PermissionDeniedError(
            PLATFORM, f"{text}. The token lacks a permission (ads_read) for this object."
        )
    if code in TRANSIENT_CODES or error.get("is_transient") is True:
        hint = parse_retry_after(response.headers.get("Retry-After"))
        return TransientApiError(PLATFORM, text, hint)
    if code == 100:
        return InvalidRequestError(PLATFORM, f"{text}. Check the request parameters.")
    return None


def throttle_wait(response: httpx.Response) -> float | None:
    """Seconds to wait: Meta's estimated_time_to_regain_access (minutes), else Retry-After."""
    minutes = max(_regain_minutes(response.headers), default=0.0)
    if minutes > 0:
        return minutes * 60.0
    return parse_retry_after(response.headers.get("Retry-After"))


def usage_pause(response: httpx.Response) -> float:
    """Pause after a successful call when any usage header is above 95 % (or says wait)."""
    minutes = max(_regain_minutes(response.headers), default=0.0)
    if minutes > 0:
        return minutes * 60.0
    peak = max(_usage_percentages(response.headers), default=0.0)
    return PACE_SECONDS if peak > PACE_THRESHOLD_PCT else 0.0


def _usage_percentages(headers: httpx.Headers) -> Iterator[float]:
    for name in ("x-app-usage", "x-ad-account-usage", "x-fb-ads-insights-throttle"):
        yield from _numbers(_header_json(headers, name), exclude=("reset_time_duration",))
    for entries in _buc_entries(headers):
        yield from _numbers(entries, exclude=("estimated_time_to_regain_access",))


def _regain_minutes(headers: httpx.Headers) -> Iterator[float]:
    for entry in _buc_entries(headers):
        value = entry.get("estimated_time_to_regain_access")
        if isinstance(value, int | float):
            yield float(value)


def _buc_entries(headers: httpx.Headers) -> Iterator[dict[str, Any]]:
    usage = _header_json(headers, "x-business-use-case-usage")
    for entries in usage.values() if isinstance(usage, dict) else ():
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                yield entry


def _header_json(headers: httpx.Headers, name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _numbers(value: Any, exclude: tuple[str, ...]) -> Iterator[float]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in exclude and isinstance(item, int | float):
                yield float(item)


# ---- small helpers ----------------------------------------------------------------


def date_windows(since: date, until: date, max_days: int) -> Iterator[tuple[date, date]]:
    """Consecutive inclusive (start, end) windows of at most `max_days` covering the range."""
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=max_days - 1))
        yield start, end
        start = end + timedelta(days=1)


def _bare_id(account_id: str) -> str:
    return account_id.removeprefix("act_")


def _json(value: Any) -> str:
    return json.dumps(value if value is not None else [], separators=(",", ":"))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
