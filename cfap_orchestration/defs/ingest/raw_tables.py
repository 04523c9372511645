"""The raw tables: what each one holds, its key, and which connector call fills it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from cfap_orchestration import landing
from cfap_orchestration.connectors import google_ads, klaviyo, meta_ads, shopify
from cfap_orchestration.connectors.http import RequestStats

Extract = Callable[[Any, date, date], tuple[pd.DataFrame, RequestStats]]


@dataclass(frozen=True)
class RawTable:
    """One raw extract: an asset `raw/<name>` and a table `raw.<name>`."""

    name: str
    platform: str  # resource key of the connector
    description: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    required: tuple[str, ...]
    non_negative: tuple[str, ...]
    default_lookback_days: int
    extract: Extract


def _meta_insights(breakdowns: tuple[str, ...]) -> Extract:
    def extract(resource: Any, since: date, until: date) -> tuple[pd.DataFrame, RequestStats]:
        with resource.client() as client:
            accounts = resource.account_ids or [a["account_id"] for a in client.list_ad_accounts()]
            frames = [
                client.fetch_insights(account, since, until, breakdowns=breakdowns)
                for account in accounts
            ]
            return _concat(frames), client.stats

    return extract


def _google_ads(method: str) -> Extract:
    def extract(resource: Any, since: date, until: date) -> tuple[pd.DataFrame, RequestStats]:
        with resource.client() as client:
            customers = resource.customer_ids or client.list_accessible_customers()
            frames = [getattr(client, method)(cid, since, until) for cid in customers]
            return _concat(frames), client.stats

    return extract


def _klaviyo(method: str) -> Extract:
    def extract(resource: Any, since: date, until: date) -> tuple[pd.DataFrame, RequestStats]:
        with resource.client() as client:
            return getattr(client, method)(since, until), client.stats

    return extract


def _klaviyo_holdouts(resource: Any, since: date, until: date) -> tuple[pd.DataFrame, RequestStats]:
    with resource.client() as client:
        campaigns = client.fetch_campaigns(since, until)
        return client.fetch_holdout_profiles(campaigns), client.stats


def _shopify_orders(resource: Any, since: date, until: date) -> tuple[pd.DataFrame, RequestStats]:
    with resource.client() as client:
        return client.fetch_orders_updated(since, until), client.stats


def _first_party_touchpoints(
    resource: Any, since: date, until: date
) -> tuple[pd.DataFrame, RequestStats]:
    return resource.read_touchpoints(since, until)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    non_empty = [f for f in frames if not f.empty]
    if not non_empty:
        return frames[0] if frames else pd.DataFrame()
    return pd.concat(non_empty, ignore_index=True)


RAW_TABLES: tuple[RawTable, ...] = (
    RawTable(
        name="meta_ads_insights",
        platform="meta_ads",
        description=(
            "Meta (Facebook/Instagram) ads spend and platform-reported results per campaign and "
            "day, in each ad account's currency and time zone. Conversions are Meta's own "
            "attribution claim (7-day click, 1-day view) and keep changing for 28 days."
        ),
        columns=meta_ads.INSIGHTS_COLUMNS,
        primary_key=meta_ads.INSIGHTS_PRIMARY_KEY,
        required=("account_id", "campaign_id", "date_start", "spend"),
        non_negative=("spend", "impressions", "clicks"),
        default_lookback_days=meta_ads.DEFAULT_LOOKBACK_DAYS,
        extract=_meta_insights(()),
    ),
    RawTable(
        name="meta_ads_insights_region",
        platform="meta_ads",
        description=(
            "Meta ads spend and results per campaign, region and day: the geo grain that geo "
            "holdout experiments are read from."
        ),
        columns=meta_ads.REGION_INSIGHTS_COLUMNS,
        primary_key=meta_ads.REGION_INSIGHTS_PRIMARY_KEY,
        required=("account_id", "campaign_id", "date_start", "region", "spend"),
        non_negative=("spend", "impressions", "clicks"),
        default_lookback_days=meta_ads.DEFAULT_LOOKBACK_DAYS,
        extract=_meta_insights(("region",)),
    ),
    RawTable(
        name="google_ads_campaign_stats",
        platform="google_ads",
        description=(
            "Google Ads cost and platform-reported conversions per campaign and day (account "
            "time zone and currency; cost in micros). Days without activity are absent, as the "
            "API omits all-zero rows."
        ),
        columns=google_ads.CAMPAIGN_STATS_COLUMNS,
        primary_key=google_ads.CAMPAIGN_STATS_PRIMARY_KEY,
        required=("customer_id", "campaign_id", "segments_date", "metrics_cost_micros"),
        non_negative=("metrics_cost_micros", "metrics_impressions", "metrics_clicks"),
        default_lookback_days=google_ads.DEFAULT_LOOKBACK_DAYS,
        extract=_google_ads("fetch_campaign_stats"),
    ),
    RawTable(
        name="google_ads_geo_stats",
        platform="google_ads",
        description=(
            "Google Ads cost and conversions per campaign, region (geo target constant) and day, "
            "from the geographic view: the geo grain for geo experiments on search."
        ),
        columns=google_ads.GEO_STATS_COLUMNS,
        primary_key=google_ads.GEO_STATS_PRIMARY_KEY,
        required=(
            "customer_id",
            "campaign_id",
            "segments_date",
            "segments_geo_target_region",
            "metrics_cost_micros",
        ),
        non_negative=("metrics_cost_micros", "metrics_impressions", "metrics_clicks"),
        default_lookback_days=google_ads.DEFAULT_LOOKBACK_DAYS,
        extract=_google_ads("fetch_geo_stats"),
    ),
    RawTable(
        name="klaviyo_campaigns",
        platform="klaviyo",
        description=(
            "Klaviyo email and SMS campaigns by send date, with their audiences: the excluded "
            "audiences are the randomized holdout groups used to measure email lift."
        ),
        columns=klaviyo.CAMPAIGN_COLUMNS,
        primary_key=klaviyo.CAMPAIGN_PRIMARY_KEY,
        required=("campaign_id", "name", "channel", "send_time"),
        non_negative=(),
        default_lookback_days=klaviyo.DEFAULT_LOOKBACK_DAYS,
        extract=_klaviyo("fetch_campaigns"),
    ),
    RawTable(
        name="klaviyo_flows",
        platform="klaviyo",
        description=(
            "Klaviyo automated flows (abandoned cart, browse abandonment, ...), one row per "
            "version, partitioned by the day the flow was last updated."
        ),
        columns=klaviyo.FLOW_COLUMNS,
        primary_key=klaviyo.FLOW_PRIMARY_KEY,
        required=("flow_id", "name", "updated"),
        non_negative=(),
        default_lookback_days=0,
        extract=_klaviyo("fetch_flows"),
    ),
    RawTable(
        name="klaviyo_events",
        platform="klaviyo",
        description=(
            "Klaviyo events (emails and SMS received and clicked, orders placed) per profile, "
            "with Klaviyo's own attribution of orders to messages: the message-level record "
            "of who was reached and who bought."
        ),
        columns=klaviyo.EVENT_COLUMNS,
        primary_key=klaviyo.EVENT_PRIMARY_KEY,
        required=("event_id", "metric_name", "profile_id", "datetime"),
        non_negative=("value",),
        default_lookback_days=klaviyo.DEFAULT_LOOKBACK_DAYS,
        extract=_klaviyo("fetch_events"),
    ),
    RawTable(
        name="klaviyo_holdout_profiles",
        platform="klaviyo",
        description=(
            "Members of each campaign's randomized holdout segment: the customers who were "
            "deliberately not sent the campaign, the control group of the email lift tests."
        ),
        columns=klaviyo.HOLDOUT_PROFILE_COLUMNS,
        primary_key=klaviyo.HOLDOUT_PROFILE_PRIMARY_KEY,
        required=("campaign_id", "segment_id", "profile_id"),
        non_negative=(),
        default_lookback_days=0,
        extract=_klaviyo_holdouts,
    ),
    RawTable(
        name="shopify_orders",
        platform="shopify",
        description=(
            "Shopify orders (any status) as they stood when pulled, partitioned by the shop-local "
            "day of their latest update: revenue, discounts, refunds and the buyer. An order "
            "updated again later moves to that later partition; staging keeps the latest version."
        ),
        columns=shopify.ORDERS_COLUMNS,
        primary_key=shopify.ORDERS_PRIMARY_KEY,
        required=("order_id", "created_at", "updated_at", "total_price", "currency"),
        non_negative=("total_price", "subtotal_price", "total_discounts"),
        default_lookback_days=0,
        extract=_shopify_orders,
    ),
    RawTable(
        name="first_party_touchpoints",
        platform="landing_zone",
        description=(
            "The site's own event stream: every marketing touch of each anonymous visitor "
            "(channel from UTM/referrer) and each purchase or session end, one JSON-lines file "
            "per day in the landing zone. The user-level journeys attribution models read."
        ),
        columns=landing.TOUCHPOINT_COLUMNS,
        primary_key=landing.TOUCHPOINT_PRIMARY_KEY,
        required=("insert_id", "anonymous_id", "event", "event_time"),
        non_negative=("value",),
        default_lookback_days=0,
        extract=_first_party_touchpoints,
    ),
)
