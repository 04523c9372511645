"""Raw extracts from Meta Ads, Google Ads, Klaviyo and Shopify, and the landing zone's
batch uploads."""

import dagster as dg

from cfap_orchestration.defs.ingest.assets import raw_assets
from cfap_orchestration.defs.ingest.landed import landed_assets


def ingest_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[*raw_assets, *landed_assets])
