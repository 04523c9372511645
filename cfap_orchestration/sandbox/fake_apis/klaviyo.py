"""Fake Klaviyo API (JSON:API) serving the sandbox world's sends, flows, events and holdouts.

It speaks what the real API speaks: `Authorization: Klaviyo-API-Key …`, a required
`revision` header, `application/vnd.api+json` bodies with `data`/`links`, cursor
paging through an absolute `links.next`, the filter language
(`and(equals(field,'x'),greater-or-equal(datetime,2024-05-01T00:00:00Z))`), JSON:API
error objects, and `RateLimit-*` headers (429s carry `Retry-After` instead).

Events are derived from the world: a "Received Email/SMS" for each treated recipient
of each send, a few clicks, and a "Placed Order" (with last-touch attribution) for
every order by a subscriber. Paging over events and campaigns is keyset-based on
(timestamp, id) and only touches the days a page needs, so a three-year pull stays
cheap; events are cached per UTC day and metric.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any, Literal, TypeVar

import httpx
import numpy as np
import pandas as pd

from cfap_orchestration.sandbox.fake_apis.base import FakeApi, Fault, base_url_of, json_response
from cfap_orchestration.sandbox.world import MessageSend, SandboxWorld, daterange

JSONAPI = "application/vnd.api+json"
EVENT_PAGE_SIZE = 200
PROFILE_PAGE_SIZE, PROFILE_PAGE_MAX = 20, 100
FLOW_PAGE_SIZE = 50
METRIC_PAGE_SIZE = 200
EMAIL_CLICK_RATE, SMS_CLICK_RATE = 0.03, 0.05
ATTRIBUTION_WINDOW_SECONDS = {"email": 5 * 86_400, "sms": 86_400}
SHOP_URL = "https://northwind.example.com"
ALL_SCOPES = frozenset(
    {"campaigns:read", "flows:read", "metrics:read", "events:read", "segments:read"}
)
# (name, integration key, integration name, integration category)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("Received Email", "klaviyo", "Klaviyo", "Internal"),
    ("Clicked Email", "klaviyo", "Klaviyo", "Internal"),
    ("Received SMS", "klaviyo", "Klaviyo", "Internal"),
    ("Clicked SMS", "klaviyo", "Klaviyo", "Internal"),
    ("Placed Order", "shopify", "Shopify", "eCommerce"),
)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

T = TypeVar("T")


# ---- errors -----------------------------------------------------------------------


class ApiError(Exception):
    """Raised inside routing; becomes a JSON:API error response."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        source: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.source = source or {"pointer": "/data/"}

    def body(self) -> dict[str, Any]:
        error = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": self.source,
        }
        return {"errors": [error]}


def invalid_filter() -> ApiError:
    return ApiError(
        400, "invalid", "Invalid input.", "Invalid filter provided.", {"parameter": "filter"}
    )


def invalid_param(name: str, detail: str) -> ApiError:
    return ApiError(400, "invalid", "Invalid input.", detail, {"parameter": name})


def not_found(detail: str = "The requested resource could not be found.") -> ApiError:
    return ApiError(404, "not_found", "Not found.", detail)


# ---- the filter language ------------------------------------------------------------

FieldKind = Literal["string", "datetime", "boolean"]
COMPARISONS = frozenset({"greater-than", "greater-or-equal", "less-than", "less-or-equal"})
DATETIME_OPS = COMPARISONS | {"equals"}
EQUALS = frozenset({"equals"})


@dataclass(frozen=True)
class FieldSpec:
    kind: FieldKind
    ops: frozenset[str]


@dataclass(frozen=True)
class Condition:
    op: str
    field: str
    value: str | float | bool

    def holds(self, actual: Any) -> bool:
        v = self.value
        if self.op == "equals":
            return bool(actual == v)
        if actual is None:
            return False
        return {
            "greater-than": actual > v,
            "greater-or-equal": actual >= v,
            "less-than": actual < v,
            "less-or-equal": actual <= v,
        }[self.op]


_CALL = re.compile(r"^\s*([a-z][a-z-]*)\s*\((.*)\)\s*$", re.DOTALL)


