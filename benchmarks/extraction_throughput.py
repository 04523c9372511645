"""Extraction throughput through the fake APIs at several sandbox scales.

Each scale runs in its own process (so peak memory is that scale's own) and pulls the
same date range from all four platforms through the in-process transport, twice: the
first pass pays for simulating the world, the second (reported) measures the connector
and the wire format. Prints rows/s, requests per 1,000 rows against the floor set by
each API's maximum page size, and peak RSS; ratios are against the smallest scale, so
they hold on a noisy shared machine.

    .venv/bin/python benchmarks/extraction_throughput.py [--days 7] [--scales 1,10,100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pandas as pd

from cfap_orchestration.connectors.google_ads import GoogleAdsClient
from cfap_orchestration.connectors.klaviyo import KlaviyoClient
from cfap_orchestration.connectors.meta_ads import MetaAdsClient
from cfap_orchestration.connectors.shopify import ShopifyClient
from cfap_orchestration.sandbox.apis import (
    SANDBOX_CREDENTIALS,
    SANDBOX_SHOPIFY_CALLS_PER_SECOND,
    build_sandbox,
)
from cfap_orchestration.sandbox.world import WorldConfig

END = date(2025, 10, 31)
# Rows per request at each API's largest page (Google streams 10,000-row batches).
MAX_PAGE = {
    "meta_ads_insights_region": 500,
    "google_ads_geo_stats": 10_000,
    "klaviyo_events": 200,
    "shopify_orders": 250,
}


def scale_config(scale: int) -> WorldConfig:
    """Customers scale order and event volume; geos and campaigns scale the ad reports."""
    return WorldConfig(
        n_customers=10_000 * scale,
        n_geos=min(12 * max(1, scale // 5), 200),
        campaigns_per_account=4 if scale < 10 else 8,
    )


def extractions(sandbox: Any) -> dict[str, Callable[[date, date], tuple[pd.DataFrame, Any]]]:
    creds = SANDBOX_CREDENTIALS

    def meta(since: date, until: date) -> tuple[pd.DataFrame, Any]:
        with MetaAdsClient(
            creds["meta_ads"]["access_token"],
            base_url="http://graph.meta.sandbox",
            transport=sandbox.meta_ads.transport(),
            poll_interval=0.0,
        ) as client:
            frames = [
                client.fetch_insights(a["account_id"], since, until, breakdowns=("region",))
                for a in client.list_ad_accounts()
            ]
            return pd.concat(frames), client.stats

    def google(since: date, until: date) -> tuple[pd.DataFrame, Any]:
        with GoogleAdsClient(
            **creds["google_ads"],
            base_url="http://googleads.sandbox",
            token_url="http://oauth2.sandbox/token",
            transport=sandbox.google_ads.transport(),
        ) as client:
            frames = [
                client.fetch_geo_stats(c, since, until) for c in client.list_accessible_customers()
            ]
            return pd.concat(frames), client.stats

    def klaviyo(since: date, until: date) -> tuple[pd.DataFrame, Any]:
        with KlaviyoClient(
            creds["klaviyo"]["api_key"],
            base_url="http://klaviyo.sandbox",
            transport=sandbox.klaviyo.transport(),
        ) as client:
            return client.fetch_events(since, until), client.stats

    def shopify(since: date, until: date) -> tuple[pd.DataFrame, Any]:
        with ShopifyClient(
            creds["shopify"]["shop"],
            creds["shopify"]["access_token"],
            base_url="http://northwind-goods.shopify.sandbox",
            transport=sandbox.shopify.transport(),
            bucket_leak_rate=SANDBOX_SHOPIFY_CALLS_PER_SECOND,
        ) as client:
            return client.fetch_orders_updated(since, until), client.stats

    return {
        "meta_ads_insights_region": meta,
        "google_ads_geo_stats": google,
        "klaviyo_events": klaviyo,
        "shopify_orders": shopify,
    }


def run_scale(scale: int, days: int) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    sandbox = build_sandbox(scale_config(scale), as_of=datetime(2025, 11, 2, 6, tzinfo=UTC))
    since = END - timedelta(days=days - 1)
    results = []
    for table, extract in extractions(sandbox).items():
        extract(since, END)  # warm the simulated world
        started = time.perf_counter()
        frame, stats = extract(since, END)
        seconds = time.perf_counter() - started
        rows = len(frame)
        results.append(
            {
                "scale": scale,
                "table": table,
                "rows": rows,
                "seconds": round(seconds, 3),
                "rows_per_s": round(rows / seconds),
                "requests": stats.requests,
                "requests_per_1k_rows": round(1000 * stats.requests / max(rows, 1), 2),
                "floor_per_1k_rows": round(1000 / MAX_PAGE[table], 2),
            }
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for r in results:
        r["peak_rss_mb"] = round(peak_mb)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_scale(args.child, args.days)))
        return
    rows: list[dict[str, Any]] = []
    for scale in (int(s) for s in args.scales.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(scale), "--days", str(args.days)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.extend(json.loads(out.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    base = table[table["scale"] == table["scale"].min()].set_index("table")
    table["throughput_vs_1x"] = [
        round(r.rows_per_s / base.loc[r.table, "rows_per_s"], 2) for r in table.itertuples()
    ]
    print(f"Extraction through the fake APIs, {args.days} days ending {END}, in-process transport")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
