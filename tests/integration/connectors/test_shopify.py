"""ShopifyClient against the fake Shopify Admin REST API, over a real 127.0.0.1 socket."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    InvalidRequestError,
    PermissionDeniedError,
    RetriesExhaustedError,
    SchemaDriftError,
)
from cfap_orchestration.connectors.http import RetryPolicy
from cfap_orchestration.connectors.shopify import (
    ORDERS_COLUMNS,
    ORDERS_PRIMARY_KEY,
    ShopifyClient,
)
from cfap_orchestration.sandbox.fake_apis.base import serve
from cfap_orchestration.sandbox.fake_apis.shopify import ShopifyFakeApi
from cfap_orchestration.sandbox.world import SandboxWorld, WorldConfig, daterange

TOKEN = "shpat_sandbox_5f0c2e9a7b1d4c3e"
SHOP = "northwind-goods"
AS_OF = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
SINCE, UNTIL = date(2024, 6, 3), date(2024, 6, 16)
FAST = RetryPolicy(
    max_attempts=4, initial_wait=0.01, max_wait=0.5, timeout=1.0, connect_timeout=1.0
)
EVENTS = ("created_at", "fulfilled_at", "cancelled_at", "refunded_at")


@pytest.fixture(scope="module")
def world() -> SandboxWorld:
    return SandboxWorld(WorldConfig(n_customers=2000))


def make_api(world: SandboxWorld, **knobs: Any) -> ShopifyFakeApi:
    knobs.setdefault("as_of", AS_OF)
    knobs.setdefault("leak_rate", 1000.0)  # real time: keep the bucket out of the way
    return ShopifyFakeApi(world, token=TOKEN, **knobs)


def pull(
    api: ShopifyFakeApi, since: date = SINCE, until: date = UNTIL, **options: Any
) -> tuple[pd.DataFrame, ShopifyClient]:
    options.setdefault("retry", FAST)
    options.setdefault("page_size", 50)
    with serve(api) as server:
        client = ShopifyClient(SHOP, TOKEN, base_url=server.base_url, **options)
        with client:
            return client.fetch_orders_updated(since, until), client


def as_of_updated_at(order: dict[str, Any], as_of: datetime) -> datetime:
    return max(order[k] for k in EVENTS if order[k] is not None and order[k] <= as_of)


def world_orders(world: SandboxWorld, since: date, until: date, as_of: datetime) -> list[dict]:
    """Orders whose latest event at `as_of` fell on since..until (shop time), per the world."""
    tz = ZoneInfo(world.config.shop_timezone)
    found = []
    for day in daterange(since - timedelta(days=25), until):
        for order in world.orders_created(day):
            if order["created_at"] > as_of:
                continue
            if since <= as_of_updated_at(order, as_of).astimezone(tz).date() <= until:
                found.append(order)
    return found


@pytest.fixture(scope="module")
def baseline(world: SandboxWorld) -> tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi]:
    api = make_api(world)
    frame, client = pull(api)
    return frame, client, api


# ---- completeness and paging ------------------------------------------------------------


def test_multi_page_pull_matches_world(
    world: SandboxWorld, baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi]
) -> None:
    frame, client, _ = baseline
    expected = world_orders(world, SINCE, UNTIL, AS_OF)
    assert tuple(frame.columns) == ORDERS_COLUMNS
    assert len(frame) == len(expected) > 300
    assert sum(frame["total_price"].map(Decimal)) == sum(
        Decimal(f"{o['total']:.2f}") for o in expected
    )
    assert set(frame["order_id"]) == {o["id"] for o in expected}
    assert not frame.duplicated(list(ORDERS_PRIMARY_KEY)).any()
    assert frame["order_id"].is_unique  # one as-of version per order
    assert client.stats.pages > 2 * 3  # two 7-day chunks, several pages each


def test_partition_date_is_local_date_of_updated_at(
    baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi],
) -> None:
    frame, _, _ = baseline
    tz = ZoneInfo("America/New_York")
    local = frame["updated_at"].map(lambda s: datetime.fromisoformat(s).astimezone(tz).date())
    assert all(type(d) is date for d in frame["partition_date"])
    assert (frame["partition_date"] == local).all()
    assert frame["partition_date"].between(SINCE, UNTIL).all()
    assert {SINCE, UNTIL} <= set(frame["partition_date"])
    # Wire values stay as sent: money strings with 2 decimals, nested parts as JSON.
    assert frame["total_price"].str.fullmatch(r"\d+\.\d{2}").all()
    first = json.loads(frame["line_items"].iloc[0])
    assert {"id", "product_id", "variant_id", "title", "quantity", "price"} <= set(first[0])
    assert frame["order_id"].dtype == "int64"


def test_connector_never_combines_page_info_with_filters(
    baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi],
) -> None:
    _, client, api = baseline
    orders_requests = [r for r in api.requests if r.url.path.endswith("/orders.json")]
    follow_ups = [r for r in orders_requests if "page_info" in r.url.params]
    assert len(follow_ups) == client.stats.pages - 2  # all but each chunk's first page
    for request in follow_ups:
        assert set(request.url.params) == {"limit", "page_info"}
    for request in orders_requests:
        if "page_info" not in request.url.params:
            assert request.url.params["status"] == "any"
            assert request.url.params["order"] == "updated_at asc"


def test_fake_rejects_page_info_with_filters_and_pages_with_link(world: SandboxWorld) -> None:
    api = make_api(world)
    params: dict[str, str | int] = {
        "status": "any",
        "updated_at_min": "2024-06-03T00:00:00-04:00",
        "updated_at_max": "2024-06-03T23:59:59-04:00",
        "order": "updated_at asc",
        "limit": 10,
    }
    headers = {"X-Shopify-Access-Token": TOKEN}
    with serve(api) as server, httpx.Client(base_url=server.base_url, headers=headers) as http:
        first = http.get("/admin/api/2024-10/orders.json", params=params)
        assert first.status_code == 200
        assert first.headers["X-Shopify-Shop-Api-Call-Limit"] == "1/40"
        next_url = first.links["next"]["url"]
        assert next_url.startswith(f"{server.base_url}/admin/api/2024-10/orders.json?limit=10&")
        assert "previous" not in first.links
        second = http.get(next_url)
        assert "previous" in second.links
        back = http.get(second.links["previous"]["url"])
        assert [o["id"] for o in back.json()["orders"]] == [o["id"] for o in first.json()["orders"]]
        rejected = http.get(next_url + "&status=any")
        assert rejected.status_code == 400
        assert "page_info" in rejected.json()["errors"]
        assert http.get("/admin/api/2025-01/orders.json", params={"limit": 251}).status_code == 400
        assert http.get("/admin/api/2025-01/products.json").status_code == 404


def test_get_shop(world: SandboxWorld) -> None:
    api = make_api(world)
    with serve(api) as server, ShopifyClient(SHOP, TOKEN, base_url=server.base_url) as client:
        shop = client.get_shop()
    assert shop["iana_timezone"] == "America/New_York"
    assert shop["currency"] == "USD"
    assert shop["timezone"] == "(GMT-05:00) America/New_York"
    assert shop["myshopify_domain"] == "northwind-goods.myshopify.com"


def test_in_process_transport(
    world: SandboxWorld, baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi]
) -> None:
    api = make_api(world)
    with ShopifyClient(SHOP, TOKEN, transport=api.transport(), retry=FAST, page_size=50) as client:
        frame = client.fetch_orders_updated(SINCE, UNTIL)
    pd.testing.assert_frame_equal(frame, baseline[0])
    assert {r.url.host for r in api.requests} == {"northwind-goods.myshopify.com"}


# ---- pacing -------------------------------------------------------------------------------


@dataclass
class VirtualClock:
    """Shared by the fake's leaky bucket and the client's sleep: pauses cost no real time."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_call_limit_pacing_pauses_before_the_bucket_overflows(
    world: SandboxWorld, baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi]
) -> None:
    clock = VirtualClock()
    api = make_api(world, leak_rate=0.5, clock=clock.time)
    patient = RetryPolicy(initial_wait=0.01, max_wait=120.0, timeout=1.0)
    frame, client = pull(api, page_size=10, retry=patient, sleep=clock.sleep, bucket_leak_rate=0.5)
    assert client.stats.requests > 40  # more calls than the bucket holds
    assert clock.sleeps, "the client never paused"
    assert client.stats.retries == 0  # so never met a 429
    # At 32/40 (0.8) it drains to 16 at 0.5 calls/s: a 32 s pause.
    assert clock.sleeps[0] == pytest.approx(32.0)
    pd.testing.assert_frame_equal(frame, baseline[0])


