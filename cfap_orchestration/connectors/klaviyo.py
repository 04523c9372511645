"""Klaviyo connector: campaigns, flows, metrics, events and holdout profiles as raw frames.

Talks to the JSON:API at `https://a.klaviyo.com/api/` with a private key
(`Authorization: Klaviyo-API-Key …`) and a pinned `revision` header, and follows the
absolute `links.next` cursor until it is null. Campaigns must be listed once per
channel (the API requires a `messages.channel` filter). Events are pulled one metric
at a time, filtered on `datetime` and sorted by it.

Every frame keeps the wire values (ISO strings, JSON-encoded nested objects) and adds
a `partition_date`: the UTC date of the record's own time. Date ranges are inclusive
on both ends. 429 and 5xx are retried by the shared client (429 waits the server's
`Retry-After`); 400/404 raise `InvalidRequestError` with the API's `detail`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from cfap_orchestration.connectors.errors import (
    ConnectorError,
    InvalidRequestError,
    SchemaDriftError,
)
from cfap_orchestration.connectors.http import (
    PlatformClient,
    PlatformHttpClient,
    RetryPolicy,
    default_error,
    parse_retry_after,
    redactor,
    require_fields,
)

logger = logging.getLogger(__name__)

PLATFORM = "klaviyo"
DEFAULT_BASE_URL = "https://a.klaviyo.com"
DEFAULT_REVISION = "2024-10-15"
DEFAULT_LOOKBACK_DAYS = 30
JSONAPI = "application/vnd.api+json"
CAMPAIGN_CHANNELS: tuple[str, ...] = ("email", "sms")
DEFAULT_EVENT_METRICS: tuple[str, ...] = (
    "Received Email",
    "Clicked Email",
    "Received SMS",
    "Clicked SMS",
    "Placed Order",
)
EVENT_PAGE_SIZE = 200
PROFILE_PAGE_SIZE = 100

CAMPAIGN_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "campaign_id",
    "name",
    "channel",
    "status",
    "archived",
    "send_time",
    "scheduled_at",
    "created_at",
    "updated_at",
    "included_audiences",
    "excluded_audiences",
    "message_ids",
)
CAMPAIGN_PRIMARY_KEY: tuple[str, ...] = ("campaign_id",)
FLOW_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "flow_id",
    "name",
    "status",
    "archived",
    "trigger_type",
    "created",
    "updated",
)
FLOW_PRIMARY_KEY: tuple[str, ...] = ("flow_id", "updated")
METRIC_COLUMNS: tuple[str, ...] = ("metric_id", "name", "integration_name")
METRIC_PRIMARY_KEY: tuple[str, ...] = ("metric_id",)
EVENT_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "event_id",
    "metric_id",
    "metric_name",
    "profile_id",
    "datetime",
    "timestamp",
    "uuid",
    "value",
    "event_properties",
    "attributed_message_id",
    "flow_id",
)
EVENT_PRIMARY_KEY: tuple[str, ...] = ("event_id",)
SEGMENT_PROFILE_COLUMNS: tuple[str, ...] = (
    "segment_id",
    "profile_id",
    "email",
    "created",
    "updated",
)
SEGMENT_PROFILE_PRIMARY_KEY: tuple[str, ...] = ("segment_id", "profile_id")
HOLDOUT_PROFILE_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "campaign_id",
    "segment_id",
    "profile_id",
    "email",
)
HOLDOUT_PROFILE_PRIMARY_KEY: tuple[str, ...] = ("campaign_id", "segment_id", "profile_id")

_CAMPAIGN_FIELDS = (
    "name",
    "status",
    "archived",
    "audiences",
    "send_time",
    "scheduled_at",
    "created_at",
    "updated_at",
)
_FLOW_FIELDS = ("name", "status", "archived", "trigger_type", "created", "updated")
_EVENT_FIELDS = ("timestamp", "datetime", "uuid", "event_properties")


def _classify(response: httpx.Response, body: Any) -> ConnectorError | None:
    """JSON:API errors: put the first error's `detail` (and code) into the typed error."""
    if response.status_code < 400:
        return None
    return default_error(PLATFORM, response, _error_detail(response, body))


def _error_detail(response: httpx.Response, body: Any) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        detail = str(first.get("detail") or first.get("title") or "")
        code = first.get("code")
        text = f"{detail} (code: {code})" if code else detail
    else:
        text = response.text.strip()
    text = redactor.redact(text)
    return text if len(text) <= 300 else text[:300] + "…"


def _pace(response: httpx.Response) -> float:
    """Wait out the burst window when the server says none of it is left."""
    remaining = response.headers.get("RateLimit-Remaining")
    if remaining is None or remaining.strip() != "0":
        return 0.0
    return parse_retry_after(response.headers.get("RateLimit-Reset")) or 1.0


def _iso_midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _utc_date(value: str) -> date:
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def _check_range(since: date, until: date) -> None:
    if since > until:
        raise ValueError(f"since ({since}) is after until ({until})")


