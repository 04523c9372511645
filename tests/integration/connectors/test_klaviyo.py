"""KlaviyoClient against the fake Klaviyo JSON:API, over a real 127.0.0.1 socket."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    PermissionDeniedError,
    SchemaDriftError,
)
from cfap_orchestration.connectors.http import RetryPolicy
from cfap_orchestration.connectors.klaviyo import (
    CAMPAIGN_COLUMNS,
    CAMPAIGN_PRIMARY_KEY,
    DEFAULT_EVENT_METRICS,
    DEFAULT_REVISION,
    EVENT_COLUMNS,
    EVENT_PRIMARY_KEY,
    FLOW_COLUMNS,
    HOLDOUT_PROFILE_COLUMNS,
    HOLDOUT_PROFILE_PRIMARY_KEY,
    METRIC_COLUMNS,
    KlaviyoClient,
)
from cfap_orchestration.sandbox.fake_apis.base import RunningServer, serve
from cfap_orchestration.sandbox.fake_apis.klaviyo import KlaviyoFakeApi
from cfap_orchestration.sandbox.world import MessageSend, SandboxWorld, WorldConfig, daterange

API_KEY = "pk_sandbox_7f3e9c1a2b4d6e8f0a1b"
AS_OF = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
SINCE, UNTIL = date(2025, 1, 6), date(2025, 2, 16)  # six weeks of campaigns
EV_SINCE, EV_UNTIL = date(2025, 1, 6), date(2025, 1, 19)  # two weeks of events
FAST = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.5, timeout=1.0)
HEADERS = {
    "Authorization": f"Klaviyo-API-Key {API_KEY}",
    "revision": DEFAULT_REVISION,
    "accept": "application/vnd.api+json",
}


@pytest.fixture(scope="module")
def world() -> SandboxWorld:
    return SandboxWorld(WorldConfig(n_customers=2000))


@pytest.fixture
def api(world: SandboxWorld) -> KlaviyoFakeApi:
    return KlaviyoFakeApi(world, token=API_KEY, as_of=AS_OF, campaign_page_size=3)


@pytest.fixture
def server(api: KlaviyoFakeApi) -> Iterator[RunningServer]:
    with serve(api) as running:
        yield running


def client_for(server: RunningServer, **options: Any) -> KlaviyoClient:
    options.setdefault("retry", FAST)
    options.setdefault("api_key", API_KEY)
    return KlaviyoClient(base_url=server.base_url, **options)


# ---- what the world says --------------------------------------------------------------


def utc_date(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def world_campaigns(world: SandboxWorld, since: date, until: date) -> list[MessageSend]:
    return [
        send
        for day in daterange(since - timedelta(days=1), until + timedelta(days=1))
        for send in world.message_sends(day)
        if send.kind == "campaign"
        and since <= utc_date(send.sent_at) <= until
        and send.sent_at <= AS_OF
    ]


def world_subscriber_orders(world: SandboxWorld, since: date, until: date) -> list[dict]:
    cust = world.customers
    subscribed = (cust["email_subscribed"] | cust["sms_subscribed"]).to_numpy()
    return [
        order
        for day in daterange(since - timedelta(days=1), until + timedelta(days=1))
        for order in world.orders_created(day)
        if since <= utc_date(order["created_at"]) <= until
        and order["created_at"] <= AS_OF
        and subscribed[order["customer_idx"]]
    ]


def profile_ids(world: SandboxWorld, rows: np.ndarray) -> set[str]:
    return set(world.customers["profile_id"].to_numpy()[rows].tolist())


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def props(frame: pd.DataFrame) -> pd.Series:
    return frame["event_properties"].map(json.loads)


# ---- campaigns, flows, metrics ---------------------------------------------------------


def test_campaigns_match_the_world_across_pages(
    world: SandboxWorld, api: KlaviyoFakeApi, server: RunningServer
) -> None:
    with client_for(server) as client:
        frame = client.fetch_campaigns(SINCE, UNTIL)
        stats = client.stats

    expected = {s.campaign_id: s for s in world_campaigns(world, SINCE, UNTIL)}
    assert tuple(frame.columns) == CAMPAIGN_COLUMNS
    assert not frame.duplicated(list(CAMPAIGN_PRIMARY_KEY)).any()
    assert set(frame["campaign_id"]) == set(expected)
    assert set(frame["channel"]) == {"email", "sms"}
    assert stats.pages > 2  # three campaigns a page: the email listing alone needs two
    for row in records(frame):
        send = expected[row["campaign_id"]]
        assert row["channel"] == send.channel
        assert row["partition_date"] == utc_date(send.sent_at)
        assert datetime.fromisoformat(row["send_time"]) == send.sent_at
        assert json.loads(row["excluded_audiences"]) == [send.holdout_segment_id]
        assert json.loads(row["included_audiences"]) == [send.audience_list_id]
        assert json.loads(row["message_ids"]) == [send.message_id]
        assert row["status"] == "Sent" and row["archived"] is False
    # every request carried the pinned revision and the JSON:API accept header
    assert all(r.headers["revision"] == DEFAULT_REVISION for r in api.requests)
    assert all(r.headers["accept"] == "application/vnd.api+json" for r in api.requests)


def test_flows_are_partitioned_by_their_last_update(
    world: SandboxWorld, server: RunningServer
) -> None:
    updated = {
        flow["flow_id"]: world.flow_updated(flow, AS_OF) for _, flow in world.flows.iterrows()
    }
    first, last = min(updated.values()).date(), max(updated.values()).date()
    with client_for(server) as client:
        frame = client.fetch_flows(first, last)
        before = client.fetch_flows(first - timedelta(days=30), first - timedelta(days=1))

    assert tuple(frame.columns) == FLOW_COLUMNS
    assert dict(
        zip(frame["flow_id"], frame["updated"].map(datetime.fromisoformat), strict=True)
    ) == (updated)
    assert list(frame["partition_date"]) == [
        datetime.fromisoformat(u).date() for u in frame["updated"]
    ]
    assert set(frame["status"]) == {"live"}
    assert before.empty and tuple(before.columns) == FLOW_COLUMNS


def test_metrics_list_the_five_metrics(server: RunningServer) -> None:
    with client_for(server) as client:
        frame = client.fetch_metrics()
    assert tuple(frame.columns) == METRIC_COLUMNS
    names = dict(zip(frame["name"], frame["integration_name"], strict=True))
    assert set(names) == set(DEFAULT_EVENT_METRICS)
    assert names["Placed Order"] == "Shopify" and names["Received Email"] == "Klaviyo"
    assert all(len(m) == 6 for m in frame["metric_id"])


# ---- events ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def events(world: SandboxWorld) -> pd.DataFrame:
    """Two weeks of every default metric, pulled once over a socket."""
    api = KlaviyoFakeApi(world, token=API_KEY, as_of=AS_OF)
    with serve(api) as running, client_for(running) as client:
        frame = client.fetch_events(EV_SINCE, EV_UNTIL)
        assert client.stats.pages > len(DEFAULT_EVENT_METRICS)  # some metric needed 2+ pages
    return frame


def test_events_frame_shape_and_keys(events: pd.DataFrame) -> None:
    assert tuple(events.columns) == EVENT_COLUMNS
    assert not events.duplicated(list(EVENT_PRIMARY_KEY)).any()
    assert set(events["metric_name"]) == set(DEFAULT_EVENT_METRICS)
    assert events["partition_date"].between(EV_SINCE, EV_UNTIL).all()
    parsed = events["datetime"].map(lambda s: datetime.fromisoformat(s).date())
    assert (parsed == events["partition_date"]).all()
    assert events.groupby("metric_name")["metric_id"].nunique().eq(1).all()


def test_received_email_and_sms_equal_each_sends_treated_group(
    world: SandboxWorld, events: pd.DataFrame
) -> None:
    received = events[events["metric_name"].isin(["Received Email", "Received SMS"])]
    by_message = received.groupby(props(received).map(lambda p: p["$message"]))
    sends = world_campaigns(world, EV_SINCE, EV_UNTIL)
    assert {s.channel for s in sends} == {"email", "sms"}
    for send in sends:
        group = by_message.get_group(send.message_id)
        assert len(group) == len(send.treated)
        assert set(group["profile_id"]) == profile_ids(world, send.treated)
        metric = "Received Email" if send.channel == "email" else "Received SMS"
        assert set(group["metric_name"]) == {metric}
        assert (group["partition_date"] == utc_date(send.sent_at)).all()


def test_flow_receipts_carry_the_flow_and_are_spread_over_the_day(
    world: SandboxWorld, events: pd.DataFrame
) -> None:
    received = events[events["metric_name"] == "Received Email"]
    flow_rows = received[received["flow_id"].notna()]
    for flow_id in world.flows["flow_id"]:

        def treated(days: Any, fid: str = flow_id) -> int:
            return sum(
                len(s.treated) for d in days for s in world.message_sends(d) if s.campaign_id == fid
            )

        n = int((flow_rows["flow_id"] == flow_id).sum())
        assert treated(daterange(EV_SINCE, EV_UNTIL - timedelta(days=1))) <= n
        assert n <= treated(daterange(EV_SINCE - timedelta(days=1), EV_UNTIL))
    assert flow_rows["timestamp"].map(lambda t: t % 86_400).nunique() > 20


def test_placed_orders_match_the_worlds_subscriber_orders(
    world: SandboxWorld, events: pd.DataFrame
) -> None:
    orders = world_subscriber_orders(world, EV_SINCE, EV_UNTIL)
    placed = events[events["metric_name"] == "Placed Order"]
    placed_props = props(placed)
    assert len(placed) == len(orders) > 0
    assert sorted(placed_props.map(lambda p: p["$event_id"])) == sorted(
        str(o["id"]) for o in orders
    )
    assert placed["value"].sum() == pytest.approx(sum(o["total"] for o in orders))
    assert (placed["value"] == placed_props.map(lambda p: p["$value"])).all()


def test_placed_order_attribution_is_last_touch_within_the_window(
    world: SandboxWorld, events: pd.DataFrame
) -> None:
    placed = events[events["metric_name"] == "Placed Order"]
    attributed = placed[placed["attributed_message_id"].notna()]
    assert 0 < len(attributed) < len(placed)
    sends = {
        s.message_id: s
        for d in daterange(EV_SINCE - timedelta(days=7), EV_UNTIL)
        for s in world.message_sends(d)
        if s.kind == "campaign"
    }
    profile_to_idx = {p: i for i, p in enumerate(world.customers["profile_id"])}
    checked = 0
    for row in records(attributed):
        p = json.loads(row["event_properties"])
        send = sends.get(row["attributed_message_id"])
        if send is None:  # a flow message
            assert p["$attributed_flow"] == row["flow_id"]
            continue
        window = 5 * 86_400 if send.channel == "email" else 86_400
        assert p["$attributed_channel"] == send.channel
        assert profile_to_idx[row["profile_id"]] in set(send.treated.tolist())
        assert 0 <= row["timestamp"] - send.sent_at.timestamp() <= window
        checked += 1
    assert checked > 0


def test_events_after_as_of_do_not_exist(world: SandboxWorld, server: RunningServer) -> None:
    with client_for(server) as client:
        frame = client.fetch_events(
            AS_OF.date() - timedelta(days=1), AS_OF.date() + timedelta(days=3), ("Placed Order",)
        )
    assert len(frame) > 0
    assert frame["timestamp"].max() <= AS_OF.timestamp()
    assert len(frame) == len(
        world_subscriber_orders(world, AS_OF.date() - timedelta(days=1), AS_OF.date())
    )


def test_events_page_by_cursor_without_loss_or_duplicates(api: KlaviyoFakeApi) -> None:
    """Small pages through links.next give exactly the rows of the big pages, in order."""
    http = httpx.Client(
        base_url="https://a.klaviyo.com", transport=api.transport(), headers=HEADERS
    )
    query = (
        "and(greater-or-equal(datetime,2025-01-07T00:00:00Z),"
        "less-than(datetime,2025-01-08T00:00:00Z))"
    )

    def walk(size: int) -> tuple[list[str], int]:
        ids: list[str] = []
        url: str | None = f"/api/events?filter={query}&sort=datetime&page[size]={size}"
        pages = 0
        while url:
            body = http.get(url).json()
            ids += [e["id"] for e in body["data"]]
            url, pages = body["links"]["next"], pages + 1
        return ids, pages

    small, small_pages = walk(37)
    big, _ = walk(200)
    assert small == big and len(set(small)) == len(small) > 200
    assert small_pages == -(-len(small) // 37)


# ---- holdouts ---------------------------------------------------------------------------


def test_holdout_profiles_equal_each_campaigns_holdout(
    world: SandboxWorld, server: RunningServer
) -> None:
    with client_for(server) as client:
        campaigns = client.fetch_campaigns(SINCE, UNTIL)
        frame = client.fetch_holdout_profiles(campaigns)
    assert tuple(frame.columns) == HOLDOUT_PROFILE_COLUMNS
    assert not frame.duplicated(list(HOLDOUT_PROFILE_PRIMARY_KEY)).any()
    sends = {s.campaign_id: s for s in world_campaigns(world, SINCE, UNTIL)}
    groups = frame.groupby("campaign_id")
    assert set(groups.groups) == set(sends)
    for campaign_id, group in groups:
        send = sends[str(campaign_id)]
        assert len(group) == len(send.holdout)
        assert set(group["profile_id"]) == profile_ids(world, send.holdout)
        assert set(group["segment_id"]) == {send.holdout_segment_id}
        assert set(group["partition_date"]) == {utc_date(send.sent_at)}


def test_segment_profiles_page_by_100(world: SandboxWorld) -> None:
    big_world = SandboxWorld(WorldConfig(n_customers=12_000))
    send = world_campaigns(big_world, SINCE, UNTIL)[0]
    assert len(send.holdout) > 100
    api = KlaviyoFakeApi(big_world, token=API_KEY, as_of=AS_OF)
    with serve(api) as running, client_for(running) as client:
        frame = client.fetch_segment_profiles(str(send.holdout_segment_id))
        assert client.stats.pages == -(-len(send.holdout) // 100)
    assert set(frame["profile_id"]) == profile_ids(big_world, send.holdout)
    assert frame["email"].str.endswith("@example.com").all()


# ---- faults -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(world: SandboxWorld) -> pd.DataFrame:
    api = KlaviyoFakeApi(world, token=API_KEY, as_of=AS_OF)
    with serve(api) as running, client_for(running) as client:
        return fetch_two_pages(client)


def fetch_two_pages(client: KlaviyoClient) -> pd.DataFrame:
    """A campaign day's receipts: two pages of 200."""
    return client.fetch_events(date(2025, 1, 7), date(2025, 1, 7), ("Received Email",))