def test_without_pacing_the_bucket_overflows_and_429_is_survived(
    world: SandboxWorld, baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi]
) -> None:
    clock = VirtualClock()
    api = make_api(world, leak_rate=0.5, clock=clock.time)
    patient = RetryPolicy(max_attempts=6, initial_wait=0.01, max_wait=120.0, timeout=1.0)
    frame, client = pull(api, page_size=10, retry=patient, sleep=clock.sleep, bucket_high_water=2.0)
    assert client.stats.retry_reasons.get("RateLimitedError", 0) > 0
    assert set(clock.sleeps) == {2.0}  # the 429's Retry-After, nothing else
    pd.testing.assert_frame_equal(frame, baseline[0])


# ---- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "knobs", "reason"),
    [
        ("rate_limit", {"retry_after": 0.05}, "RateLimitedError"),
        ("server_error", {}, "TransientApiError"),
        ("server_error", {"status": 503}, "TransientApiError"),
        ("timeout", {"delay": 1.3}, "TransientApiError"),
        ("truncated", {}, "TransientApiError"),
    ],
)
def test_retryable_faults_are_survived_with_identical_data(
    world: SandboxWorld,
    baseline: tuple[pd.DataFrame, ShopifyClient, ShopifyFakeApi],
    kind: Any,
    knobs: dict[str, Any],
    reason: str,
) -> None:
    api = make_api(world)
    api.inject(kind, path_contains="orders.json", skip=1, times=2, **knobs)
    frame, client = pull(api)
    assert client.stats.retries == 2
    assert client.stats.retry_reasons == {reason: 2}
    if kind == "rate_limit":
        assert client.stats.waited_seconds == pytest.approx(0.1)  # Retry-After honoured
    pd.testing.assert_frame_equal(frame, baseline[0])


