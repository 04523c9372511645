"""MetaAdsClient against the fake Meta Marketing API on a real 127.0.0.1 socket.

Covers the sync and async (report run) paths, paging, the region breakdown, every
fault kind, token hygiene and the in-process transport. Expected numbers come from
the sandbox world directly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pandas as pd
import pytest

from cfap_orchestration.connectors.errors import (
    AuthenticationError,
    ConnectorError,
    InvalidRequestError,
    ReportJobFailedError,
    SchemaDriftError,
)
from cfap_orchestration.connectors.http import RetryPolicy
from cfap_orchestration.connectors.meta_ads import (
    INSIGHTS_COLUMNS,
    INSIGHTS_PRIMARY_KEY,
    REGION_INSIGHTS_COLUMNS,
    REGION_INSIGHTS_PRIMARY_KEY,
    MetaAdsClient,
    date_windows,
)
from cfap_orchestration.sandbox.fake_apis.base import RunningServer, serve
from cfap_orchestration.sandbox.fake_apis.meta_ads import MetaAdsFakeApi
from cfap_orchestration.sandbox.world import SandboxWorld, WorldConfig, daterange

TOKEN = "EAAGm0PX4ZCpsBAMetaSecretToken9f8e7d"
US_ACCOUNT, EU_ACCOUNT = "1017263540", "1017263541"
AS_OF = datetime(2024, 6, 30, 15, 0, tzinfo=UTC)
SHORT = (date(2024, 6, 10), date(2024, 6, 14))  # 5 days: the sync path
LONG = (date(2024, 5, 1), date(2024, 6, 9))  # 40 days: two async report runs
FAST = RetryPolicy(initial_wait=0.01, max_wait=0.5, timeout=1.0)
WORLD = SandboxWorld(WorldConfig(n_customers=2000))

ClientFactory = Callable[..., MetaAdsClient]


@pytest.fixture
def api() -> MetaAdsFakeApi:
    return MetaAdsFakeApi(WORLD, token=TOKEN, as_of=AS_OF)


@pytest.fixture
def server(api: MetaAdsFakeApi) -> Iterator[RunningServer]:
    with serve(api) as running:
        yield running


@pytest.fixture
def make_client(server: RunningServer) -> Iterator[ClientFactory]:
    clients: list[MetaAdsClient] = []

    def factory(**kwargs: object) -> MetaAdsClient:
        options: dict[str, object] = {
            "base_url": server.base_url,
            "retry": FAST,
            "poll_interval": 0.0,
            "sleep": lambda _s: None,
        }
        options.update(kwargs)
        client = MetaAdsClient(str(options.pop("access_token", TOKEN)), **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def world_totals(account_id: str, since: date, until: date) -> pd.DataFrame:
    """What the world says Meta delivered: campaign x day sums."""
    frames = [WORLD.ad_report(day) for day in daterange(since, min(until, AS_OF.date()))]
    report = pd.concat(frames)
    report = report[report["account_id"] == account_id]
    grouped = report.groupby(["campaign_id", "date"])[["spend", "impressions", "clicks"]].sum()
    return grouped.reset_index()


def numeric(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["spend"] = out["spend"].astype(float)
    out["impressions"] = out["impressions"].astype(int)
    out["clicks"] = out["clicks"].astype(int)
    return out


def purchases(actions_json: str, action_type: str = "offsite_conversion.fb_pixel_purchase") -> int:
    for action in json.loads(actions_json):
        if action["action_type"] == action_type:
            return int(action["value"])
    return 0


def assert_matches_world(frame: pd.DataFrame, account_id: str, since: date, until: date) -> None:
    expected = world_totals(account_id, since, until)
    got = numeric(frame)
    assert len(got) == len(expected)
    assert not got.duplicated(list(INSIGHTS_PRIMARY_KEY)).any()
    assert got["spend"].sum() == pytest.approx(expected["spend"].sum(), abs=0.01)
    assert got["impressions"].sum() == expected["impressions"].sum()
    assert got["clicks"].sum() == expected["clicks"].sum()


# ---- happy paths --------------------------------------------------------------------


def test_accounts_are_listed_with_currency_and_time_zone(make_client: ClientFactory) -> None:
    client = make_client()
    accounts = {a["account_id"]: a for a in client.list_ad_accounts()}
    assert set(accounts) == {US_ACCOUNT, EU_ACCOUNT}
    assert accounts[EU_ACCOUNT]["id"] == f"act_{EU_ACCOUNT}"
    assert accounts[EU_ACCOUNT]["currency"] == "EUR"
    assert client.get_account(f"act_{US_ACCOUNT}")["timezone_name"] == "America/New_York"


def test_sync_fetch_matches_world(api: MetaAdsFakeApi, make_client: ClientFactory) -> None:
    client = make_client()
    frame = client.fetch_insights(US_ACCOUNT, *SHORT)

    assert tuple(frame.columns) == INSIGHTS_COLUMNS
    assert_matches_world(frame, US_ACCOUNT, *SHORT)
    assert not any(r.method == "POST" for r in api.requests)  # no report run for 5 days
    assert all(isinstance(d, date) for d in frame["partition_date"])
    assert (frame["partition_date"].astype(str) == frame["date_start"]).all()
    assert set(frame["account_timezone"]) == {"America/New_York"}
    assert set(frame["account_currency"]) == {"USD"}
    assert set(frame["attribution_windows"]) == {"7d_click,1d_view"}
    assert frame["spend"].str.fullmatch(r"\d+\.\d{2}").all()  # strings, as sent


def test_omni_purchase_repeats_the_pixel_purchase(make_client: ClientFactory) -> None:
    frame = make_client().fetch_insights(US_ACCOUNT, *SHORT)
    pixel = frame["actions"].map(purchases)
    omni = frame["actions"].map(lambda a: purchases(a, "omni_purchase"))
    assert pixel.sum() > 0
    assert (pixel == omni).all()  # the double-count trap the staging model must avoid
    windows = [a for row in frame["actions"] for a in json.loads(row)]
    split = [a for a in windows if a["action_type"] == "offsite_conversion.fb_pixel_purchase"]
    assert all(int(a["7d_click"]) + int(a["1d_view"]) == int(a["value"]) for a in split)


def test_recent_conversions_are_still_maturing(make_client: ClientFactory) -> None:
    client = make_client()
    old_day, recent_day = AS_OF.date() - timedelta(days=40), AS_OF.date() - timedelta(days=1)
    for day, full in ((old_day, True), (recent_day, False)):
        frame = client.fetch_insights(US_ACCOUNT, day, day)
        report = WORLD.ad_report(day)
        final = report.loc[report["account_id"] == US_ACCOUNT, "conversions"].sum()
        reported = frame["actions"].map(purchases).sum()
        assert (reported == final) if full else (reported < final)


def test_days_after_as_of_have_no_rows(make_client: ClientFactory) -> None:
    frame = make_client().fetch_insights(
        US_ACCOUNT, AS_OF.date() - timedelta(days=2), AS_OF.date() + timedelta(days=3)
    )
    assert frame["partition_date"].max() == AS_OF.date()


def test_multi_page_sync_is_complete_and_identical(make_client: ClientFactory) -> None:
    whole = make_client().fetch_insights(US_ACCOUNT, *SHORT)
    client = make_client(page_size=3)
    paged = client.fetch_insights(US_ACCOUNT, *SHORT)
    assert client.stats.pages >= len(whole) // 3
    pd.testing.assert_frame_equal(paged, whole)


def test_async_report_runs_match_the_sync_path(
    api: MetaAdsFakeApi, make_client: ClientFactory
) -> None:
    client = make_client(page_size=40)
    frame = client.fetch_insights(US_ACCOUNT, *LONG)

    posts = [r for r in api.requests if r.method == "POST"]
    assert len(posts) == 2  # 40 days in windows of at most 31
    assert all(job.polls >= api.polls_until_complete for job in api.jobs.values())
    assert client.stats.pages > 2  # the job results were paged too
    assert_matches_world(frame, US_ACCOUNT, *LONG)
    sync = make_client(async_threshold_days=1000).fetch_insights(US_ACCOUNT, *LONG)
    pd.testing.assert_frame_equal(frame, sync)


def test_date_windows_cover_the_range_without_overlap() -> None:
    windows = list(date_windows(date(2024, 1, 1), date(2024, 3, 1), 31))
    days = [d for start, end in windows for d in daterange(start, end)]
    assert days == list(daterange(date(2024, 1, 1), date(2024, 3, 1)))
    assert all((end - start).days < 31 for start, end in windows)


def test_region_breakdown_sums_to_campaign_rows(make_client: ClientFactory) -> None:
    client = make_client(page_size=50)
    regions = client.fetch_insights(EU_ACCOUNT, *LONG, breakdowns=("region",))
    campaigns = client.fetch_insights(EU_ACCOUNT, *LONG)

    assert tuple(regions.columns) == REGION_INSIGHTS_COLUMNS
    assert not regions.duplicated(list(REGION_INSIGHTS_PRIMARY_KEY)).any()
    assert "Bavaria" in set(regions["region"]) and "" not in set(regions["region"])
    key = list(INSIGHTS_PRIMARY_KEY)
    summed = numeric(regions).groupby(key)[["spend", "impressions", "clicks"]].sum()
    merged = numeric(campaigns).set_index(key).join(summed, rsuffix="_regions")
    assert len(summed) == len(campaigns)
    assert (merged["spend"] - merged["spend_regions"]).abs().max() < 0.005  # to the cent
    assert (merged["impressions"] == merged["impressions_regions"]).all()
    region_buys = regions["actions"].map(purchases).sum()
    campaign_buys = campaigns["actions"].map(purchases).sum()
    assert region_buys == pytest.approx(campaign_buys, rel=0.1)


def test_in_process_transport_serves_the_same_data(
    api: MetaAdsFakeApi, make_client: ClientFactory
) -> None:
    over_socket = make_client().fetch_insights(US_ACCOUNT, *SHORT)
    with MetaAdsClient(TOKEN, transport=api.transport(), retry=FAST) as client:
        in_process = client.fetch_insights(US_ACCOUNT, *SHORT)
        assert client.list_ad_accounts()[0]["id"] == f"act_{US_ACCOUNT}"
    pd.testing.assert_frame_equal(in_process, over_socket)


def test_usage_above_95_percent_paces_the_client() -> None:
    api = MetaAdsFakeApi(WORLD, token=TOKEN, as_of=AS_OF, usage_percent=97.0)
    pauses: list[float] = []
    with MetaAdsClient(TOKEN, transport=api.transport(), retry=FAST, sleep=pauses.append) as c:
        c.fetch_insights(US_ACCOUNT, *SHORT)
        assert pauses and all(p == FAST.max_wait for p in pauses)  # 60 s, capped by policy
        assert c.stats.waited_seconds >= 60


# ---- faults survived ----------------------------------------------------------------


@pytest.mark.parametrize("code", [4, 17, 613, 80000])
def test_body_coded_throttles_are_survived(
    code: int, api: MetaAdsFakeApi, make_client: ClientFactory
) -> None:
    baseline = make_client(page_size=5).fetch_insights(US_ACCOUNT, *SHORT)
    api.inject("rate_limit", code=code, times=2, skip=1, retry_after=0.05, path_contains="insights")
    client = make_client(page_size=5)
    frame = client.fetch_insights(US_ACCOUNT, *SHORT)
    assert client.stats.retries == 2
    assert client.stats.retry_reasons == {"RateLimitedError": 2}
    pd.testing.assert_frame_equal(frame, baseline)


def test_throttle_wait_honours_estimated_time_to_regain_access() -> None:
    api = MetaAdsFakeApi(WORLD, token=TOKEN, as_of=AS_OF)
    # 150 s -> the BUC header says 2 minutes, Retry-After says 150: the BUC hint wins.
    api.inject("rate_limit", code=80000, retry_after=150, path_contains="insights")
    waits: list[float] = []
    policy = RetryPolicy(initial_wait=0.01, max_wait=3600, timeout=1.0)
    with MetaAdsClient(TOKEN, transport=api.transport(), retry=policy, sleep=waits.append) as c:
        c.fetch_insights(US_ACCOUNT, *SHORT)
    assert waits == [120.0]


def test_throttle_while_polling_a_report_run_is_survived(
    api: MetaAdsFakeApi, make_client: ClientFactory
) -> None:
    baseline = make_client().fetch_insights(US_ACCOUNT, *LONG)
    run_ids = next(iter(api.jobs))[:10]  # a prefix every report run id shares
    api.inject("rate_limit", code=80000, retry_after=0.05, path_contains=f"/{run_ids}")
    api.inject("server_error", code=2, path_contains="/insights?", skip=1)
    client = make_client()
    frame = client.fetch_insights(US_ACCOUNT, *LONG)
    assert client.stats.retries == 2
    pd.testing.assert_frame_equal(frame, baseline)


@pytest.mark.parametrize(
    ("kind", "options", "reason"),
    [
        ("server_error", {"code": 1}, "TransientApiError"),
        ("server_error", {"code": 2, "status": 503}, "TransientApiError"),
        ("timeout", {"delay": 1.3}, "TransientApiError"),
        ("truncated", {}, "TransientApiError"),
    ],
)
def test_transient_faults_are_survived(
    kind: str,
    options: dict[str, object],
    reason: str,
    api: MetaAdsFakeApi,
    make_client: ClientFactory,
) -> None:
    baseline = make_client(page_size=2).fetch_insights(US_ACCOUNT, *SHORT)
    api.inject(kind, skip=2, path_contains="insights", **options)  # type: ignore[arg-type]
    client = make_client(page_size=2)
    frame = client.fetch_insights(US_ACCOUNT, *SHORT)
    assert client.stats.retries == 1
    assert client.stats.retry_reasons == {reason: 1}
    pd.testing.assert_frame_equal(frame, baseline)


# ---- faults raised ------------------------------------------------------------------


def test_expired_token_raises_at_once(api: MetaAdsFakeApi, make_client: ClientFactory) -> None:
    client = make_client()
    client.get_account(US_ACCOUNT)
    api.inject("expired_token", path_contains="insights")
    sent = len(api.requests)
    with pytest.raises(AuthenticationError, match=r"code 190/463.*Session has expired"):
        client.fetch_insights(US_ACCOUNT, *SHORT)
    assert len(api.requests) == sent + 1
    assert client.stats.retries == 0


def test_wrong_token_raises_authentication_error(make_client: ClientFactory) -> None:
    client = make_client(access_token="not-the-right-token")
    with pytest.raises(AuthenticationError, match="Refresh the access token"):
        client.list_ad_accounts()
    assert client.stats.retries == 0


def test_bad_parameter_raises_invalid_request(
    api: MetaAdsFakeApi, make_client: ClientFactory
) -> None:
    api.inject("bad_request", path_contains="insights")
    client = make_client()
    with pytest.raises(InvalidRequestError, match=r"code 100.*Invalid parameter"):
        client.fetch_insights(US_ACCOUNT, *SHORT)
    assert client.stats.retries == 0


def test_unknown_account_raises_invalid_request(make_client: ClientFactory) -> None:
    with pytest.raises(InvalidRequestError, match="act_999"):
        make_client().fetch_insights("act_999", *SHORT)


def test_unsupported_attribution_window_is_rejected_by_the_api(
    make_client: ClientFactory,
) -> None:
    client = make_client(attribution_windows=("90d_click",))
    with pytest.raises(InvalidRequestError, match="action_attribution_windows"):
        client.fetch_insights(US_ACCOUNT, *SHORT)


def test_renamed_spend_raises_schema_drift(api: MetaAdsFakeApi, make_client: ClientFactory) -> None:
    api.inject("renamed_field", path_contains="insights")
    with pytest.raises(SchemaDriftError, match="'spend'"):
        make_client().fetch_insights(US_ACCOUNT, *SHORT)


def test_failed_report_run_raises_with_job_account_and_range(make_client: ClientFactory) -> None:
    api = MetaAdsFakeApi(WORLD, token=TOKEN, as_of=AS_OF, fail_jobs=1)
    with serve(api) as running:
        client = make_client(base_url=running.base_url)
        with pytest.raises(ReportJobFailedError) as raised:
            client.fetch_insights(US_ACCOUNT, *LONG)
    (run_id,) = api.jobs
    message = str(raised.value)
    assert run_id in message and f"act_{US_ACCOUNT}" in message
    assert "2024-05-01..2024-05-31" in message and "Job Failed" in message


def test_report_run_that_never_finishes_times_out(make_client: ClientFactory) -> None:
    api = MetaAdsFakeApi(WORLD, token=TOKEN, as_of=AS_OF, polls_until_complete=10**9)
    with serve(api) as running:
        # The no-op sleep still counts as waited time, so 3 sleeps of 1 s reach the limit.
        client = make_client(base_url=running.base_url, poll_interval=1.0, job_timeout=3.0)
        with pytest.raises(ReportJobFailedError, match=r"did not finish within 3s") as raised:
            client.fetch_insights(US_ACCOUNT, *LONG)
    (job,) = api.jobs.values()
    assert job.polls >= 2 and job.run_id in str(raised.value)
    assert client.stats.waited_seconds >= 2.0


# ---- token hygiene ------------------------------------------------------------------


def test_token_never_reaches_logs_or_errors(
    api: MetaAdsFakeApi, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "cfap_orchestration"):
        caplog.set_level(logging.DEBUG, logger=name)
    api.inject("rate_limit", code=17, skip=1, retry_after=0.05, path_contains="insights")
    api.inject("server_error", skip=3, path_contains="insights")
    client = make_client(page_size=3)
    client.fetch_insights(US_ACCOUNT, *SHORT)

    followed = [r for r in api.requests if "after=" in str(r.url)]
    assert followed and all(f"access_token={TOKEN}" in str(r.url) for r in followed)
    api.inject("expired_token")
    with pytest.raises(ConnectorError) as raised:
        client.fetch_insights(US_ACCOUNT, *SHORT)

    assert client.stats.retries == 2
    assert "HTTP Request" in caplog.text  # httpx did log the URLs, redacted
    assert TOKEN not in caplog.text
    assert TOKEN not in str(raised.value) and TOKEN not in repr(raised.value)
    assert TOKEN not in json.dumps(client.stats.as_metadata())


def test_token_sent_as_bearer_header_or_form_body_is_accepted(
    api: MetaAdsFakeApi, server: RunningServer
) -> None:
    base = f"{server.base_url}/v21.0"
    time_range = json.dumps({"since": "2024-06-10", "until": "2024-06-11"})
    with httpx.Client(base_url=base) as http:
        bearer = http.get(f"/act_{US_ACCOUNT}", headers={"Authorization": f"Bearer {TOKEN}"})
        form = http.post(
            f"/act_{US_ACCOUNT}/insights",
            data={"access_token": TOKEN, "time_range": time_range, "fields": "spend"},
        )
    assert bearer.json() == {"id": f"act_{US_ACCOUNT}"}
    run_id = form.json()["report_run_id"]
    assert api.jobs[run_id].query.fields == ("spend",)