@pytest.mark.parametrize(
    ("kind", "knobs", "reason"),
    [
        ("rate_limit", {"retry_after": 0.05}, "RateLimitedError"),
        ("server_error", {"status": 500}, "TransientApiError"),
        ("server_error", {"status": 503}, "TransientApiError"),
        ("timeout", {"delay": 1.2}, "TransientApiError"),
        ("truncated", {}, "TransientApiError"),
    ],
)
def test_retryable_faults_on_the_second_page_are_survived(
    api: KlaviyoFakeApi,
    server: RunningServer,
    baseline: pd.DataFrame,
    kind: Any,
    knobs: dict[str, Any],
    reason: str,
) -> None:
    assert len(baseline) > 200
    api.inject(kind, path_contains="/api/events", skip=1, times=2, **knobs)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with client_for(server, sleep=sleep) as client:
        frame = fetch_two_pages(client)
        stats = client.stats
    pd.testing.assert_frame_equal(frame, baseline)
    assert stats.retries == 2 and stats.retry_reasons == {reason: 2}
    if kind == "rate_limit":
        assert waits == [0.05, 0.05]  # the server's Retry-After, not our backoff


def test_expired_key_raises_authentication_error(
    api: KlaviyoFakeApi, server: RunningServer
) -> None:
    api.inject("expired_token", path_contains="/api/events", skip=1)
    with client_for(server) as client, pytest.raises(AuthenticationError) as info:
        fetch_two_pages(client)
    assert "Missing or invalid private key" in str(info.value)
    assert "GET /api/events" in str(info.value)
    assert client.stats.retries == 0


