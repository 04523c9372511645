"""Google Ads API (REST) connector: daily campaign and campaign x region stats via searchStream.

Auth is OAuth: the long-lived refresh token buys a short-lived access token from Google's
token endpoint (a separate host), sent as `Authorization: Bearer` together with the
`developer-token` header. A 401 from the API refreshes the access token once.

searchStream answers with a JSON array of batches (no paging); rows are kept close to the
wire: int64 values stay the strings Google sent, proto3 JSON leaves zero values out (we
restore "0"/0.0), and rows whose metrics are all zero do not exist at all. A row carrying a
key the query did not select, or lacking an identity field, is schema drift.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import httpx
import pandas as pd

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitedError,
    SchemaDriftError,
    TransientApiError,
)
from cfap_orchestration.connectors.http import (
    PlatformClient,
    PlatformHttpClient,
    RetryPolicy,
    default_error,
    describe,
    redactor,
    require_fields,
)

PLATFORM = "google_ads"
DEFAULT_BASE_URL = "https://googleads.googleapis.com"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"
DEFAULT_API_VERSION = "v18"
DEFAULT_LOOKBACK_DAYS = 14  # Google's default conversion window: re-read this many days
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0

CAMPAIGN_FIELDS: tuple[str, ...] = (
    "customer.id",
    "customer.descriptive_name",
    "customer.currency_code",
    "customer.time_zone",
    "campaign.id",
    "campaign.name",
    "campaign.status",
    "segments.date",
    "metrics.impressions",
    "metrics.clicks",
    "metrics.cost_micros",
    "metrics.conversions",
    "metrics.conversions_value",
)
_GEO_EXTRA: tuple[str, ...] = (
    "segments.geo_target_region",
    "geographic_view.country_criterion_id",
    "geographic_view.location_type",
)
_DATE_AT = CAMPAIGN_FIELDS.index("segments.date") + 1
GEO_FIELDS: tuple[str, ...] = (
    *CAMPAIGN_FIELDS[:_DATE_AT],
    *_GEO_EXTRA,
    *CAMPAIGN_FIELDS[_DATE_AT:],
)
INT64_FIELDS = frozenset(
    {
        "customer.id",
        "campaign.id",
        "metrics.impressions",
        "metrics.clicks",
        "metrics.cost_micros",
        "geographic_view.country_criterion_id",
    }
)
DOUBLE_FIELDS = frozenset({"metrics.conversions", "metrics.conversions_value"})


def column_name(field: str) -> str:
    """`metrics.cost_micros` -> `metrics_cost_micros`."""
    return field.replace(".", "_")


CAMPAIGN_STATS_COLUMNS: tuple[str, ...] = (
    "partition_date",
    *(column_name(f) for f in CAMPAIGN_FIELDS),
)
CAMPAIGN_STATS_PRIMARY_KEY: tuple[str, ...] = ("customer_id", "campaign_id", "segments_date")
GEO_STATS_COLUMNS: tuple[str, ...] = ("partition_date", *(column_name(f) for f in GEO_FIELDS))
GEO_STATS_PRIMARY_KEY: tuple[str, ...] = (
    *CAMPAIGN_STATS_PRIMARY_KEY,
    "segments_geo_target_region",
)
_CAMPAIGN_IDENTITY = ("customer.id", "campaign.id", "segments.date")
_GEO_IDENTITY = (*_CAMPAIGN_IDENTITY, "segments.geo_target_region")

_RATE_LIMIT_CODES = frozenset({"RESOURCE_EXHAUSTED", "RESOURCE_TEMPORARILY_EXHAUSTED"})
_TRANSIENT_STATUSES = frozenset({"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"})
_TRANSIENT_CODES = frozenset({"INTERNAL_ERROR", "TRANSIENT_ERROR", "DEADLINE_EXCEEDED"})
_OAUTH_AUTH_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


@lru_cache(maxsize=256)
def camel(field: str) -> str:
    """`geographic_view.country_criterion_id` -> `geographicView.countryCriterionId`."""
    return ".".join(_camel_part(part) for part in field.split("."))


def _camel_part(part: str) -> str:
    head, *rest = part.split("_")
    return head + "".join(word.capitalize() for word in rest)


class _AccessTokenRejected(AuthenticationError):
    """A 401 from the API itself: worth one access-token refresh before giving up."""

    def __init__(self, platform: str, message: str) -> None:
        self.detail = message
        super().__init__(platform, message)


# ---- error classification ---------------------------------------------------------------


def _error_object(body: Any) -> dict[str, Any] | None:
    """The `error` object of a Google error body, sent bare or wrapped in an array."""
    candidates = body if isinstance(body, list) else [body]
    for item in candidates:
        if isinstance(item, dict) and isinstance(item.get("error"), dict):
            return item["error"]
    return None


def _failures(error: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The GoogleAdsFailure `errors` entries inside an error object's details."""
    out: list[dict[str, Any]] = []
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("GoogleAdsFailure"):
            out.extend(e for e in detail.get("errors") or [] if isinstance(e, dict))
    return out


