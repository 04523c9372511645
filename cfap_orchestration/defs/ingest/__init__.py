"""Raw extracts from Meta Ads, Google Ads, Klaviyo and Shopify."""

import dagster as dg

from cfap_orchestration.defs.ingest.assets import raw_assets


def ingest_definitions() -> dg.Definitions:
    return dg.Definitions(assets=raw_assets)
