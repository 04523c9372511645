"""Dagster resources for the warehouse and the four platform connectors, chosen by environment.

Locally every connector makes real HTTP calls through an in-process transport that
the sandbox's fake APIs answer; in production the same clients call the platforms,
with credentials read from the environment by `dg.EnvVar` (never logged, never in
run config shown in the UI).
"""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pandas as pd
from dagster_gcp import BigQueryResource, GCSPickleIOManager, GCSResource
from pydantic import Field

from cfap_orchestration.connectors.google_ads import GoogleAdsClient
from cfap_orchestration.connectors.http import RequestStats
from cfap_orchestration.connectors.klaviyo import KlaviyoClient
from cfap_orchestration.connectors.meta_ads import MetaAdsClient
from cfap_orchestration.connectors.shopify import ShopifyClient
from cfap_orchestration.landing import (
    LandingPath,
    landing_root,
    read_touchpoints,
    touchpoint_file,
)
from cfap_orchestration.settings import Settings, get_settings
from cfap_orchestration.warehouse import BigQueryWarehouse, DuckDBWarehouse, Warehouse


def _sandbox() -> Any:
    """This process's sandbox (world and fake APIs) for the current settings."""
    # Imported here: production code locations never build the simulated world.
    from cfap_orchestration.sandbox.apis import get_sandbox

    settings = get_settings()
    return get_sandbox(settings.sandbox, settings.sandbox_as_of)