def test_wrong_key_raises_authentication_error(server: RunningServer) -> None:
    client = client_for(server, api_key="pk_wrong_0000000000")
    with client, pytest.raises(AuthenticationError, match="401"):
        client.fetch_metrics()


def test_bad_request_raises_with_the_api_detail(api: KlaviyoFakeApi, server: RunningServer) -> None:
    api.inject("bad_request", path_contains="/api/campaigns")
    with client_for(server) as client, pytest.raises(InvalidRequestError) as info:
        client.fetch_campaigns(SINCE, UNTIL)
    assert "Invalid filter provided." in str(info.value)
    assert "400" in str(info.value)


def test_renamed_datetime_raises_schema_drift(api: KlaviyoFakeApi, server: RunningServer) -> None:
    api.inject("renamed_field", path_contains="/api/events", skip=1)
    with client_for(server) as client, pytest.raises(SchemaDriftError) as info:
        fetch_two_pages(client)
    assert "'datetime'" in str(info.value)
    assert "occurred_at" in str(info.value)


def test_missing_scope_raises_permission_denied(world: SandboxWorld) -> None:
    scopes = frozenset({"metrics:read", "campaigns:read"})
    api = KlaviyoFakeApi(world, token=API_KEY, as_of=AS_OF, scopes=scopes)
    with serve(api) as running:
        client = client_for(running)
        with client, pytest.raises(PermissionDeniedError, match="events:read"):
            fetch_two_pages(client)