def _frame(
    rows: list[dict[str, Any]], columns: tuple[str, ...], key: tuple[str, ...]
) -> pd.DataFrame:
    """The raw table: fixed column order, one row per primary key (the last seen wins)."""
    frame = pd.DataFrame(rows, columns=list(columns))
    deduped = frame.drop_duplicates(subset=list(key), keep="last")
    if len(deduped) != len(frame):
        logger.info("klaviyo: dropped %d duplicate rows", len(frame) - len(deduped))
    return deduped.reset_index(drop=True)


def _related_id(item: Mapping[str, Any], relation: str) -> str | None:
    data = (item.get("relationships") or {}).get(relation, {}).get("data")
    return str(data["id"]) if isinstance(data, dict) and data.get("id") is not None else None


class KlaviyoClient(PlatformClient):
    """A Klaviyo private-key client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        revision: str = DEFAULT_REVISION,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = httpx.URL(base_url)
        self._http = PlatformHttpClient(
            PLATFORM,
            base_url,
            headers={
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": revision,
                "accept": JSONAPI,
            },
            secrets=(api_key,),
            classify_error=_classify,
            pace=_pace,
            retry=retry,
            transport=transport,
            sleep=sleep,
        )

    # ---- paging -------------------------------------------------------------------

    def _pages(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[list[Any]]:
        """Each page's `data`, following `links.next` until it is null."""
        url: str | None = path
        what = f"GET {path}"
        while url is not None:
            body, _ = self._http.request_json("GET", url, params=params)
            self.stats.pages += 1
            if not isinstance(body, dict):
                raise SchemaDriftError(PLATFORM, f"{what} returned a non-object body")
            require_fields(PLATFORM, body, ("data", "links"), f"{what} response")
            logger.debug(
                "klaviyo: %s page %d: %d records", what, self.stats.pages, len(body["data"])
            )
            yield list(body["data"])
            url, params = self._next_url(body["links"].get("next"), what), None

    def _next_url(self, link: str | None, what: str) -> str | None:
        if not link:
            return None
        target = httpx.URL(link)
        if (target.scheme, target.netloc) != (self._base.scheme, self._base.netloc):
            # The key rides in a header on every request; never send it to another host.
            raise InvalidRequestError(
                PLATFORM, f"{what}: refusing to follow a paging link to another host"
            )
        return link

    def _items(
        self, path: str, params: Mapping[str, str] | None, fields: tuple[str, ...], what: str
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(item, attributes) for every item on every page, with required fields checked."""
        for page in self._pages(path, params):
            for item in page:
                require_fields(PLATFORM, item, ("id", "attributes"), f"GET {path}: a {what}")
                attributes = item["attributes"]
                label = f"GET {path}: {what} {item['id']} attributes"
                require_fields(PLATFORM, attributes, fields, label)
                yield item, attributes

    # ---- campaigns and flows ------------------------------------------------------------

    def fetch_campaigns(self, since: date, until: date) -> pd.DataFrame:
        """Email and SMS campaigns scheduled on UTC days `since`..`until` (inclusive)."""
        _check_range(since, until)
        rows: list[dict[str, Any]] = []
        for channel in CAMPAIGN_CHANNELS:
            params = {
                "filter": (
                    f"and(equals(messages.channel,'{channel}'),"
                    f"greater-or-equal(scheduled_at,{_iso_midnight(since)}),"
                    f"less-than(scheduled_at,{_iso_midnight(until + timedelta(days=1))}))"
                )
            }
            items = self._items("/api/campaigns", params, _CAMPAIGN_FIELDS, "campaign")
            rows.extend(self._campaign_row(item, attrs, channel) for item, attrs in items)
        return _frame(rows, CAMPAIGN_COLUMNS, CAMPAIGN_PRIMARY_KEY)

    @staticmethod
    def _campaign_row(item: dict[str, Any], attrs: dict[str, Any], channel: str) -> dict[str, Any]:
        audiences = attrs["audiences"] or {}
        messages = (item.get("relationships") or {}).get("campaign-messages", {}).get("data") or []
        when = attrs["scheduled_at"] or attrs["send_time"]
        return {
            "partition_date": _utc_date(when) if when else None,
            "campaign_id": item["id"],
            "name": attrs["name"],
            "channel": channel,
            "status": attrs["status"],
            "archived": attrs["archived"],
            "send_time": attrs["send_time"],
            "scheduled_at": attrs["scheduled_at"],
            "created_at": attrs["created_at"],
            "updated_at": attrs["updated_at"],
            "included_audiences": json.dumps(audiences.get("included") or []),
            "excluded_audiences": json.dumps(audiences.get("excluded") or []),
            "message_ids": json.dumps([m["id"] for m in messages]),
        }

    def fetch_flows(self, updated_since: date, updated_until: date) -> pd.DataFrame:
        """Flows last updated on UTC days `updated_since`..`updated_until` (inclusive)."""
        _check_range(updated_since, updated_until)
        params = {
            "filter": (
                f"and(greater-or-equal(updated,{_iso_midnight(updated_since)}),"
                f"less-than(updated,{_iso_midnight(updated_until + timedelta(days=1))}))"
            )
        }
        rows = [
            {
                "partition_date": _utc_date(attrs["updated"]),
                "flow_id": item["id"],
                **{name: attrs[name] for name in _FLOW_FIELDS},
            }
            for item, attrs in self._items("/api/flows", params, _FLOW_FIELDS, "flow")
        ]
        return _frame(rows, FLOW_COLUMNS, FLOW_PRIMARY_KEY)

    # ---- metrics and events ----------------------------------------------------------

    def fetch_metrics(self) -> pd.DataFrame:
        rows = [
            {
                "metric_id": item["id"],
                "name": attrs["name"],
                "integration_name": (attrs.get("integration") or {}).get("name"),
            }
            for item, attrs in self._items("/api/metrics", None, ("name",), "metric")
        ]
        return _frame(rows, METRIC_COLUMNS, METRIC_PRIMARY_KEY)

    def metric_ids(self, names: tuple[str, ...]) -> dict[str, str]:
        """Metric name -> id; an unknown name raises InvalidRequestError listing the known ones."""
        metrics = self.fetch_metrics()
        known = dict(zip(metrics["name"], metrics["metric_id"], strict=True))
        missing = [n for n in names if n not in known]
        if missing:
            raise InvalidRequestError(
                PLATFORM,
                f"unknown metric name(s) {missing}; the account has {sorted(known)}",
            )
        return {name: known[name] for name in names}

    def fetch_events(
        self,
        since: date,
        until: date,
        metric_names: tuple[str, ...] = DEFAULT_EVENT_METRICS,
    ) -> pd.DataFrame:
        """Events of `metric_names` on UTC days `since`..`until` (inclusive), a query per metric."""
        _check_range(since, until)
        rows: list[dict[str, Any]] = []
        for name, metric_id in self.metric_ids(metric_names).items():
            params = {
                "filter": (
                    f'and(equals(metric_id,"{metric_id}"),'
                    f"greater-or-equal(datetime,{_iso_midnight(since)}),"
                    f"less-than(datetime,{_iso_midnight(until + timedelta(days=1))}))"
                ),
                "sort": "datetime",
                "page[size]": str(EVENT_PAGE_SIZE),
            }
            for item, attrs in self._items("/api/events", params, _EVENT_FIELDS, "event"):
                rows.append(self._event_row(item, attrs, metric_id, name))
        return _frame(rows, EVENT_COLUMNS, EVENT_PRIMARY_KEY)

    @staticmethod
    def _event_row(
        item: dict[str, Any], attrs: dict[str, Any], metric_id: str, metric_name: str
    ) -> dict[str, Any]:
        props = attrs["event_properties"] or {}
        return {
            "partition_date": _utc_date(attrs["datetime"]),
            "event_id": item["id"],
            "metric_id": _related_id(item, "metric") or metric_id,
            "metric_name": metric_name,
            "profile_id": _related_id(item, "profile"),
            "datetime": attrs["datetime"],
            "timestamp": attrs["timestamp"],
            "uuid": attrs["uuid"],
            "value": props.get("$value"),
            "event_properties": json.dumps(props, sort_keys=True),
            "attributed_message_id": props.get("$attributed_message"),
            "flow_id": props.get("$flow") or props.get("$attributed_flow"),
        }

    # ---- segments and holdouts ---------------------------------------------------------

    def fetch_segment_profiles(self, segment_id: str) -> pd.DataFrame:
        """Every profile in one segment (100 a page)."""
        path = f"/api/segments/{segment_id}/profiles"
        params = {"page[size]": str(PROFILE_PAGE_SIZE)}
        rows = [
            {
                "segment_id": segment_id,
                "profile_id": item["id"],
                "email": attrs["email"],
                "created": attrs.get("created"),
                "updated": attrs.get("updated"),
            }
            for item, attrs in self._items(path, params, ("email",), "profile")
        ]
        return _frame(rows, SEGMENT_PROFILE_COLUMNS, SEGMENT_PROFILE_PRIMARY_KEY)

    def fetch_holdout_profiles(self, campaigns: pd.DataFrame) -> pd.DataFrame:
        """Members of each campaign's excluded (holdout) segments: a row per campaign x profile."""
        members: dict[str, pd.DataFrame] = {}
        rows: list[dict[str, Any]] = []
        for campaign in campaigns.itertuples(index=False):
            for segment_id in json.loads(str(campaign.excluded_audiences)):
                if segment_id not in members:
                    members[segment_id] = self.fetch_segment_profiles(segment_id)
                rows.extend(
                    {
                        "partition_date": campaign.partition_date,
                        "campaign_id": campaign.campaign_id,
                        "segment_id": segment_id,
                        "profile_id": profile.profile_id,
                        "email": profile.email,
                    }
                    for profile in members[segment_id].itertuples(index=False)
                )
        return _frame(rows, HOLDOUT_PROFILE_COLUMNS, HOLDOUT_PROFILE_PRIMARY_KEY)
