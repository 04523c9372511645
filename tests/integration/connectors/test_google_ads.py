"""GoogleAdsClient against the fake Google Ads API over a real 127.0.0.1 socket (and in-process)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    PermissionDeniedError,
    SchemaDriftError,
)
from cfap_orchestration.connectors.google_ads import (
    CAMPAIGN_STATS_COLUMNS,
    CAMPAIGN_STATS_PRIMARY_KEY,
    GEO_STATS_COLUMNS,
    GEO_STATS_PRIMARY_KEY,
    GoogleAdsClient,
)
from cfap_orchestration.connectors.http import RetryPolicy
from cfap_orchestration.sandbox.fake_apis.base import RunningServer, serve
from cfap_orchestration.sandbox.fake_apis.google_ads import GoogleAdsFakeApi
from cfap_orchestration.sandbox.world import SandboxWorld, WorldConfig, daterange

CID = "4817263544"
AS_OF = datetime(2025, 4, 25, 12, 0, tzinfo=UTC)
SINCE, UNTIL = date(2025, 3, 3), date(2025, 4, 20)
FAST = RetryPolicy(initial_wait=0.01, max_wait=0.5, timeout=1.0)
SECRETS = {
    "token": "1//0gRefreshSECRET-abc123",
    "developer_token": "DevTokSECRET-xyz789",
    "client_secret": "GOCSPX-ClientSECRET-qrs456",
}
METRICS = (
    "metrics_impressions",
    "metrics_clicks",
    "metrics_cost_micros",
    "metrics_conversions",
    "metrics_conversions_value",
)


@pytest.fixture(scope="module")
def world() -> SandboxWorld:
    return SandboxWorld(WorldConfig(n_customers=2000))


@pytest.fixture
def api(world: SandboxWorld) -> GoogleAdsFakeApi:
    return GoogleAdsFakeApi(world, as_of=AS_OF, batch_size=25, **SECRETS)


@pytest.fixture
def server(api: GoogleAdsFakeApi) -> Iterator[RunningServer]:
    with serve(api) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(
    api: GoogleAdsFakeApi, server: RunningServer, sleeps: list[float]
) -> Iterator[Callable[..., GoogleAdsClient]]:
    clients: list[GoogleAdsClient] = []

    def make(**overrides: Any) -> GoogleAdsClient:
        kwargs: dict[str, Any] = {
            **api.credentials(),
            "base_url": server.base_url,
            "token_url": server.base_url + "/token",
            "retry": FAST,
            "sleep": sleeps.append,
            "chunk_days": 20,
            **overrides,
        }
        client = GoogleAdsClient(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def world_rows(world: SandboxWorld, since: date, until: date) -> pd.DataFrame:
    frames = [world.ad_report(day) for day in daterange(since, min(until, AS_OF.date()))]
    report = pd.concat(frames, ignore_index=True)
    report = report[report["platform"] == "google_ads"].copy()
    maturity = [world.conversion_maturity((AS_OF.date() - d).days, 14) for d in report["date"]]
    report["reported_conversions"] = report["conversions"] * maturity
    return report


def cost(frame: pd.DataFrame) -> float:
    return frame["metrics_cost_micros"].astype("int64").sum() / 1e6


def searchstream_calls(api: GoogleAdsFakeApi) -> int:
    return sum(1 for r in api.requests if r.url.path.endswith(":searchStream"))


# ---- completeness ----------------------------------------------------------------------


def test_multi_batch_stream_is_complete(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi, world: SandboxWorld
) -> None:
    client = connect()
    geo = client.fetch_geo_stats(CID, SINCE, UNTIL)
    campaign = client.fetch_campaign_stats(CID, SINCE, UNTIL)
    truth = world_rows(world, SINCE, UNTIL)

    assert tuple(geo.columns) == GEO_STATS_COLUMNS
    assert tuple(campaign.columns) == CAMPAIGN_STATS_COLUMNS
    assert len(geo) == len(truth)
    assert len(campaign) == len(truth.groupby(["date", "campaign_id"]))
    assert not geo.duplicated(list(GEO_STATS_PRIMARY_KEY)).any()
    assert not campaign.duplicated(list(CAMPAIGN_STATS_PRIMARY_KEY)).any()
    assert cost(geo) == pytest.approx(truth["spend"].sum(), abs=1e-6)
    assert cost(campaign) == pytest.approx(truth["spend"].sum(), abs=1e-6)
    assert geo["metrics_impressions"].astype(int).sum() == truth["impressions"].sum()
    assert campaign["metrics_clicks"].astype(int).sum() == truth["clicks"].sum()
    assert geo["metrics_conversions"].sum() == pytest.approx(truth["reported_conversions"].sum())
    assert campaign["metrics_conversions"].sum() == pytest.approx(geo["metrics_conversions"].sum())
    # Immature days show fractional conversions, as Google's do.
    assert (campaign["metrics_conversions"] % 1 != 0).any()

    # Wire shapes kept: int64 as strings, python dates, currency and time zone carried.
    assert all(isinstance(v, str) for v in geo["metrics_cost_micros"])
    assert all(isinstance(v, date) for v in geo["partition_date"])
    assert set(geo["customer_currency_code"]) == {"USD"}
    assert set(geo["geographic_view_location_type"]) == {"LOCATION_OF_PRESENCE"}
    assert geo["partition_date"].min() == SINCE and geo["partition_date"].max() == UNTIL

    # Three 20-day chunks per frame, each streamed in several 25-row batches.
    assert searchstream_calls(api) == 6
    assert client.stats.pages > 6 * 3
    assert client.stats.retries == 0


def test_no_data_after_as_of(connect: Callable[..., GoogleAdsClient]) -> None:
    frame = connect().fetch_campaign_stats(CID, date(2025, 4, 20), date(2025, 5, 10))
    assert frame["partition_date"].max() == AS_OF.date()


def test_empty_range_keeps_the_columns(connect: Callable[..., GoogleAdsClient]) -> None:
    frame = connect().fetch_geo_stats(CID, date(2025, 6, 1), date(2025, 6, 3))
    assert frame.empty and tuple(frame.columns) == GEO_STATS_COLUMNS


def test_omitted_zero_rows_are_not_invented(
    connect: Callable[..., GoogleAdsClient], world: SandboxWorld
) -> None:
    experiment = next(e for e in world.experiments_for_year(2025) if e.platform == "google_ads")
    start, end = experiment.start, min(experiment.end, AS_OF.date())
    client = connect()
    geo = client.fetch_geo_stats(CID, start, end)

    criterion = {r.geo_id: f"geoTargetConstants/{r.google_criterion_id}" for r in world.regions}
    holdout = {criterion[g] for g in experiment.holdout_geos}
    us = {criterion[r.geo_id] for r in world.regions if r.country == "US"}
    seen = set(geo["segments_geo_target_region"])
    assert holdout and not holdout & seen
    assert seen == us - holdout
    all_zero = (geo[list(METRICS)].astype(float) == 0).all(axis=1)
    assert not all_zero.any()

    # Zero-valued metrics are left out of the JSON; the frame restores them, no drift.
    raw = client.search_stream(
        CID,
        "SELECT campaign.id, segments.date, segments.geo_target_region, metrics.cost_micros, "
        "metrics.conversions FROM geographic_view "
        f"WHERE segments.date BETWEEN '{start}' AND '{end}'",
    )
    assert len(raw) == len(geo)
    assert any("conversions" not in row["metrics"] for row in raw)
    assert (geo["metrics_conversions"] == 0.0).any()


def test_in_process_transport_matches_socket(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    over_socket = connect().fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 10))
    with GoogleAdsClient(**api.credentials(), transport=api.transport(), retry=FAST) as client:
        assert client.list_accessible_customers() == [CID]
        in_process = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 10))
    pd.testing.assert_frame_equal(in_process, over_socket)
    hosts = {r.url.host for r in api.requests}
    assert {"oauth2.googleapis.com", "googleads.googleapis.com"} <= hosts


# ---- auth ------------------------------------------------------------------------------


def test_expired_access_token_is_refreshed_once(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    client = connect()
    clean = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 10))
    assert api.token_requests() == 1

    api.inject("expired_token", path_contains="searchStream")
    again = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 10))
    assert api.token_requests() == 2

    api.expire_access_tokens()  # the real thing: every issued token stops working
    third = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 10))
    assert api.token_requests() == 3
    pd.testing.assert_frame_equal(again, clean)
    pd.testing.assert_frame_equal(third, clean)


def test_second_401_raises_authentication_error(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    api.inject("expired_token", path_contains="searchStream", times=2)
    with pytest.raises(AuthenticationError, match="UNAUTHENTICATED") as excinfo:
        connect().fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 2))
    assert "refreshed access token was rejected" in str(excinfo.value)
    assert api.token_requests() == 2


@pytest.mark.parametrize("how", ["wrong_token", "revoked"])
def test_revoked_refresh_token_raises(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi, how: str
) -> None:
    if how == "revoked":
        api.revoke_refresh_token()
        client = connect()
    else:
        client = connect(refresh_token="1//0gNotTheRightOne")
    with pytest.raises(AuthenticationError, match="invalid_grant") as excinfo:
        client.fetch_geo_stats(CID, date(2025, 4, 1), date(2025, 4, 2))
    assert "Token has been expired or revoked" in str(excinfo.value)
    assert searchstream_calls(api) == 0
    assert client.stats.retries == 0


def test_wrong_developer_token_and_customer_are_permission_errors(
    connect: Callable[..., GoogleAdsClient],
) -> None:
    with pytest.raises(PermissionDeniedError, match="DEVELOPER_TOKEN_NOT_APPROVED"):
        connect(developer_token="NotApprovedDevToken").list_accessible_customers()
    with pytest.raises(PermissionDeniedError, match="USER_PERMISSION_DENIED"):
        connect().fetch_campaign_stats("123-456-7890", date(2025, 4, 1), date(2025, 4, 2))


# ---- retryable faults --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["searchStream", "listAccessibleCustomers", "/token"], ids=["array", "object", "oauth"]
)
def test_rate_limit_honours_retry_delay(
    connect: Callable[..., GoogleAdsClient],
    api: GoogleAdsFakeApi,
    sleeps: list[float],
    path: str,
) -> None:
    api.inject("rate_limit", path_contains=path, retry_after=0.05)
    client = connect()
    assert client.list_accessible_customers() == [CID]
    frame = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 3))
    assert len(frame) > 0
    assert sleeps == [0.05]
    assert client.stats.retries == 1
    assert client.stats.retry_reasons == {"RateLimitedError": 1}


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_survived(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi, status: int
) -> None:
    client = connect()
    clean = client.fetch_geo_stats(CID, date(2025, 4, 1), date(2025, 4, 5))
    api.inject("server_error", path_contains="searchStream", status=status, times=2)
    again = client.fetch_geo_stats(CID, date(2025, 4, 1), date(2025, 4, 5))
    pd.testing.assert_frame_equal(again, clean)
    assert client.stats.retry_reasons == {"TransientApiError": 2}


def test_timeout_is_survived(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    client = connect()
    clean = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 5))
    api.inject("timeout", path_contains="searchStream", delay=FAST.timeout + 0.2)
    again = client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 5))
    pd.testing.assert_frame_equal(again, clean)
    assert client.stats.retry_reasons == {"TransientApiError": 1}


def test_truncated_stream_is_survived(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    client = connect()
    clean = client.fetch_geo_stats(CID, SINCE, UNTIL)
    api.inject("truncated", path_contains="searchStream", skip=1)
    again = client.fetch_geo_stats(CID, SINCE, UNTIL)
    pd.testing.assert_frame_equal(again, clean)
    assert client.stats.retries == 1


# ---- non-retryable ---------------------------------------------------------------------


def test_bad_gaql_raises_invalid_request_with_api_message(
    connect: Callable[..., GoogleAdsClient],
) -> None:
    client = connect()
    query = (
        "SELECT campaign.id, metrics.cost_microz FROM campaign "
        "WHERE segments.date BETWEEN '2025-04-01' AND '2025-04-02'"
    )
    with pytest.raises(InvalidRequestError) as excinfo:
        client.search_stream(CID, query)
    message = str(excinfo.value)
    assert "queryError=UNRECOGNIZED_FIELD" in message
    assert "Unrecognized field in the query: 'metrics.cost_microz'." in message
    assert client.stats.retries == 0


def test_bad_request_fault_raises_invalid_request(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    api.inject("bad_request", path_contains="searchStream")
    client = connect()
    with pytest.raises(InvalidRequestError, match="INVALID_ARGUMENT"):
        client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 2))
    assert client.stats.retries == 0


def test_renamed_field_raises_schema_drift(
    connect: Callable[..., GoogleAdsClient], api: GoogleAdsFakeApi
) -> None:
    api.inject("renamed_field", path_contains="searchStream")
    with pytest.raises(SchemaDriftError) as excinfo:
        connect().fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 2))
    message = str(excinfo.value)
    assert "'metrics.costMicrosV2'" in message
    assert "'metrics.costMicros'" in message


# ---- secrets ---------------------------------------------------------------------------


def test_secrets_never_logged_or_raised(
    connect: Callable[..., GoogleAdsClient],
    api: GoogleAdsFakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = connect()
    api.inject("rate_limit", path_contains="searchStream", retry_after=0.05)
    api.inject("expired_token", path_contains="searchStream", skip=1)
    api.inject("server_error", path_contains="searchStream", status=503, skip=2)
    client.fetch_geo_stats(CID, date(2025, 4, 1), date(2025, 4, 20))
    errors: list[ConnectorError] = []
    api.inject("expired_token", path_contains="searchStream", times=2)
    api.inject("bad_request", path_contains="listAccessible")
    for call in (
        lambda: client.fetch_campaign_stats(CID, date(2025, 4, 1), date(2025, 4, 2)),
        client.list_accessible_customers,
        lambda: connect(refresh_token="1//0gWrongSECRET").list_accessible_customers(),
        lambda: connect(developer_token="OtherDevSECRET").list_accessible_customers(),
    ):
        with pytest.raises(ConnectorError) as excinfo:
            call()
        errors.append(excinfo.value)

    assert len(api.issued_access_tokens) >= 3
    assert "retrying" in caplog.text  # the retries were logged, so there was text to leak
    leaks = [
        *SECRETS.values(),
        *api.issued_access_tokens,
        "1//0gWrongSECRET",
        "OtherDevSECRET",
    ]
    texts = [caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors)]
    for secret in leaks:
        for text in texts:
            assert secret not in text