def test_unknown_metric_and_segment_are_clear_errors(server: RunningServer) -> None:
    with client_for(server) as client:
        with pytest.raises(InvalidRequestError, match="Placed Orders"):
            client.fetch_events(EV_SINCE, EV_UNTIL, ("Placed Orders",))
        with pytest.raises(InvalidRequestError, match=r"404.*ZZZZZZ does not exist"):
            client.fetch_segment_profiles("ZZZZZZ")


def test_invalid_revision_is_rejected(server: RunningServer) -> None:
    client = client_for(server, revision="latest")
    with client, pytest.raises(InvalidRequestError, match="Missing or invalid revision header"):
        client.fetch_metrics()


def test_key_never_reaches_logs_or_errors(
    api: KlaviyoFakeApi, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for logger_name in ("httpx", "httpcore", "cfap_orchestration"):
        caplog.set_level(logging.DEBUG, logger=logger_name)
    api.inject("rate_limit", retry_after=0.05, path_contains="/api/events")
    api.inject("server_error", path_contains="/api/events", skip=1)
    api.inject("expired_token", path_contains="/api/metrics", skip=1)
    messages: list[str] = []
    with client_for(server) as client:
        fetch_two_pages(client)
        with pytest.raises(ConnectorError) as info:
            client.fetch_metrics()
        messages += [str(info.value), repr(info.value)]
    with client_for(server, revision="bad") as client, pytest.raises(ConnectorError) as info:
        client.fetch_metrics()
    messages += [str(info.value), repr(info.value)]
    assert caplog.records, "expected retry warnings and HTTP logs"
    assert "retrying" in caplog.text
    assert API_KEY not in caplog.text
    assert all(API_KEY not in m for m in messages)


# ---- transport and the fake's own contract -------------------------------------------------


def test_in_process_transport_gives_the_same_data(
    api: KlaviyoFakeApi, baseline: pd.DataFrame
) -> None:
    with KlaviyoClient(API_KEY, transport=api.transport(), retry=FAST) as client:
        frame = fetch_two_pages(client)
        campaigns = client.fetch_campaigns(SINCE, UNTIL)
    pd.testing.assert_frame_equal(frame, baseline)
    assert len(campaigns) > 0
    assert all(str(r.url).startswith("https://a.klaviyo.com/api/") for r in api.requests)


def test_fake_speaks_jsonapi_errors_and_rate_headers(api: KlaviyoFakeApi) -> None:
    http = httpx.Client(
        base_url="https://a.klaviyo.com", transport=api.transport(), headers=HEADERS
    )
    ok = http.get("/api/metrics")
    assert ok.headers["content-type"] == "application/vnd.api+json"
    assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(ok.headers)

    no_channel = http.get(
        "/api/campaigns", params={"filter": "greater-than(scheduled_at,2025-01-01)"}
    )
    assert no_channel.status_code == 400
    assert "channel filter is required" in no_channel.json()["errors"][0]["detail"]

    for bad in ("equals(colour,'red')", "and(equals(metric_id,'x')", "less-than(datetime,soon)"):
        response = http.get("/api/events", params={"filter": bad})
        error = response.json()["errors"][0]
        assert (response.status_code, error["detail"]) == (400, "Invalid filter provided.")

    assert http.get("/api/events", params={"page[size]": "500"}).status_code == 400
    missing = http.get("/api/metrics", headers={"revision": ""})
    assert missing.json()["errors"][0]["detail"] == "Missing or invalid revision header"

    api.inject("rate_limit", retry_after=2)
    throttled = http.get("/api/metrics")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"
    assert "ratelimit-remaining" not in throttled.headers
    assert throttled.json()["errors"][0]["code"] == "throttled"

    unauthorized = http.get("/api/metrics", headers={"Authorization": "Klaviyo-API-Key nope"})
    assert unauthorized.status_code == 401
    assert unauthorized.json()["errors"][0]["code"] == "not_authenticated"