def _sandbox_transport(platform: str) -> httpx.BaseTransport:
    transport: httpx.BaseTransport = _sandbox().api(platform).transport()
    return transport


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse of the environment: DuckDB locally, BigQuery in production."""

    def get(self) -> Warehouse:
        raise NotImplementedError


class DuckDBWarehouseResource(WarehouseResource):
    """The local warehouse: one DuckDB file (`$CFAP_HOME/warehouse.duckdb`)."""

    path: str = Field(description="Path of the DuckDB database file.")

    def get(self) -> Warehouse:
        return DuckDBWarehouse(self.path)


class BigQueryWarehouseResource(BigQueryResource, WarehouseResource):
    """The production warehouse: one BigQuery dataset per schema, named `<prefix>_<schema>`.

    dagster-gcp's `BigQueryResource` (project, location, optional base64 key in
    `gcp_credentials`) opens the client; with no key it uses Application Default
    Credentials: Workload Identity on GKE, or the key file at
    `GOOGLE_APPLICATION_CREDENTIALS`. Credentials are never logged or put in run config.
    """

    dataset_prefix: str = Field(default="cfap", description="Prefix of the dataset names.")

    def get(self) -> Warehouse:
        if not self.project:
            raise ValueError("the BigQuery warehouse needs a project (GCP_PROJECT)")
        return BigQueryWarehouse(
            self.project, self.location or "US", self.dataset_prefix, connect=self.get_client
        )


class MetaAdsResource(dg.ConfigurableResource):
    """Meta Marketing API: a system-user access token and the ad accounts to read."""

    access_token: str
    account_ids: list[str] = Field(
        default_factory=list, description="Ad account ids without 'act_'; empty reads all."
    )
    base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    report_poll_seconds: float = Field(
        default=5.0, description="Wait between status polls of an async insights report run."
    )
    use_sandbox: bool = False

    def client(self) -> MetaAdsClient:
        return MetaAdsClient(
            self.access_token,
            base_url=self.base_url,
            api_version=self.api_version,
            poll_interval=self.report_poll_seconds,
            transport=_sandbox_transport("meta_ads") if self.use_sandbox else None,
        )


class GoogleAdsResource(dg.ConfigurableResource):
    """Google Ads API: developer token, OAuth client and refresh token, customer ids."""

    developer_token: str
    client_id: str
    client_secret: str
    refresh_token: str
    login_customer_id: str | None = None
    customer_ids: list[str] = Field(
        default_factory=list, description="Customer ids (digits); empty reads every accessible one."
    )
    base_url: str = "https://googleads.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"
    use_sandbox: bool = False

    def client(self) -> GoogleAdsClient:
        return GoogleAdsClient(
            self.developer_token,
            self.client_id,
            self.client_secret,
            self.refresh_token,
            login_customer_id=self.login_customer_id,
            base_url=self.base_url,
            token_url=self.token_url,
            transport=_sandbox_transport("google_ads") if self.use_sandbox else None,
        )


class KlaviyoResource(dg.ConfigurableResource):
    """Klaviyo API: a private API key (read scopes on campaigns, flows, events, segments)."""

    api_key: str
    base_url: str = "https://a.klaviyo.com"
    revision: str = "2024-10-15"
    use_sandbox: bool = False

    def client(self) -> KlaviyoClient:
        return KlaviyoClient(
            self.api_key,
            base_url=self.base_url,
            revision=self.revision,
            transport=_sandbox_transport("klaviyo") if self.use_sandbox else None,
        )


class ShopifyResource(dg.ConfigurableResource):
    """Shopify Admin API: the shop handle and an access token (read_orders, read_all_orders)."""

    shop: str
    access_token: str
    base_url: str | None = None
    api_version: str = "2025-01"
    calls_per_second: float = Field(
        default=2.0,
        description="The plan's REST leak rate: 2 (standard), 4 (Advanced), 20 (Plus).",
    )
    use_sandbox: bool = False

    def client(self) -> ShopifyClient:
        return ShopifyClient(
            self.shop,
            self.access_token,
            base_url=self.base_url,
            api_version=self.api_version,
            bucket_leak_rate=self.calls_per_second,
            transport=_sandbox_transport("shopify") if self.use_sandbox else None,
        )


class LandingZoneResource(dg.ConfigurableResource):
    """Where batch files land: `$CFAP_HOME/landing` locally, the landing bucket in prod."""

    path: str = Field(description="A local folder, or gs://<bucket>[/<prefix>].")
    sandbox_exports: bool = Field(
        default=False,
        description="Let the sandbox brand's event collector drop any missing daily file first.",
    )

    def root(self) -> LandingPath:
        return landing_root(self.path)

    def read_touchpoints(self, since: date, until: date) -> tuple[pd.DataFrame, RequestStats]:
        folder = self.root()
        days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
        if self.sandbox_exports:
            self._export_missing(folder, days)
        frame = read_touchpoints(folder, since, until)
        return frame, RequestStats(requests=len(days), pages=len(days))

    @staticmethod
    def _export_missing(folder: LandingPath, days: list[date]) -> None:
        from cfap_orchestration.sandbox.exports import export_touchpoints

        if not isinstance(folder, Path):
            raise ValueError(f"the sandbox exports to a local folder, not {folder}")

        world = _sandbox().world
        for day in days:
            if not touchpoint_file(folder, day).exists():
                export_touchpoints(world, day, folder)


# Ad account ids: Meta's are digits (no "act_"), Google Ads' digits with optional dashes.
ACCOUNT_ID = re.compile(r"^\d[\d-]{0,30}$")


def _id_list(variable: str) -> list[str]:
    """Comma-separated account ids from the environment, each checked before any API call."""
    ids = [part.strip() for part in os.getenv(variable, "").split(",") if part.strip()]
    for account in ids:
        if not ACCOUNT_ID.match(account):
            raise ValueError(f"{variable}: {account!r} is not an account id (digits only)")
    return ids


def local_resources(settings: Settings) -> dict[str, Any]:
    from cfap_orchestration.sandbox.apis import (
        SANDBOX_BASE_URLS,
        SANDBOX_CREDENTIALS,
        SANDBOX_SHOPIFY_CALLS_PER_SECOND,
    )

    creds, urls = SANDBOX_CREDENTIALS, SANDBOX_BASE_URLS
    return {
        "warehouse": DuckDBWarehouseResource(path=str(settings.warehouse_path)),
        "meta_ads": MetaAdsResource(
            access_token=creds["meta_ads"]["access_token"],
            base_url=urls["meta_ads"],
            report_poll_seconds=0.0,  # sandbox report runs advance on every poll
            use_sandbox=True,
        ),
        "google_ads": GoogleAdsResource(
            developer_token=creds["google_ads"]["developer_token"],
            client_id=creds["google_ads"]["client_id"],
            client_secret=creds["google_ads"]["client_secret"],
            refresh_token=creds["google_ads"]["refresh_token"],
            base_url=urls["google_ads"],
            token_url=urls["google_ads_token"],
            use_sandbox=True,
        ),
        "klaviyo": KlaviyoResource(
            api_key=creds["klaviyo"]["api_key"], base_url=urls["klaviyo"], use_sandbox=True
        ),
        "shopify": ShopifyResource(
            shop=creds["shopify"]["shop"],
            access_token=creds["shopify"]["access_token"],
            base_url=urls["shopify"],
            calls_per_second=SANDBOX_SHOPIFY_CALLS_PER_SECOND,
            use_sandbox=True,
        ),
        "landing_zone": LandingZoneResource(path=str(settings.landing_dir), sandbox_exports=True),
    }


def _bucket_and_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    return bucket, prefix.strip("/")


def prod_resources(settings: Settings) -> dict[str, Any]:
    """BigQuery, GCS and the real platform APIs. Secrets are `dg.EnvVar`s: resolved in the
    step's process, shown by name only in the UI and never written to the event log."""
    bucket, prefix = _bucket_and_prefix(settings.artifacts_uri)
    return {
        "warehouse": BigQueryWarehouseResource(
            project=dg.EnvVar("GCP_PROJECT"),
            location=os.getenv("BIGQUERY_LOCATION", "US"),
            dataset_prefix=os.getenv("CFAP_DATASET_PREFIX", "cfap"),
        ),
        # Assets hand nothing to an IO manager today; any future output lands in GCS.
        "io_manager": GCSPickleIOManager(
            gcs=GCSResource(project=dg.EnvVar("GCP_PROJECT")),
            gcs_bucket=bucket,
            gcs_prefix=f"{prefix}/io".strip("/"),
        ),
        "meta_ads": MetaAdsResource(
            access_token=dg.EnvVar("META_ACCESS_TOKEN"),
            account_ids=_id_list("META_AD_ACCOUNT_IDS"),
        ),
        "google_ads": GoogleAdsResource(
            developer_token=dg.EnvVar("GOOGLE_ADS_DEVELOPER_TOKEN"),
            client_id=dg.EnvVar("GOOGLE_ADS_CLIENT_ID"),
            client_secret=dg.EnvVar("GOOGLE_ADS_CLIENT_SECRET"),
            refresh_token=dg.EnvVar("GOOGLE_ADS_REFRESH_TOKEN"),
            login_customer_id=os.getenv("GOOGLE_ADS_LOGIN_CUSTOMER_ID") or None,
            customer_ids=_id_list("GOOGLE_ADS_CUSTOMER_IDS"),
        ),
        "klaviyo": KlaviyoResource(api_key=dg.EnvVar("KLAVIYO_API_KEY")),
        "shopify": ShopifyResource(
            shop=dg.EnvVar("SHOPIFY_SHOP"), access_token=dg.EnvVar("SHOPIFY_ACCESS_TOKEN")
        ),
        "landing_zone": LandingZoneResource(path=dg.EnvVar("CFAP_LANDING_URI")),
    }


def build_resources(settings: Settings) -> dict[str, Any]:
    return local_resources(settings) if settings.env == "local" else prod_resources(settings)