def split_args(text: str) -> list[str]:
    """Split on commas that sit outside parentheses and quotes."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise invalid_filter()
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise invalid_filter()
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _typed_value(raw: str, kind: FieldKind) -> str | float | bool:
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
    text = raw[1:-1] if quoted else raw
    if kind == "string":
        if not quoted:
            raise invalid_filter()
        return text
    if kind == "boolean":
        if quoted or text not in ("true", "false"):
            raise invalid_filter()
        return text == "true"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_filter() from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_filter(text: str | None, specs: Mapping[str, FieldSpec]) -> list[Condition]:
    """Parse a Klaviyo filter into a flat AND of conditions; reject what `specs` does not allow."""
    if text is None:
        return []
    conditions: list[Condition] = []
    for part in split_args(text):
        match = _CALL.match(part)
        if not match:
            raise invalid_filter()
        op, inner = match.groups()
        if op == "and":
            conditions.extend(parse_filter(inner, specs))
            continue
        args = split_args(inner)
        spec = specs.get(args[0]) if len(args) == 2 else None
        if spec is None or op not in spec.ops:
            raise invalid_filter()
        conditions.append(Condition(op, args[0], _typed_value(args[1], spec.kind)))
    return conditions


def matches(conditions: Iterable[Condition], values: Mapping[str, Any]) -> bool:
    return all(c.holds(values.get(c.field)) for c in conditions)


def time_bounds(conditions: Iterable[Condition], field: str) -> tuple[float | None, float | None]:
    """Loosest (low, high) epoch bounds the conditions put on `field`, for choosing days."""
    low: float | None = None
    high: float | None = None
    for c in conditions:
        if c.field != field or not isinstance(c.value, float):
            continue
        if c.op in ("greater-than", "greater-or-equal", "equals"):
            low = c.value if low is None else max(low, c.value)
        if c.op in ("less-than", "less-or-equal", "equals"):
            high = c.value if high is None else min(high, c.value)
    return low, high


CAMPAIGN_FILTERS: dict[str, FieldSpec] = {
    "messages.channel": FieldSpec("string", EQUALS),
    "status": FieldSpec("string", EQUALS),
    "archived": FieldSpec("boolean", EQUALS),
    "scheduled_at": FieldSpec("datetime", DATETIME_OPS),
    "created_at": FieldSpec("datetime", DATETIME_OPS),
    "updated_at": FieldSpec("datetime", DATETIME_OPS),
}
FLOW_FILTERS: dict[str, FieldSpec] = {
    "status": FieldSpec("string", EQUALS),
    "archived": FieldSpec("boolean", EQUALS),
    "trigger_type": FieldSpec("string", EQUALS),
    "created": FieldSpec("datetime", DATETIME_OPS),
    "updated": FieldSpec("datetime", DATETIME_OPS),
}
METRIC_FILTERS: dict[str, FieldSpec] = {
    "integration.name": FieldSpec("string", EQUALS),
    "integration.category": FieldSpec("string", EQUALS),
}
EVENT_FILTERS: dict[str, FieldSpec] = {
    "metric_id": FieldSpec("string", EQUALS),
    "profile_id": FieldSpec("string", EQUALS),
    "datetime": FieldSpec("datetime", DATETIME_OPS),
    "timestamp": FieldSpec("datetime", DATETIME_OPS),
}
EVENT_SORTS = {"datetime": False, "-datetime": True, "timestamp": False, "-timestamp": True}
CAMPAIGN_SORTS = {"scheduled_at": False, "-scheduled_at": True}


# ---- cursors and paging ---------------------------------------------------------------


def encode_cursor(state: Mapping[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, *keys: str) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        state = None
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise invalid_param("page[cursor]", "Invalid page cursor.")
    return state


def page_size(params: httpx.QueryParams, default: int, maximum: int) -> int:
    raw = params.get("page[size]")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid_param("page[size]", f"Page size must be an integer between 1 and {maximum}.")
    return int(raw)


def keyset_page(
    days: Iterable[date],
    records: Callable[[date], Sequence[T]],
    key: Callable[[T], tuple[int, str]],
    accept: Callable[[T], bool],
    after: tuple[int, str] | None,
    descending: bool,
    size: int,
) -> tuple[list[T], bool]:
    """Up to `size` accepted records past the cursor key, scanning day by day; and whether more.

    Each day's records are sorted by `key`, so the cursor is found by bisection: a page
    costs its own size, not a scan of the day up to the cursor.
    """
    out: list[T] = []
    for day in days:
        day_records = _past_cursor(records(day), key, after, descending)
        for record in day_records:
            if not accept(record):
                continue
            if len(out) == size:
                return out, True
            out.append(record)
    return out, False


def _past_cursor(
    records: Sequence[T],
    key: Callable[[T], tuple[int, str]],
    after: tuple[int, str] | None,
    descending: bool,
) -> Iterable[T]:
    if descending:
        stop = len(records) if after is None else bisect.bisect_left(records, after, key=key)
        return reversed(records[:stop])
    start = 0 if after is None else bisect.bisect_right(records, after, key=key)
    return itertools.islice(records, start, None)


def offset_page(
    items: Sequence[T], params: httpx.QueryParams, size: int
) -> tuple[list[T], int | None]:
    state = decode_cursor(params.get("page[cursor]"), "o")
    start = int(state["o"]) if state else 0
    end = start + size
    return list(items[start:end]), (end if end < len(items) else None)


def next_link(request: httpx.Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.url.params.set("page[cursor]", cursor)
    return f"{base_url_of(request)}{request.url.path}?{query}"


def self_link(request: httpx.Request) -> str:
    query = request.url.query.decode()
    return f"{base_url_of(request)}{request.url.path}" + (f"?{query}" if query else "")


# ---- ids and formatting ---------------------------------------------------------------


def b62(data: bytes, length: int) -> str:
    n = int.from_bytes(data, "big")
    chars = []
    for _ in range(length):
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return "".join(chars)


def event_ids(*parts: object) -> tuple[str, str]:
    """A stable event id and uuid for one event."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=24).digest()
    return b62(digest[:8], 11), str(uuid.UUID(bytes=digest[8:24], version=4))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def utc_day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


