"""Fake Shopify Admin REST API (shop and orders) serving the sandbox world in Shopify's wire format.

Each order is shown as it stood at the server's `as_of`: events after it (fulfilment,
cancellation, refund) have not happened yet and orders created after it do not exist.
`updated_at` is the order's latest event at or before `as_of`. Paging follows the real
API: a `Link` header with opaque `page_info` cursors (rel="next"/"previous"), and a
follow-up request may carry only `limit`, `page_info` and `fields`. Every call drains a
simulated leaky bucket (40 calls, `leak_rate` per second) reported in
`X-Shopify-Shop-Api-Call-Limit`; overflowing it gets the real 429 with `Retry-After`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx

from cfap_orchestration.sandbox.fake_apis.base import FakeApi, Fault, base_url_of, json_response
from cfap_orchestration.sandbox.world import SHOPIFY_ORDER_ID_BASE, SandboxWorld, daterange

API_PATH = re.compile(r"^/admin/api/(?P<version>\d{4}-\d{2})/(?P<resource>.+)$")
BUCKET_SIZE = 40
DEFAULT_LIMIT, MAX_LIMIT = 50, 250
# Refunds land within 21 days of creation; one more day covers the clock's edge.
UPDATE_HORIZON_DAYS = 22
VISIBLE_DAYS_WITHOUT_READ_ALL = 60
ORDER_PARAMS = frozenset(
    {"status", "updated_at_min", "updated_at_max", "order", "limit", "page_info", "fields"}
)
PAGE_PARAMS = frozenset({"limit", "page_info", "fields"})
ORDER_FIELDS = ("updated_at", "created_at", "id")
STATUSES = ("any", "open", "closed", "cancelled")
SHOP_ID = 63_912_345_678
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted "
    "service."
)
SHOP_STATE_ERRORS = {
    "frozen": (402, "Unavailable Shop"),
    "locked": (423, "This shop is locked. Contact Shopify support."),
}
JSON_CONTENT = "application/json; charset=utf-8"

SortKey = tuple[float, float]


@dataclass(frozen=True)
class _Query:
    status: str
    updated_min: datetime
    updated_max: datetime
    order_field: str
    descending: bool

    def to_token(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "updated_at_min": self.updated_min.isoformat(),
            "updated_at_max": self.updated_max.isoformat(),
            "order": f"{self.order_field} {'desc' if self.descending else 'asc'}",
        }


@dataclass(frozen=True)
class _Version:
    """One order as it stood at `as_of`."""

    order: dict[str, Any]
    updated_at: datetime

    def state(self, as_of: datetime) -> dict[str, datetime | None]:
        return {
            k: _seen(self.order[k], as_of) for k in ("fulfilled_at", "cancelled_at", "refunded_at")
        }


class _BadParam(Exception):
    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.message = message
        super().__init__(f"{param} {message}")


def _seen(moment: datetime | None, as_of: datetime) -> datetime | None:
    return moment if moment is not None and moment <= as_of else None


def _money(amount: float) -> str:
    return f"{amount:.2f}"


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _BadParam("page_info", "Invalid value.") from exc
    if not isinstance(payload, dict) or "last_key" not in payload:
        raise _BadParam("page_info", "Invalid value.")
    return payload


def _link_part(base: str, limit: int, token: dict[str, Any], rel: str) -> str:
    query = urlencode({"limit": limit, "page_info": _encode_token(token)})
    return f'<{base}?{query}>; rel="{rel}"'


class ShopifyFakeApi(FakeApi):
    """Shopify Admin REST: `/admin/api/{YYYY-MM}/shop.json` and `/orders.json`.

    Knobs: `leak_rate` (calls per second the bucket drains; 2 on the Basic plan),
    `clock` (monotonic seconds; inject a virtual clock to test pacing without waiting),
    `shop_state` ("active", "frozen" → 402, "locked" → 423) and `scopes` (without
    read_orders → 403; without read_all_orders only the last 60 days are visible).
    """

    platform = "shopify"
    renamed_field = ("total_price", "total_price_amount")

    def __init__(
        self,
        world: SandboxWorld,
        *,
        token: str = "shopify-sandbox-token",
        as_of: datetime | None = None,
        shop: str = "northwind-goods",
        leak_rate: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        shop_state: str = "active",
        scopes: tuple[str, ...] = ("read_orders", "read_all_orders"),
    ) -> None:
        super().__init__(world, token=token, as_of=as_of)
        if leak_rate <= 0:
            raise ValueError("leak_rate must be positive")
        if shop_state not in ("active", *SHOP_STATE_ERRORS):
            raise ValueError(f"unknown shop_state {shop_state!r}")
        self.shop = shop
        self.leak_rate = leak_rate
        self.shop_state = shop_state
        self.scopes = scopes
        self.tz = ZoneInfo(world.config.shop_timezone)
        self._clock = clock
        self._bucket_lock = threading.Lock()
        self._level = 0.0
        self._last_leak = clock()
        self._day_cache: dict[date, list[_Version]] = {}
        self._query_cache: dict[_Query, tuple[list[SortKey], list[_Version]]] = {}

    # ---- FakeApi hooks ------------------------------------------------------------

    def is_authorized(self, request: httpx.Request) -> bool:
        return request.headers.get("X-Shopify-Access-Token") == self.token

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        return json_response(401, {"errors": INVALID_TOKEN}, content_type=JSON_CONTENT)

    def error_response(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "rate_limit":
            return self._throttled(fault.retry_after)
        if fault.kind == "expired_token":
            return self.auth_error(request)
        if fault.kind == "bad_request":
            invalid: dict[str, Any] = {"errors": {"updated_at_min": "is invalid"}}
            return json_response(400, invalid, content_type=JSON_CONTENT)
        if fault.kind == "server_error":
            body = {"errors": "Internal Server Error"}
            return json_response(fault.status or 500, body, content_type=JSON_CONTENT)
        raise ValueError(f"fault kind {fault.kind!r} has no error response")

    def route(self, request: httpx.Request) -> httpx.Response:
        match = API_PATH.match(request.url.path)
        if request.method != "GET" or match is None:
            return json_response(404, {"errors": "Not Found"}, content_type=JSON_CONTENT)
        if self.shop_state in SHOP_STATE_ERRORS:
            status, message = SHOP_STATE_ERRORS[self.shop_state]
            return json_response(status, {"errors": message}, content_type=JSON_CONTENT)
        used = self._take_call()
        if used is None:
            return self._throttled(max(2.0, 1.0 / self.leak_rate))
        response = self._route_resource(request, match["version"], match["resource"])
        response.headers["X-Shopify-Shop-Api-Call-Limit"] = f"{used}/{BUCKET_SIZE}"
        return response

    # ---- rate limiting ------------------------------------------------------------

    def _take_call(self) -> int | None:
        """Drain the bucket for the time passed, then add this call; None if it overflows."""
        with self._bucket_lock:
            now = self._clock()
            self._level = max(0.0, self._level - (now - self._last_leak) * self.leak_rate)
            self._last_leak = now
            if self._level + 1 > BUCKET_SIZE:
                return None
            self._level += 1
            return math.ceil(self._level)

    @staticmethod
    def _throttled(retry_after: float) -> httpx.Response:
        headers = {"Retry-After": f"{retry_after:.1f}" if retry_after >= 1 else f"{retry_after:g}"}
        return json_response(429, {"errors": THROTTLED}, headers, content_type=JSON_CONTENT)

    # ---- routing ------------------------------------------------------------------

    def _route_resource(
        self, request: httpx.Request, version: str, resource: str
    ) -> httpx.Response:
        if resource == "shop.json":
            return json_response(200, {"shop": self._shop_json()}, content_type=JSON_CONTENT)
        if resource == "orders.json":
            if "read_orders" not in self.scopes:
                body = {
                    "errors": "[API] This action requires merchant approval for read_orders scope."
                }
                return json_response(403, body, content_type=JSON_CONTENT)
            try:
                return self._orders(request, version)
            except _BadParam as exc:
                errors: dict[str, Any] = {"errors": {exc.param: exc.message}}
                return json_response(400, errors, content_type=JSON_CONTENT)
        return json_response(404, {"errors": "Not Found"}, content_type=JSON_CONTENT)

    def _shop_json(self) -> dict[str, Any]:
        cfg = self.world.config
        return {
            "id": SHOP_ID,
            "name": "Northwind Goods",
            "email": "ops@northwind-goods.example",
            "domain": "northwind-goods.example",
            "myshopify_domain": f"{self.shop}.myshopify.com",
            "country_code": "US",
            "currency": cfg.shop_currency,
            "iana_timezone": cfg.shop_timezone,
            "timezone": self._timezone_label(),
            "plan_name": "basic",
            "created_at": "2021-03-04T09:12:44-05:00",
        }

    def _timezone_label(self) -> str:
        """Shopify's "(GMT-05:00) America/New_York": the zone's standard (non-DST) offset."""
        year = self.as_of.year
        offsets = [datetime(year, m, 1, tzinfo=self.tz).utcoffset() for m in (1, 7)]
        minutes = int(min(o for o in offsets if o is not None).total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        hours, mins = divmod(abs(minutes), 60)
        return f"(GMT{sign}{hours:02d}:{mins:02d}) {self.world.config.shop_timezone}"

    # ---- orders -------------------------------------------------------------------

    def _orders(self, request: httpx.Request, version: str) -> httpx.Response:
        params = dict(request.url.params)
        unknown = sorted(set(params) - ORDER_PARAMS)
        if unknown:
            raise _BadParam(unknown[0], "is not a supported parameter")
        limit = self._limit(params.get("limit"))
        fields = [f for f in params.get("fields", "").split(",") if f]
        if "page_info" in params:
            query, keys, versions, start, end = self._continue(params, limit)
        else:
            query = self._query(params)
            keys, versions = self._matching(query)
            start, end = 0, min(limit, len(versions))
        page = versions[start:end]
        body = {"orders": [self._order_json(v, fields) for v in page]}
        headers = {}
        link = self._link(request, version, query, keys, limit, start, end)
        if link:
            headers["Link"] = link
        return json_response(200, body, headers, content_type=JSON_CONTENT)

    @staticmethod
    def _limit(raw: str | None) -> int:
        if raw is None:
            return DEFAULT_LIMIT
        try:
            limit = int(raw)
        except ValueError:
            raise _BadParam("limit", "is invalid") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise _BadParam("limit", f"must be between 1 and {MAX_LIMIT}")
        return limit

    def _query(self, params: dict[str, str]) -> _Query:
        status = params.get("status", "open")
        if status not in STATUSES:
            raise _BadParam("status", "is invalid")
        order = params.get("order", "id desc").split()
        if len(order) not in (1, 2) or order[0] not in ORDER_FIELDS:
            raise _BadParam("order", "is invalid")
        direction = order[1].lower() if len(order) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise _BadParam("order", "is invalid")
        updated_min = self._time_param(params, "updated_at_min", self.as_of - timedelta(days=60))
        updated_max = self._time_param(params, "updated_at_max", self.as_of)
        return _Query(status, updated_min, updated_max, order[0], direction == "desc")

    def _time_param(self, params: dict[str, str], name: str, default: datetime) -> datetime:
        raw = params.get(name)
        if raw is None:
            return default
        try:
            moment = datetime.fromisoformat(raw.replace(" ", "+"))
        except ValueError:
            raise _BadParam(name, "is invalid") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.tz)

    def _continue(
        self, params: dict[str, str], limit: int
    ) -> tuple[_Query, list[SortKey], list[_Version], int, int]:
        """Resolve a page_info cursor to the query it continues and the slice it points at."""
        extra = sorted(set(params) - PAGE_PARAMS)
        if extra:
            raise _BadParam(
                "page_info",
                f"{extra[0]} cannot be passed when page_info is present. "
                "See https://shopify.dev/api/usage/pagination-rest for more information.",
            )
        token = _decode_token(params["page_info"])
        try:
            query = self._query({k: str(v) for k, v in token.items() if k in ORDER_PARAMS})
            cursor: SortKey = (float(token["last_key"][0]), float(token["last_key"][1]))
        except (TypeError, ValueError, IndexError, KeyError, _BadParam):
            raise _BadParam("page_info", "Invalid value.") from None
        keys, versions = self._matching(query)
        if token.get("direction") == "prev":
            end = bisect_left(keys, cursor)
            return query, keys, versions, max(0, end - limit), end
        start = bisect_right(keys, cursor)
        return query, keys, versions, start, min(len(versions), start + limit)

    def _link(
        self,
        request: httpx.Request,
        version: str,
        query: _Query,
        keys: list[SortKey],
        limit: int,
        start: int,
        end: int,
    ) -> str:
        base = f"{base_url_of(request)}/admin/api/{version}/orders.json"
        parts = []
        if start > 0:
            token = {**query.to_token(), "last_key": list(keys[start]), "direction": "prev"}
            parts.append(_link_part(base, limit, token, "previous"))
        if end < len(keys):
            token = {**query.to_token(), "last_key": list(keys[end - 1]), "direction": "next"}
            parts.append(_link_part(base, limit, token, "next"))
        return ", ".join(parts)

    def _matching(self, query: _Query) -> tuple[list[SortKey], list[_Version]]:
        """Orders matching `query`, sorted, with their sort keys (cached per query)."""
        cached = self._query_cache.get(query)
        if cached is not None:
            return cached
        first = query.updated_min.astimezone(self.tz).date() - timedelta(days=UPDATE_HORIZON_DAYS)
        last = min(query.updated_max, self.as_of).astimezone(self.tz).date()
        found = [
            v
            for day in daterange(first, last)
            for v in self._versions(day)
            if query.updated_min <= v.updated_at <= query.updated_max
            and self._has_status(v, query.status)
        ]
        found.sort(key=lambda v: self._sort_key(v, query))
        result = ([self._sort_key(v, query) for v in found], found)
        with self._lock:
            if len(self._query_cache) >= 64:
                self._query_cache.clear()
            self._query_cache[query] = result
        return result

    @staticmethod
    def _sort_key(version: _Version, query: _Query) -> SortKey:
        order = version.order
        value = {
            "updated_at": version.updated_at.timestamp(),
            "created_at": order["created_at"].timestamp(),
            "id": float(order["id"]),
        }[query.order_field]
        key = (value, float(order["id"]))
        return (-key[0], -key[1]) if query.descending else key

    def _has_status(self, version: _Version, status: str) -> bool:
        state = version.state(self.as_of)
        if status == "cancelled":
            return state["cancelled_at"] is not None
        closed = state["fulfilled_at"] is not None  # shops archive orders once fulfilled
        if status == "closed":
            return closed
        if status == "open":
            return not closed and state["cancelled_at"] is None
        return True

    def _versions(self, day: date) -> list[_Version]:
        """Orders created on `day` that exist at `as_of`, each with its as-of updated_at."""
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        visible_from = None
        if "read_all_orders" not in self.scopes:
            visible_from = self.as_of - timedelta(days=VISIBLE_DAYS_WITHOUT_READ_ALL)
        versions = []
        for order in self.world.orders_created(day):
            created: datetime = order["created_at"]
            if created > self.as_of or (visible_from is not None and created < visible_from):
                continue
            events = [
                order[k] for k in ("created_at", "fulfilled_at", "cancelled_at", "refunded_at")
            ]
            seen = [e for e in events if e is not None and e <= self.as_of]
            versions.append(_Version(order, max(seen)))
        with self._lock:
            self._day_cache[day] = versions
        return versions

    # ---- order JSON ---------------------------------------------------------------

    def _ts(self, moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(self.tz).isoformat(timespec="seconds")

    def _order_json(self, version: _Version, fields: list[str]) -> dict[str, Any]:
        order = version.order
        state = version.state(self.as_of)
        currency = self.world.config.shop_currency
        presentment = currency if order["country"] == "US" else "EUR"
        created_day = order["created_at"].date()
        rate = self.world.fx_usd_per_unit(currency, created_day) / self.world.fx_usd_per_unit(
            presentment, created_day
        )
        local_id = order["id"] - SHOPIFY_ORDER_ID_BASE

        def money_set(amount: float) -> dict[str, Any]:
            return {
                "shop_money": {"amount": _money(amount), "currency_code": currency},
                "presentment_money": {
                    "amount": _money(amount * rate),
                    "currency_code": presentment,
                },
            }

        total = order["total"]
        voided = state["cancelled_at"] is not None
        refunded = state["refunded_at"] is not None
        body: dict[str, Any] = {
            "id": order["id"],
            "admin_graphql_api_id": f"gid://shopify/Order/{order['id']}",
            "name": f"#{order['number']}",
            "number": order["number"],
            "email": order["email"],
            "created_at": self._ts(order["created_at"]),
            "updated_at": self._ts(version.updated_at),
            "processed_at": self._ts(order["created_at"]),
            "cancelled_at": self._ts(state["cancelled_at"]),
            "cancel_reason": "customer" if voided else None,
            "closed_at": self._ts(state["fulfilled_at"]),
            "currency": currency,
            "presentment_currency": presentment,
            "total_price": _money(total),
            "subtotal_price": _money(order["subtotal"]),
            "total_tax": "0.00",
            "total_discounts": _money(order["discount"]),
            "current_total_price": _money(0.0 if voided or refunded else total),
            "total_price_set": money_set(total),
            "subtotal_price_set": money_set(order["subtotal"]),
            "financial_status": "voided" if voided else "refunded" if refunded else "paid",
            "fulfillment_status": "fulfilled" if state["fulfilled_at"] is not None else None,
            "customer": {"id": order["customer_id"], "email": order["email"]},
            "shipping_address": {
                "province_code": order["geo_id"].split("-", 1)[1],
                "country_code": order["country"],
            },
            "line_items": [
                {
                    "id": 13_000_000_000_000 + local_id * 10 + i,
                    "product_id": item.product_id,
                    "variant_id": item.variant_id,
                    "title": item.title,
                    "quantity": 1,
                    "price": _money(item.price),
                }
                for i, item in enumerate(order["items"])
            ],
            "refunds": self._refunds(order, state["refunded_at"], local_id, currency),
            "tags": "",
            "test": False,
            "source_name": "web",
        }
        return {k: v for k, v in body.items() if k in fields} if fields else body

    def _refunds(
        self, order: dict[str, Any], refunded_at: datetime | None, local_id: int, currency: str
    ) -> list[dict[str, Any]]:
        if refunded_at is None:
            return []
        return [
            {
                "id": 9_100_000_000_000 + local_id,
                "order_id": order["id"],
                "created_at": self._ts(refunded_at),
                "processed_at": self._ts(refunded_at),
                "transactions": [
                    {
                        "id": 7_300_000_000_000 + local_id,
                        "amount": _money(order["total"]),
                        "currency": currency,
                        "kind": "refund",
                        "status": "success",
                    }
                ],
            }
        ]