def test_persistent_server_error_exhausts_retries(world: SandboxWorld) -> None:
    api = make_api(world)
    api.inject("server_error", path_contains="orders.json", times=10)
    with pytest.raises(RetriesExhaustedError, match="Internal Server Error"):
        pull(api)


def test_expired_token_raises_authentication_error(world: SandboxWorld) -> None:
    api = make_api(world)
    api.inject("expired_token", path_contains="orders.json", skip=1)
    with pytest.raises(AuthenticationError, match="Invalid API key or access token") as info:
        pull(api)
    assert "GET /admin/api/2025-01/orders.json" in str(info.value)
    assert TOKEN not in str(info.value)


def test_wrong_token_raises_authentication_error(world: SandboxWorld) -> None:
    api = make_api(world)
    wrong = "shpat_not_the_right_token_123"
    with serve(api) as server, ShopifyClient(SHOP, wrong, base_url=server.base_url) as client:
        with pytest.raises(AuthenticationError) as info:
            client.get_shop()
        assert client.stats.retries == 0
    assert wrong not in str(info.value)


def test_bad_request_raises_invalid_request_error(world: SandboxWorld) -> None:
    api = make_api(world)
    api.inject("bad_request", path_contains="orders.json")
    with pytest.raises(InvalidRequestError, match="updated_at_min is invalid"):
        pull(api)


def test_renamed_field_raises_schema_drift_naming_total_price(world: SandboxWorld) -> None:
    api = make_api(world)
    api.inject("renamed_field", path_contains="orders.json", skip=1)
    with pytest.raises(SchemaDriftError, match=r"\['total_price'\]"):
        pull(api)


@pytest.mark.parametrize(
    ("knobs", "status", "reason"),
    [
        ({"shop_state": "frozen"}, 402, "frozen"),
        ({"shop_state": "locked"}, 423, "locked"),
        ({"scopes": ()}, 403, "read_orders"),
    ],
)
def test_permission_problems_raise_permission_denied(
    world: SandboxWorld, knobs: dict[str, Any], status: int, reason: str
) -> None:
    api = make_api(world, **knobs)
    with pytest.raises(PermissionDeniedError, match=f"HTTP {status}.*{reason}") as info:
        pull(api)
    assert TOKEN not in str(info.value)


# ---- restatement ----------------------------------------------------------------------------


def a_refunded_order(world: SandboxWorld) -> dict[str, Any]:
    for day in daterange(date(2024, 5, 20), date(2024, 6, 1)):
        for order in world.orders_created(day):
            if order["refunded_at"] is not None:
                return order
    raise AssertionError("the world has no refunded order in the search range")


def test_refund_appears_only_once_as_of_passes_the_refund(world: SandboxWorld) -> None:
    order = a_refunded_order(world)
    tz = ZoneInfo("America/New_York")
    refunded_at: datetime = order["refunded_at"]
    since, until = order["created_at"].date(), refunded_at.astimezone(tz).date()
    rows = {}
    for label, as_of in (("before", refunded_at - timedelta(hours=1)), ("after", refunded_at)):
        frame, _ = pull(make_api(world, as_of=as_of), since, until)
        match = frame[frame["order_id"] == order["id"]]
        assert len(match) == 1, label
        rows[label] = match.iloc[0]
    before, after = rows["before"], rows["after"]
    assert before["financial_status"] == "paid"
    assert json.loads(before["refunds"]) == []
    assert datetime.fromisoformat(before["updated_at"]) < refunded_at
    assert after["financial_status"] == "refunded"
    assert datetime.fromisoformat(after["updated_at"]) == refunded_at
    assert after["partition_date"] == until
    (refund,) = json.loads(after["refunds"])
    assert refund["transactions"][0]["amount"] == after["total_price"]
    assert refund["transactions"][0]["kind"] == "refund"


# ---- secrets ----------------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "cfap_orchestration"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog


def test_token_never_logged_or_raised(
    world: SandboxWorld, debug_logs: pytest.LogCaptureFixture
) -> None:
    api = make_api(world)
    api.inject("rate_limit", path_contains="orders.json", retry_after=0.01)
    api.inject("expired_token", path_contains="orders.json", skip=3)
    with pytest.raises(AuthenticationError) as info:
        pull(api)
    assert "retrying" in debug_logs.text  # the retry was logged, with its error text
    assert "HTTP Request: GET" in debug_logs.text  # httpx's own DEBUG/INFO lines were captured
    assert TOKEN not in debug_logs.text
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