# ---- the world as Klaviyo sees it ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    ts: int
    event_id: str
    uuid: str
    metric: str
    profile_id: str
    properties: dict[str, Any]

    @property
    def key(self) -> tuple[int, str]:
        return (self.ts, self.event_id)


@dataclass(frozen=True, slots=True)
class Receipts:
    """Who received one send, and when (epoch seconds)."""

    send: MessageSend
    customers: np.ndarray
    ts: np.ndarray


@dataclass(frozen=True, slots=True)
class Campaign:
    send: MessageSend
    ts: int

    @property
    def key(self) -> tuple[int, str]:
        return (self.ts, self.send.campaign_id)

    @property
    def created_ts(self) -> int:
        return self.ts - 3 * 86_400

    def updated_ts(self, as_of: float) -> int:
        return int(min(self.ts + 600, as_of))


def _message_properties(send: MessageSend) -> dict[str, Any]:
    props: dict[str, Any] = {"$message": send.message_id, "Campaign Name": send.name}
    if send.channel == "email":
        props["Subject"] = f"{send.name}: new arrivals inside"
    if send.kind == "flow":
        props["$flow"] = send.campaign_id
    return props


class KlaviyoFakeApi(FakeApi):
    """The sandbox brand's Klaviyo account, as of `as_of`."""

    platform = "klaviyo"
    renamed_field = ("datetime", "occurred_at")

    def __init__(
        self,
        world: SandboxWorld,
        *,
        token: str = "klaviyo-sandbox-token",
        as_of: datetime | None = None,
        account_created: date = date(2022, 1, 1),
        campaign_page_size: int = 10,
        burst_limit: int = 350,
        scopes: frozenset[str] = ALL_SCOPES,
    ) -> None:
        super().__init__(world, token=token, as_of=as_of)
        self.account_created = account_created
        self.campaign_page_size = campaign_page_size
        self.burst_limit = burst_limit
        self.scopes = scopes
        self._as_of_ts = self.as_of.timestamp()
        self._window = (0, 0)  # (second, requests in it) for RateLimit-* headers
        self._segments: dict[str, Campaign] = {}
        self._segments_complete = False
        self._cache_lock = threading.RLock()

    # ---- FakeApi hooks ------------------------------------------------------------

    def is_authorized(self, request: httpx.Request) -> bool:
        return request.headers.get("authorization") == f"Klaviyo-API-Key {self.token}"

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        error = ApiError(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid private key.",
        )
        return self._respond(error.status, error.body())

    def error_response(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "rate_limit":
            seconds = max(1, math.ceil(fault.retry_after))
            error = ApiError(
                429,
                "throttled",
                "Request was throttled.",
                f"Request was throttled. Expected available in {seconds} second"
                + ("s." if seconds != 1 else "."),
            )
            body = error.body()
            del body["errors"][0]["source"]
            return json_response(
                429, body, {"Retry-After": f"{fault.retry_after:g}"}, content_type=JSONAPI
            )
        if fault.kind == "server_error":
            status = fault.status or 500
            title = "Service unavailable." if status == 503 else "A server error occurred."
            return self._respond(status, ApiError(status, "error", title, title).body())
        if fault.kind == "expired_token":
            return self.auth_error(request)
        if fault.kind == "bad_request":
            return self._respond(400, invalid_filter().body())
        raise ValueError(f"klaviyo fake has no fault {fault.kind!r}")

    def route(self, request: httpx.Request) -> httpx.Response:
        try:
            self._check_headers(request)
            status, body = self._dispatch(request)
        except ApiError as exc:
            status, body = exc.status, exc.body()
        return self._respond(status, body)

    # ---- plumbing -----------------------------------------------------------------

    def _respond(self, status: int, body: Any) -> httpx.Response:
        return json_response(status, body, self._rate_headers(), content_type=JSONAPI)

    def _rate_headers(self) -> dict[str, str]:
        now = time.time()
        second = int(now)
        with self._lock:
            start, count = self._window
            count = count + 1 if start == second else 1
            self._window = (second, count)
        return {
            "RateLimit-Limit": str(self.burst_limit),
            "RateLimit-Remaining": str(max(0, self.burst_limit - count)),
            "RateLimit-Reset": str(max(1, math.ceil(second + 1 - now))),
        }

    @staticmethod
    def _check_headers(request: httpx.Request) -> None:
        revision = request.headers.get("revision", "")
        match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(\.pre)?", revision)
        try:
            ok = match is not None and date.fromisoformat(match.group(1)) is not None
        except ValueError:
            ok = False
        if not ok:
            raise ApiError(
                400, "invalid", "Invalid input.", "Missing or invalid revision header",
                {"header": "revision"},
            )  # fmt: skip
        if JSONAPI not in request.headers.get("accept", ""):
            raise ApiError(
                406,
                "not_acceptable",
                "Not acceptable.",
                f"Could not satisfy the request Accept header; use '{JSONAPI}'.",
            )

    def _require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(
                403,
                "permission_denied",
                "You do not have permission to perform this action.",
                f"This API key is missing required scopes: {scope}",
            )

    @staticmethod
    def _allow_params(params: httpx.QueryParams, allowed: set[str]) -> None:
        for name in params:
            if name not in allowed:
                raise invalid_param(name, f"'{name}' is not a valid query parameter here.")

    def _dispatch(self, request: httpx.Request) -> tuple[int, Any]:
        if request.method != "GET":
            raise ApiError(405, "method_not_allowed", "Method not allowed.", request.method)
        parts = [p for p in request.url.path.split("/") if p]
        if len(parts) < 2 or parts[0] != "api":
            raise not_found()
        params = request.url.params
        match parts[1:]:
            case ["campaigns"]:
                return 200, self._campaigns(request, params)
            case ["flows"]:
                return 200, self._flows(request, params)
            case ["metrics"]:
                return 200, self._metrics(request, params)
            case ["events"]:
                return 200, self._events(request, params)
            case ["segments", segment_id, "profiles"]:
                return 200, self._segment_profiles(request, params, segment_id)
        raise not_found()

    # ---- campaigns ------------------------------------------------------------------

    def _day_range(self, low: float | None, high: float | None) -> list[date]:
        first = max(self.account_created, utc_day(low) if low is not None else date.min)
        last = min(utc_day(self._as_of_ts), utc_day(high) if high is not None else date.max)
        return list(daterange(first, last)) if first <= last else []

    @lru_cache(maxsize=8192)  # noqa: B019 - lives as long as the fake
    def _campaigns_on(self, day: date) -> tuple[Campaign, ...]:
        """Campaign sends whose send time falls on UTC `day`, by (time, id)."""
        found = []
        for shop_day in daterange(day - timedelta(days=1), day + timedelta(days=1)):
            for send in self.world.message_sends(shop_day):
                ts = int(send.sent_at.timestamp())
                if send.kind == "campaign" and utc_day(ts) == day:
                    found.append(Campaign(send, ts))
        with self._cache_lock:
            for campaign in found:
                if campaign.send.holdout_segment_id:
                    self._segments[campaign.send.holdout_segment_id] = campaign
        return tuple(sorted(found, key=lambda c: c.key))

    def _campaign_values(self, c: Campaign) -> dict[str, Any]:
        return {
            "messages.channel": c.send.channel,
            "status": "Sent",
            "archived": False,
            "scheduled_at": float(c.ts),
            "created_at": float(c.created_ts),
            "updated_at": float(c.updated_ts(self._as_of_ts)),
        }

    def _campaigns(self, request: httpx.Request, params: httpx.QueryParams) -> dict[str, Any]:
        self._require_scope("campaigns:read")
        self._allow_params(params, {"filter", "sort", "page[cursor]"})
        conditions = parse_filter(params.get("filter"), CAMPAIGN_FILTERS)
        if not any(c.field == "messages.channel" for c in conditions):
            raise invalid_param(
                "filter",
                "A channel filter is required to list campaigns. Please try again with either "
                "equals(messages.channel,'email') or equals(messages.channel,'sms').",
            )
        descending = self._sort(params, CAMPAIGN_SORTS, "scheduled_at")
        state = decode_cursor(params.get("page[cursor]"), "t", "i")
        after = (int(state["t"]), str(state["i"])) if state else None
        days = self._scan_days(conditions, "scheduled_at", after, descending)
        page, more = keyset_page(
            days,
            self._campaigns_on,
            lambda c: c.key,
            lambda c: c.ts <= self._as_of_ts and matches(conditions, self._campaign_values(c)),
            after,
            descending,
            self.campaign_page_size,
        )
        cursor = encode_cursor({"t": page[-1].ts, "i": page[-1].send.campaign_id}) if more else None
        return self._document(request, [self._campaign_json(request, c) for c in page], cursor)

    def _campaign_json(self, request: httpx.Request, c: Campaign) -> dict[str, Any]:
        base, send = base_url_of(request), c.send
        sent = iso(c.ts)
        excluded = [send.holdout_segment_id] if send.holdout_segment_id else []
        link = f"{base}/api/campaigns/{send.campaign_id}"
        return {
            "type": "campaign",
            "id": send.campaign_id,
            "attributes": {
                "name": send.name,
                "status": "Sent",
                "archived": False,
                "audiences": {"included": [send.audience_list_id], "excluded": excluded},
                "send_options": {"use_smart_sending": True},
                "send_strategy": {
                    "method": "static",
                    "options_static": {
                        "datetime": sent,
                        "is_local": False,
                        "send_past_recipients_immediately": None,
                    },
                    "options_throttled": None,
                    "options_sto": None,
                },
                "created_at": iso(c.created_ts),
                "scheduled_at": sent,
                "updated_at": iso(c.updated_ts(self._as_of_ts)),
                "send_time": sent,
            },
            "relationships": {
                "campaign-messages": {
                    "data": [{"type": "campaign-message", "id": send.message_id}],
                    "links": {
                        "self": f"{link}/relationships/campaign-messages/",
                        "related": f"{link}/campaign-messages/",
                    },
                },
                "tags": {"data": [], "links": {"self": f"{link}/relationships/tags/"}},
            },
            "links": {"self": f"{link}/"},
        }

    # ---- flows and metrics ------------------------------------------------------------

    def _flows(self, request: httpx.Request, params: httpx.QueryParams) -> dict[str, Any]:
        self._require_scope("flows:read")
        self._allow_params(params, {"filter", "page[cursor]", "page[size]"})
        conditions = parse_filter(params.get("filter"), FLOW_FILTERS)
        rows = []
        for _, flow in self.world.flows.iterrows():
            if flow["created"].timestamp() > self._as_of_ts:
                continue
            updated = self.world.flow_updated(flow, self.as_of).timestamp()
            values = {
                "status": "live",
                "archived": False,
                "trigger_type": flow["trigger_type"],
                "created": flow["created"].timestamp(),
                "updated": updated,
            }
            if matches(conditions, values):
                rows.append((flow, values))
        rows.sort(key=lambda r: (r[1]["updated"], r[0]["flow_id"]))
        page, end = offset_page(rows, params, page_size(params, FLOW_PAGE_SIZE, FLOW_PAGE_SIZE))
        data = [self._flow_json(request, flow, values) for flow, values in page]
        return self._document(request, data, encode_cursor({"o": end}) if end else None)

    def _flow_json(
        self, request: httpx.Request, flow: pd.Series, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        link = f"{base_url_of(request)}/api/flows/{flow['flow_id']}"
        return {
            "type": "flow",
            "id": flow["flow_id"],
            "attributes": {
                "name": flow["name"],
                "status": values["status"],
                "archived": values["archived"],
                "created": iso(values["created"]),
                "updated": iso(values["updated"]),
                "trigger_type": values["trigger_type"],
            },
            "relationships": {
                "flow-actions": {"links": {"related": f"{link}/flow-actions/"}},
                "tags": {"links": {"related": f"{link}/tags/"}},
            },
            "links": {"self": f"{link}/"},
        }

    @cached_property
    def metric_ids(self) -> dict[str, str]:
        """Metric name -> its stable six-character id."""
        seed = self.world.config.seed
        return {
            name: b62(hashlib.sha1(f"{seed}|metric|{name}".encode()).digest()[:8], 6)
            for name, *_ in METRICS
        }

    def _metrics(self, request: httpx.Request, params: httpx.QueryParams) -> dict[str, Any]:
        self._require_scope("metrics:read")
        self._allow_params(params, {"filter", "page[cursor]"})
        conditions = parse_filter(params.get("filter"), METRIC_FILTERS)
        created = iso(datetime(2022, 1, 1, 9, tzinfo=UTC).timestamp())
        data = []
        for name, key, integration, category in METRICS:
            if not matches(
                conditions, {"integration.name": integration, "integration.category": category}
            ):
                continue
            metric_id = self.metric_ids[name]
            data.append(
                {
                    "type": "metric",
                    "id": metric_id,
                    "attributes": {
                        "name": name,
                        "created": created,
                        "updated": created,
                        "integration": {
                            "object": "integration",
                            "id": b62(hashlib.sha1(key.encode()).digest()[:8], 6),
                            "key": key,
                            "name": integration,
                            "category": category,
                        },
                    },
                    "links": {"self": f"{base_url_of(request)}/api/metrics/{metric_id}/"},
                }
            )
        page, end = offset_page(data, params, METRIC_PAGE_SIZE)
        return self._document(request, page, encode_cursor({"o": end}) if end else None)

    # ---- events ---------------------------------------------------------------------

    def _events(self, request: httpx.Request, params: httpx.QueryParams) -> dict[str, Any]:
        self._require_scope("events:read")
        self._allow_params(params, {"filter", "sort", "page[cursor]", "page[size]"})
        conditions = parse_filter(params.get("filter"), EVENT_FILTERS)
        names = {v: k for k, v in self.metric_ids.items()}
        wanted = {str(c.value) for c in conditions if c.field == "metric_id"}
        metrics = tuple(names[m] for m in wanted if m in names) if wanted else tuple(names.values())
        descending = self._sort(params, EVENT_SORTS, "datetime")
        size = page_size(params, EVENT_PAGE_SIZE, EVENT_PAGE_SIZE)
        state = decode_cursor(params.get("page[cursor]"), "t", "i")
        after = (int(state["t"]), str(state["i"])) if state else None
        days = self._scan_days(conditions, "datetime", after, descending)
        if len(wanted) > 1 or (wanted and not metrics):  # no event has two metrics
            days = []

        def accept(ev: Event) -> bool:
            values = {
                "metric_id": self.metric_ids[ev.metric],
                "profile_id": ev.profile_id,
                "datetime": float(ev.ts),
                "timestamp": float(ev.ts),
            }
            return ev.ts <= self._as_of_ts and matches(conditions, values)

        page, more = keyset_page(
            days, lambda d: self._events_on(d, metrics), lambda e: e.key, accept, after,
            descending, size,
        )  # fmt: skip
        cursor = encode_cursor({"t": page[-1].ts, "i": page[-1].event_id}) if more else None
        return self._document(request, [self._event_json(request, e) for e in page], cursor)

    def _event_json(self, request: httpx.Request, ev: Event) -> dict[str, Any]:
        base = base_url_of(request)
        metric_id = self.metric_ids[ev.metric]
        return {
            "type": "event",
            "id": ev.event_id,
            "attributes": {
                "timestamp": ev.ts,
                "event_properties": ev.properties,
                "datetime": iso(ev.ts),
                "uuid": ev.uuid,
            },
            "relationships": {
                "metric": {
                    "data": {"type": "metric", "id": metric_id},
                    "links": {"related": f"{base}/api/events/{ev.event_id}/metric/"},
                },
                "profile": {
                    "data": {"type": "profile", "id": ev.profile_id},
                    "links": {"related": f"{base}/api/events/{ev.event_id}/profile/"},
                },
            },
            "links": {"self": f"{base}/api/events/{ev.event_id}/"},
        }

    def _events_on(self, day: date, metrics: tuple[str, ...]) -> Sequence[Event]:
        if len(metrics) == 1:
            return self._metric_events_on(day, metrics[0])
        merged = [e for m in metrics for e in self._metric_events_on(day, m)]
        return sorted(merged, key=lambda e: e.key)

    @lru_cache(maxsize=2048)  # noqa: B019
    def _metric_events_on(self, day: date, metric: str) -> tuple[Event, ...]:
        """One metric's events on UTC `day`, by (timestamp, id); generated per shop day."""
        found = [
            ev
            for shop_day in daterange(day - timedelta(days=2), day + timedelta(days=1))
            for ev in self._shop_day_events(shop_day, metric)
            if utc_day(ev.ts) == day
        ]
        return tuple(sorted(found, key=lambda e: e.key))

    @lru_cache(maxsize=64)  # noqa: B019
    def _shop_day_events(self, day: date, metric: str) -> tuple[Event, ...]:
        if metric.startswith("Received"):
            channel = "email" if metric.endswith("Email") else "sms"
            return tuple(self._received(day, channel))
        if metric.startswith("Clicked"):
            channel = "email" if metric.endswith("Email") else "sms"
            return tuple(self._clicked(day, channel))
        return tuple(self._placed_orders(day))

    @cached_property
    def _profile_ids(self) -> list[str]:
        return self.world.customers["profile_id"].tolist()

    @lru_cache(maxsize=64)  # noqa: B019
    def _receipts(self, day: date) -> tuple[Receipts, ...]:
        """Every send of shop `day` with its recipients' receive times; flows spread over 24h."""
        out = []
        for send in self.world.message_sends(day):
            start = int(send.sent_at.timestamp())
            if send.kind == "flow":
                rng = self.world.rng("klaviyo_flow_receipt", send.campaign_id, day)
                ts = start + rng.integers(0, 86_400, size=len(send.treated))
            else:
                ts = np.full(len(send.treated), start, dtype=np.int64)
            out.append(Receipts(send, send.treated, ts))
        return tuple(out)

    def _received(self, day: date, channel: str) -> Iterator[Event]:
        metric = "Received Email" if channel == "email" else "Received SMS"
        for r in self._receipts(day):
            if r.send.channel != channel:
                continue
            props = _message_properties(r.send)
            for customer, ts in zip(r.customers.tolist(), r.ts.tolist(), strict=True):
                eid, uid = event_ids(metric, r.send.message_id, day, customer)
                yield Event(ts, eid, uid, metric, self._profile_ids[customer], props)

    def _clicked(self, day: date, channel: str) -> Iterator[Event]:
        metric = "Clicked Email" if channel == "email" else "Clicked SMS"
        rate = EMAIL_CLICK_RATE if channel == "email" else SMS_CLICK_RATE
        for r in self._receipts(day):
            if r.send.channel != channel:
                continue
            rng = self.world.rng("klaviyo_click", r.send.message_id, day)
            clicked = rng.random(len(r.customers)) < rate
            delays = rng.integers(60, 6 * 3600, size=len(r.customers))
            props = {**_message_properties(r.send), "URL": f"{SHOP_URL}/collections/new"}
            for customer, ts in zip(
                r.customers[clicked].tolist(), (r.ts + delays)[clicked].tolist(), strict=True
            ):
                eid, uid = event_ids(metric, r.send.message_id, day, customer)
                yield Event(ts, eid, uid, metric, self._profile_ids[customer], props)

    @cached_property
    def _subscribed(self) -> np.ndarray:
        cust = self.world.customers
        return (cust["email_subscribed"] | cust["sms_subscribed"]).to_numpy()

    @lru_cache(maxsize=64)  # noqa: B019
    def _receipt_index(self, day: date) -> dict[int, list[tuple[int, str, str, str | None]]]:
        """customer -> [(received ts, message id, channel, flow id)] for shop `day`."""
        index: dict[int, list[tuple[int, str, str, str | None]]] = {}
        for r in self._receipts(day):
            flow_id = r.send.campaign_id if r.send.kind == "flow" else None
            for customer, ts in zip(r.customers.tolist(), r.ts.tolist(), strict=True):
                index.setdefault(customer, []).append(
                    (ts, r.send.message_id, r.send.channel, flow_id)
                )
        return index

    def _attribution(self, customer: int, ts: int, day: date) -> dict[str, str]:
        """Last touch: the latest message received within 120 h (email) / 24 h (SMS) before."""
        best: tuple[int, str, str, str | None] | None = None
        for back in range(7):
            for touch in self._receipt_index(day - timedelta(days=back)).get(customer, ()):
                age = ts - touch[0]
                if 0 <= age <= ATTRIBUTION_WINDOW_SECONDS[touch[2]] and (
                    best is None or touch[:2] > best[:2]
                ):
                    best = touch
        if best is None:
            return {}
        out = {"$attributed_message": best[1], "$attributed_channel": best[2]}
        if best[3]:
            out["$attributed_flow"] = best[3]
        return out

    def _placed_orders(self, day: date) -> Iterator[Event]:
        currency = self.world.config.shop_currency
        for order in self.world.orders_created(day):
            customer = int(order["customer_idx"])
            if not self._subscribed[customer]:
                continue
            ts = int(order["created_at"].timestamp())
            props: dict[str, Any] = {
                "$value": order["total"],
                "$event_id": str(order["id"]),
                "$currency_code": currency,
                "OrderId": str(order["id"]),
                "ItemNames": [p.title for p in order["items"]],
                **self._attribution(customer, ts, day),
            }
            eid, uid = event_ids("Placed Order", order["id"])
            yield Event(ts, eid, uid, "Placed Order", self._profile_ids[customer], props)

    # ---- segments -------------------------------------------------------------------

    def _find_segment(self, segment_id: str) -> Campaign | None:
        with self._cache_lock:
            found = self._segments.get(segment_id)
            if found is None and not self._segments_complete:
                for day in self._day_range(None, None):
                    self._campaigns_on(day)
                self._segments_complete = True
                found = self._segments.get(segment_id)
        if found is None or found.created_ts > self._as_of_ts:
            return None
        return found

    def _segment_profiles(
        self, request: httpx.Request, params: httpx.QueryParams, segment_id: str
    ) -> dict[str, Any]:
        self._require_scope("segments:read")
        self._allow_params(params, {"page[cursor]", "page[size]"})
        campaign = self._find_segment(segment_id)
        if campaign is None:
            raise not_found(f"A segment with id {segment_id} does not exist.")
        size = page_size(params, PROFILE_PAGE_SIZE, PROFILE_PAGE_MAX)
        members = campaign.send.holdout.tolist()
        page, end = offset_page(members, params, size)
        data = [self._profile_json(request, customer) for customer in page]
        return self._document(request, data, encode_cursor({"o": end}) if end else None)

    def _profile_json(self, request: httpx.Request, customer: int) -> dict[str, Any]:
        row = self.world.customers.iloc[customer]
        created = row["created_at"].tz_localize(UTC).isoformat()
        profile_id = str(row["profile_id"])
        return {
            "type": "profile",
            "id": profile_id,
            "attributes": {
                "email": row["email"],
                "external_id": str(row["customer_id"]),
                "created": created,
                "updated": created,
            },
            "links": {"self": f"{base_url_of(request)}/api/profiles/{profile_id}/"},
        }

    # ---- shared ---------------------------------------------------------------------

    @staticmethod
    def _sort(params: httpx.QueryParams, sorts: Mapping[str, bool], default: str) -> bool:
        sort = params.get("sort", default)
        if sort not in sorts:
            raise invalid_param("sort", f"'{sort}' is not a valid sort field.")
        return sorts[sort]

    def _scan_days(
        self,
        conditions: list[Condition],
        field: str,
        after: tuple[int, str] | None,
        descending: bool,
    ) -> list[date]:
        low, high = time_bounds(conditions, field)
        if after is not None and descending:
            high = after[0] if high is None else min(high, after[0])
        elif after is not None:
            low = after[0] if low is None else max(low, after[0])
        days = self._day_range(low, high)
        return days[::-1] if descending else days

    def _document(
        self, request: httpx.Request, data: list[dict[str, Any]], cursor: str | None
    ) -> dict[str, Any]:
        return {
            "data": data,
            "links": {"self": self_link(request), "next": next_link(request, cursor), "prev": None},
        }