def _codes(failures: list[dict[str, Any]]) -> set[str]:
    return {str(v) for f in failures for v in (f.get("errorCode") or {}).values()}


def _retry_delay(failures: list[dict[str, Any]]) -> float | None:
    """`quotaErrorDetails.retryDelay` ("60s", a protobuf Duration) in seconds."""
    for failure in failures:
        quota = (failure.get("details") or {}).get("quotaErrorDetails") or {}
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(quota.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None


def _describe_failure(error: Mapping[str, Any], failures: list[dict[str, Any]]) -> str:
    parts = [
        f"{'/'.join(f'{k}={v}' for k, v in (f.get('errorCode') or {}).items())}: "
        f"{f.get('message', '')}"
        for f in failures
    ]
    text = "; ".join(parts) or str(error.get("message", ""))
    return redactor.redact(text)


def classify_api_error(response: httpx.Response, body: Any) -> ConnectorError | None:
    """Map a Google Ads error (HTTP status, gRPC status, GoogleAdsFailure codes) to our errors.

    A searchStream that fails after starting sends a 200 whose array ends in an error
    object; that is classified too, so retryable mid-stream failures are retried.
    """
    error = _error_object(body)
    if error is None:
        if response.status_code >= 400:
            return default_error(PLATFORM, response, redactor.redact(response.text[:300]))
        return None
    failures = _failures(error)
    codes = _codes(failures)
    status_name = str(error.get("status", ""))
    http_status = response.status_code if response.status_code >= 400 else error.get("code")
    text = (
        f"{describe(response.request)} returned HTTP {http_status} {status_name}: "
        f"{_describe_failure(error, failures)}"
    )
    if http_status == 429 or status_name == "RESOURCE_EXHAUSTED" or codes & _RATE_LIMIT_CODES:
        return RateLimitedError(PLATFORM, text, _retry_delay(failures))
    if status_name in _TRANSIENT_STATUSES or codes & _TRANSIENT_CODES:
        return TransientApiError(PLATFORM, text)
    if http_status == 401 or status_name == "UNAUTHENTICATED":
        return _AccessTokenRejected(PLATFORM, text)
    if http_status == 403 or status_name == "PERMISSION_DENIED":
        return PermissionDeniedError(
            PLATFORM,
            f"{text.rstrip('.')}. Check the developer token's access "
            "level and the login-customer-id (manager) header.",
        )
    if isinstance(http_status, int) and http_status >= 500:
        return TransientApiError(PLATFORM, text)
    return InvalidRequestError(PLATFORM, text)


def classify_oauth_error(response: httpx.Response, body: Any) -> ConnectorError | None:
    """Google's token endpoint: `{"error": "invalid_grant", "error_description": ...}`."""
    status = response.status_code
    if status < 400:
        return None
    if status == 429 or status >= 500 or not isinstance(body, dict):
        return default_error(PLATFORM, response, redactor.redact(response.text[:300]))
    code = str(body.get("error", ""))
    text = (
        f"{describe(response.request)} returned HTTP {status} {code}: "
        f"{redactor.redact(str(body.get('error_description', ''))).rstrip('.')}"
    )
    if code in _OAUTH_AUTH_ERRORS or status == 401:
        return AuthenticationError(
            PLATFORM,
            f"{text}. The refresh token or OAuth client was rejected; re-authorise the "
            "Google Ads connection and update the stored refresh token.",
        )
    return InvalidRequestError(PLATFORM, text)


# ---- rows -------------------------------------------------------------------------------


def _flatten(result: Mapping[str, Any]) -> dict[str, Any]:
    """`{"metrics": {"costMicros": "1"}}` -> `{"metrics.costMicros": "1"}`; drops resourceName."""
    flat: dict[str, Any] = {}
    for message, fields in result.items():
        if not isinstance(fields, dict):
            flat[message] = fields
            continue
        for key, value in fields.items():
            if key != "resourceName":
                flat[f"{message}.{key}"] = value
    return flat


@lru_cache(maxsize=16)
def _selected(fields: tuple[str, ...]) -> frozenset[str]:
    return frozenset(camel(f) for f in fields)


def check_row(flat: Mapping[str, Any], fields: tuple[str, ...], identity: tuple[str, ...]) -> None:
    """Raise SchemaDriftError on keys the query did not select or missing identity fields.

    A selected metric that is absent is not drift: proto3 JSON omits zero values.
    """
    selected = _selected(fields)
    if not selected.issuperset(flat):
        unexpected = sorted(set(flat) - selected)
        messages = {u.split(".")[0] for u in unexpected}
        absent = sorted(s for s in selected - set(flat) if s.split(".")[0] in messages)
        raise SchemaDriftError(
            PLATFORM,
            f"searchStream row has field(s) {unexpected} that the query did not select; "
            f"selected field(s) absent from the row: {absent}. The API may have renamed them.",
        )
    require_fields(PLATFORM, flat, tuple(camel(f) for f in identity), "searchStream row")


def to_record(flat: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """One raw-table record; omitted zero values come back as "0" (int64) or 0.0 (double)."""
    record: dict[str, Any] = {}
    for field in fields:
        value = flat.get(camel(field))
        if field in INT64_FIELDS:
            record[column_name(field)] = "0" if value is None else str(value)
        elif field in DOUBLE_FIELDS:
            record[column_name(field)] = 0.0 if value is None else float(value)
        else:
            record[column_name(field)] = "" if value is None else str(value)
    record["partition_date"] = date.fromisoformat(record["segments_date"])
    return record


def day_chunks(since: date, until: date, days: int) -> Iterator[tuple[date, date]]:
    """Inclusive [start, end] windows of at most `days` days covering since..until."""
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=days - 1))
        yield start, end
        start = end + timedelta(days=1)


