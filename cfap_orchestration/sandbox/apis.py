"""The four fake platform APIs over one sandbox world, as used by the local environment.

`get_sandbox()` returns one process-wide instance per world configuration, so every
connector in a run talks to the same simulated brand. `as_of` is "now" for the fake
platforms: data after it does not exist yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from cfap_orchestration.sandbox.fake_apis.base import FakeApi
from cfap_orchestration.sandbox.fake_apis.google_ads import GoogleAdsFakeApi
from cfap_orchestration.sandbox.fake_apis.klaviyo import KlaviyoFakeApi
from cfap_orchestration.sandbox.fake_apis.meta_ads import MetaAdsFakeApi
from cfap_orchestration.sandbox.fake_apis.shopify import ShopifyFakeApi
from cfap_orchestration.sandbox.world import SandboxWorld, WorldConfig

# Credentials the fake APIs accept. They are not secrets: they only open the sandbox.
SANDBOX_CREDENTIALS = {
    "meta_ads": {"access_token": "meta-sandbox-token"},
    "google_ads": {
        "developer_token": "google-sandbox-developer-token",
        "client_id": "sandbox-client.apps.googleusercontent.com",
        "client_secret": "google-sandbox-client-secret",
        "refresh_token": "google-sandbox-refresh-token",
    },
    "klaviyo": {"api_key": "pk_sandbox_klaviyo_key"},
    "shopify": {"access_token": "shpat_sandbox_token", "shop": "northwind-goods"},
}

# The sandbox shop is on Shopify Plus: its REST bucket leaks 20 calls a second.
SANDBOX_SHOPIFY_CALLS_PER_SECOND = 20.0

# Hosts that resolve nowhere: a sandbox client that lost its transport fails loudly.
SANDBOX_BASE_URLS = {
    "meta_ads": "http://graph.meta.sandbox",
    "google_ads": "http://googleads.sandbox",
    "google_ads_token": "http://oauth2.sandbox/token",
    "klaviyo": "http://klaviyo.sandbox",
    "shopify": "http://northwind-goods.shopify.sandbox",
}


@dataclass
class SandboxApis:
    world: SandboxWorld
    meta_ads: MetaAdsFakeApi
    google_ads: GoogleAdsFakeApi
    klaviyo: KlaviyoFakeApi
    shopify: ShopifyFakeApi

    def api(self, platform: str) -> FakeApi:
        api: FakeApi = getattr(self, platform)
        return api


def build_sandbox(config: WorldConfig, as_of: datetime | None = None) -> SandboxApis:
    world = SandboxWorld(config)
    creds = SANDBOX_CREDENTIALS
    return SandboxApis(
        world=world,
        meta_ads=MetaAdsFakeApi(world, token=creds["meta_ads"]["access_token"], as_of=as_of),
        google_ads=GoogleAdsFakeApi(
            world,
            token=creds["google_ads"]["refresh_token"],
            developer_token=creds["google_ads"]["developer_token"],
            client_id=creds["google_ads"]["client_id"],
            client_secret=creds["google_ads"]["client_secret"],
            as_of=as_of,
        ),
        klaviyo=KlaviyoFakeApi(world, token=creds["klaviyo"]["api_key"], as_of=as_of),
        shopify=ShopifyFakeApi(
            world,
            token=creds["shopify"]["access_token"],
            as_of=as_of,
            leak_rate=SANDBOX_SHOPIFY_CALLS_PER_SECOND,
        ),
    )


@cache
def get_sandbox(config: WorldConfig, as_of: datetime) -> SandboxApis:
    """One sandbox per process, world configuration and "now"."""
    return build_sandbox(config, as_of)
