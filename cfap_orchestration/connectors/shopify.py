"""Shopify Admin REST API connector: orders by `updated_at`, paged with the `Link` header.

Restatement is by `updated_at`: the partition for a day (in the shop's `iana_timezone`)
holds the orders whose latest update fell on that day *at pull time*. When an order is
later fulfilled, cancelled or refunded, its new version lands in the partition of that
later day, and a re-pull of the old day no longer returns it. The current state of an
order is its row with the greatest `updated_at`; merge on `order_id`.

Paging sends only `limit` and `page_info` after the first page, as Shopify requires. The
client paces itself on `X-Shopify-Shop-Api-Call-Limit` (a leaky bucket of 40 calls) so
that it rarely meets a 429; 429 and 5xx are retried with the server's `Retry-After`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

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
    describe,
    parse_retry_after,
    redactor,
    require_fields,
)

logger = logging.getLogger(__name__)

PLATFORM = "shopify"
MAX_PAGE_SIZE = 250
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"

ORDERS_COLUMNS: tuple[str, ...] = (
    "partition_date",
    "order_id",
    "order_name",
    "email",
    "customer_id",
    "created_at",
    "updated_at",
    "processed_at",
    "cancelled_at",
    "currency",
    "presentment_currency",
    "financial_status",
    "fulfillment_status",
    "total_price",
    "subtotal_price",
    "total_tax",
    "total_discounts",
    "total_price_set",
    "shipping_address",
    "line_items",
    "refunds",
    "source_name",
    "test",
)
# One row per order version: an order re-appears with a new updated_at after each change.
ORDERS_PRIMARY_KEY: tuple[str, ...] = ("order_id", "updated_at")

ORDER_REQUIRED_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "created_at",
    "updated_at",
    "processed_at",
    "cancelled_at",
    "currency",
    "financial_status",
    "fulfillment_status",
    "total_price",
    "subtotal_price",
    "total_tax",
    "total_discounts",
    "total_price_set",
    "line_items",
    "refunds",
)
SHOP_REQUIRED_FIELDS: tuple[str, ...] = ("id", "name", "currency", "iana_timezone")
JSON_COLUMNS: tuple[str, ...] = ("total_price_set", "shipping_address", "line_items", "refunds")
PERMISSION_REASONS: dict[int, str] = {
    402: "the shop is frozen (unpaid plan); the merchant must settle the bill",
    403: "the token lacks an access scope (read_orders; read_all_orders beyond 60 days)",
    423: "the shop is locked by Shopify; the merchant must contact Shopify support",
}


class ShopifyClient(PlatformClient):
    """Orders from one Shopify shop over the Admin REST API."""

    def __init__(
        self,
        shop: str,
        access_token: str,
        *,
        base_url: str | None = None,
        api_version: str = "2025-01",
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = MAX_PAGE_SIZE,
        bucket_high_water: float = 0.8,
        bucket_leak_rate: float = 2.0,
        chunk_days: int = 7,
    ) -> None:
        """`bucket_leak_rate` is the plan's refill rate (2/s Basic, 4/s Advanced, 20/s Plus)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE} (got {page_size})")
        if bucket_high_water <= 0 or bucket_leak_rate <= 0 or chunk_days < 1:
            raise ValueError("bucket_high_water, bucket_leak_rate and chunk_days must be positive")
        self.shop = shop
        self.page_size = page_size
        self.bucket_high_water = bucket_high_water
        self.bucket_leak_rate = bucket_leak_rate
        self.chunk_days = chunk_days
        root = (base_url or f"https://{shop}.myshopify.com").rstrip("/")
        self._shop: dict[str, Any] | None = None
        self._http = PlatformHttpClient(
            PLATFORM,
            f"{root}/admin/api/{api_version}/",
            headers={"X-Shopify-Access-Token": access_token, "Accept": "application/json"},
            secrets=(access_token,),
            classify_error=classify_error,
            pace=self._pace,
            retry=retry,
            transport=transport,
            sleep=sleep,
        )

    # ---- shop ---------------------------------------------------------------------

    def get_shop(self) -> dict[str, Any]:
        """The shop record (`GET shop.json`): currency, iana_timezone, myshopify_domain…"""
        body, _ = self._http.request_json("GET", "shop.json")
        if not isinstance(body, dict) or not isinstance(body.get("shop"), dict):
            raise SchemaDriftError(PLATFORM, "GET shop.json returned no `shop` object")
        shop: dict[str, Any] = body["shop"]
        require_fields(PLATFORM, shop, SHOP_REQUIRED_FIELDS, "shop")
        self._shop = shop
        return shop

    def shop_timezone(self) -> ZoneInfo:
        shop = self._shop or self.get_shop()
        return ZoneInfo(shop["iana_timezone"])

    # ---- orders -------------------------------------------------------------------

    def fetch_orders_updated(self, since: date, until: date) -> pd.DataFrame:
        """Order versions whose updated_at falls in [since 00:00, until+1 00:00), shop time.

        `partition_date` is updated_at's local date. See the module docstring on restatement.
        """
        if until < since:
            raise ValueError(f"until ({until}) is before since ({since})")
        tz = self.shop_timezone()
        rows: list[dict[str, Any]] = []
        for start, end in _chunks(since, until, self.chunk_days):
            rows.extend(self._pull_window(tz, start, end))
        frame = pd.DataFrame(rows, columns=list(ORDERS_COLUMNS))
        frame = frame.drop_duplicates(list(ORDERS_PRIMARY_KEY), keep="last", ignore_index=True)
        frame = frame.astype({"order_id": "int64", "customer_id": "Int64", "test": "bool"})
        logger.info(
            "shopify: %d order versions updated %s..%s in %d requests",
            len(frame),
            since,
            until,
            self.stats.requests,
        )
        return frame

    def _pull_window(self, tz: ZoneInfo, start: date, end: date) -> list[dict[str, Any]]:
        """Every page of one chunk; updated_at_max is inclusive and to the second."""
        upper = datetime.combine(end + timedelta(days=1), dtime(0), tz) - timedelta(seconds=1)
        params: dict[str, Any] = {
            "status": "any",
            "updated_at_min": datetime.combine(start, dtime(0), tz).isoformat(),
            "updated_at_max": upper.isoformat(),
            "order": "updated_at asc",
            "limit": self.page_size,
        }
        rows: list[dict[str, Any]] = []
        outside = 0
        for orders in self._pages(params):
            for order in orders:
                row = order_row(order, tz)
                if start <= row["partition_date"] <= end:
                    rows.append(row)
                else:
                    outside += 1
        if outside:
            logger.warning("shopify: dropped %d orders updated outside %s..%s", outside, start, end)
        return rows

    def _pages(self, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Follow rel="next" links, sending only limit and page_info after the first page."""
        while True:
            body, response = self._http.request_json("GET", "orders.json", params=params)
            self._http.stats.pages += 1
            if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
                raise SchemaDriftError(
                    PLATFORM, f"{describe(response.request)} returned no `orders` list"
                )
            yield body["orders"]
            page_info = next_page_info(response)
            if page_info is None:
                return
            params = {"limit": self.page_size, "page_info": page_info}

    # ---- pacing -------------------------------------------------------------------

    def _pace(self, response: httpx.Response) -> float:
        """Seconds to pause once the call bucket is past the high-water mark.

        The pause drains the bucket to half the mark at the plan's leak rate, so the
        next burst of calls has room before Shopify answers 429.
        """
        used_limit = parse_call_limit(response.headers.get(CALL_LIMIT_HEADER))
        if used_limit is None:
            return 0.0
        used, limit = used_limit
        if used / limit < self.bucket_high_water:
            return 0.0
        target = limit * self.bucket_high_water / 2
        pause = (used - target) / self.bucket_leak_rate
        logger.debug("shopify: call bucket at %d/%d, pausing %.2fs", used, limit, pause)
        return pause


# ---- wire helpers -----------------------------------------------------------------


def _chunks(since: date, until: date, days: int) -> Iterator[tuple[date, date]]:
    start = since
    while start <= until:
        end = min(until, start + timedelta(days=days - 1))
        yield start, end
        start = end + timedelta(days=1)


def order_row(order: Mapping[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """One raw row: timestamps and money as the strings Shopify sent, nested parts as JSON."""
    require_fields(PLATFORM, order, ORDER_REQUIRED_FIELDS, "order")
    customer = order.get("customer") or {}
    row: dict[str, Any] = {
        "partition_date": _local_date(order["updated_at"], tz),
        "order_id": int(order["id"]),
        "order_name": order["name"],
        "email": order.get("email"),
        "customer_id": customer.get("id"),
        "presentment_currency": order.get("presentment_currency"),
        "source_name": order.get("source_name"),
        "test": bool(order.get("test", False)),
    }
    for key in (
        "created_at",
        "updated_at",
        "processed_at",
        "cancelled_at",
        "currency",
        "financial_status",
        "fulfillment_status",
        "total_price",
        "subtotal_price",
        "total_tax",
        "total_discounts",
    ):
        row[key] = order[key]
    for key in JSON_COLUMNS:
        value = order.get(key)
        row[key] = None if value is None else json.dumps(value, separators=(",", ":"))
    return row


def _local_date(timestamp: Any, tz: ZoneInfo) -> date:
    try:
        return datetime.fromisoformat(str(timestamp)).astimezone(tz).date()
    except ValueError:
        raise SchemaDriftError(
            PLATFORM, f"order updated_at {timestamp!r} is not an ISO 8601 timestamp"
        ) from None


def next_page_info(response: httpx.Response) -> str | None:
    """The page_info cursor of the Link header's rel="next", if there is one."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("page_info")
    if not values:
        raise SchemaDriftError(
            PLATFORM, f'{describe(response.request)}: Link rel="next" carries no page_info'
        )
    return values[0]


def parse_call_limit(value: str | None) -> tuple[int, int] | None:
    """`"32/40"` → (32, 40); None when absent or malformed."""
    if not value or "/" not in value:
        return None
    used, _, limit = value.partition("/")
    try:
        parsed = int(used), int(limit)
    except ValueError:
        return None
    return parsed if parsed[1] > 0 else None


def errors_text(body: Any, response: httpx.Response) -> str:
    """Shopify's `errors` (a string, a list, or a field → message(s) object) as one line."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        parts = []
        for field, messages in errors.items():
            listed = messages if isinstance(messages, list) else [messages]
            parts.append(f"{field} {'; '.join(map(str, listed))}")
        text = "; ".join(parts)
    elif isinstance(errors, list):
        text = "; ".join(map(str, errors))
    elif errors is not None:
        text = str(errors)
    else:
        text = response.text.strip()[:300] or response.reason_phrase
    return redactor.redact(text)


def classify_error(response: httpx.Response, body: Any) -> ConnectorError | None:
    """Map Shopify's HTTP statuses to typed errors; retryable ones carry Retry-After."""
    status = response.status_code
    if status < 400:
        return None
    text = f"{describe(response.request)} returned HTTP {status}: {errors_text(body, response)}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return RateLimitedError(PLATFORM, text, retry_after)
    if status >= 500:
        return TransientApiError(PLATFORM, text, retry_after)
    if status == 401:
        return AuthenticationError(
            PLATFORM, f"{text}. The access token is invalid or revoked; issue a new one."
        )
    if status in PERMISSION_REASONS:
        return PermissionDeniedError(PLATFORM, f"{text}. Reason: {PERMISSION_REASONS[status]}.")
    return InvalidRequestError(PLATFORM, text)