def _digits(customer_id: str) -> str:
    """`481-726-3544` -> `4817263544`: the API wants customer ids as digits only."""
    digits = re.sub(r"[\s-]", "", str(customer_id))
    if not digits.isdigit():
        raise ValueError(f"customer id must be digits (dashes allowed), got {customer_id!r}")
    return digits


class GoogleAdsClient(PlatformClient):
    """Reads daily stats from the Google Ads API for one or more client customers."""

    def __init__(
        self,
        developer_token: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        login_customer_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        token_url: str = DEFAULT_TOKEN_URL,
        api_version: str = DEFAULT_API_VERSION,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        chunk_days: int = 31,
    ) -> None:
        if chunk_days < 1:
            raise ValueError("chunk_days must be at least 1")
        secrets = (developer_token, client_secret, refresh_token)
        headers = {"developer-token": developer_token}
        if login_customer_id:
            headers["login-customer-id"] = _digits(login_customer_id)
        self._http = PlatformHttpClient(
            PLATFORM,
            base_url,
            headers=headers,
            secrets=secrets,
            classify_error=classify_api_error,
            retry=retry,
            transport=transport,
            sleep=sleep,
        )
        # The token endpoint is another host: its own session, no developer token sent there.
        self._oauth = PlatformHttpClient(
            PLATFORM,
            "",
            secrets=secrets,
            classify_error=classify_oauth_error,
            retry=retry,
            transport=transport,
            sleep=sleep,
        )
        self._oauth.stats = self._http.stats
        self._token_request = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        self._token_url = token_url
        self._version = api_version.strip("/")
        self._chunk_days = chunk_days
        self._access_token: str | None = None
        self._token_expires_at = 0.0

    def close(self) -> None:
        super().close()
        self._oauth.close()

    # ---- auth ---------------------------------------------------------------------------

    def _bearer(self) -> str:
        if self._access_token is None or time.monotonic() >= self._token_expires_at:
            self._refresh_access_token()
        assert self._access_token is not None
        return self._access_token

    def _refresh_access_token(self) -> None:
        # Sent as JSON: PlatformHttpClient has no form bodies; Google's endpoint takes both.
        body, _ = self._oauth.request_json("POST", self._token_url, form=self._token_request)
        if not isinstance(body, dict):
            raise SchemaDriftError(PLATFORM, "OAuth token response is not a JSON object")
        require_fields(PLATFORM, body, ("access_token",), "OAuth token response")
        token = str(body["access_token"])
        redactor.register(token)
        lifetime = float(body.get("expires_in") or 3600)
        self._access_token = token
        self._token_expires_at = time.monotonic() + lifetime - TOKEN_EXPIRY_MARGIN_SECONDS

    def _call(self, method: str, path: str, json_body: Any = None) -> Any:
        """One API call; a 401 refreshes the access token once and repeats the call."""
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._bearer()}"}
            try:
                body, _ = self._http.request_json(
                    method, path, json_body=json_body, headers=headers
                )
                return body
            except _AccessTokenRejected as exc:
                if attempt == 2:
                    raise AuthenticationError(
                        PLATFORM,
                        f"{exc.detail.rstrip('.')}. A freshly refreshed access token was "
                        "rejected too: check the developer token and the OAuth client's access.",
                    ) from None
                self._access_token = None
        raise AssertionError("unreachable")

    # ---- reads --------------------------------------------------------------------------

    def list_accessible_customers(self) -> list[str]:
        """Customer ids (digits) the credentials can reach directly."""
        body = self._call("GET", f"/{self._version}/customers:listAccessibleCustomers")
        if not isinstance(body, dict):
            raise SchemaDriftError(PLATFORM, "listAccessibleCustomers did not return an object")
        if body and "resourceNames" not in body:  # `{}` is the proto3 form of "none"
            require_fields(PLATFORM, body, ("resourceNames",), "listAccessibleCustomers response")
        return [str(name).removeprefix("customers/") for name in body.get("resourceNames", [])]

    def search_stream(self, customer_id: str, query: str) -> list[dict[str, Any]]:
        """Run one GAQL query; return the result rows of every batch, as sent."""
        cid = _digits(customer_id)
        path = f"/{self._version}/customers/{cid}/googleAds:searchStream"
        body = self._call("POST", path, json_body={"query": query})
        if not isinstance(body, list):
            raise SchemaDriftError(PLATFORM, f"POST {path} did not return a JSON array of batches")
        rows: list[dict[str, Any]] = []
        for batch in body:
            if not isinstance(batch, dict):
                raise SchemaDriftError(PLATFORM, f"POST {path} returned a non-object batch")
            self.stats.pages += 1
            rows.extend(batch.get("results") or [])
        return rows

    def fetch_campaign_stats(self, customer_id: str, since: date, until: date) -> pd.DataFrame:
        """Campaign x day stats for since..until (inclusive), columns CAMPAIGN_STATS_COLUMNS."""
        return self._fetch(
            customer_id, since, until, "campaign", CAMPAIGN_FIELDS, _CAMPAIGN_IDENTITY,
            CAMPAIGN_STATS_COLUMNS, CAMPAIGN_STATS_PRIMARY_KEY,
        )  # fmt: skip

    def fetch_geo_stats(self, customer_id: str, since: date, until: date) -> pd.DataFrame:
        """Campaign x region x day stats (geographic_view), columns GEO_STATS_COLUMNS."""
        return self._fetch(
            customer_id, since, until, "geographic_view", GEO_FIELDS, _GEO_IDENTITY,
            GEO_STATS_COLUMNS, GEO_STATS_PRIMARY_KEY,
        )  # fmt: skip

    def _fetch(
        self,
        customer_id: str,
        since: date,
        until: date,
        resource: str,
        fields: tuple[str, ...],
        identity: tuple[str, ...],
        columns: tuple[str, ...],
        primary_key: tuple[str, ...],
    ) -> pd.DataFrame:
        if since > until:
            raise ValueError(f"since ({since}) is after until ({until})")
        records: list[dict[str, Any]] = []
        for start, end in day_chunks(since, until, self._chunk_days):
            query = (
                f"SELECT {', '.join(fields)} FROM {resource} "
                f"WHERE segments.date BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
            )
            for result in self.search_stream(customer_id, query):
                flat = _flatten(result)
                check_row(flat, fields, identity)
                records.append(to_record(flat, fields))
        frame = pd.DataFrame(records, columns=list(columns))
        duplicated = frame.duplicated(list(primary_key))
        if duplicated.any():
            raise SchemaDriftError(
                PLATFORM,
                f"{int(duplicated.sum())} {resource} row(s) repeat the primary key "
                f"{primary_key}; the query grain no longer matches the key.",
            )
        return frame
