"""Resources by environment: the sandbox locally, the real APIs and env credentials in prod."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from cfap_orchestration.resources import (
    BigQueryWarehouseResource,
    DuckDBWarehouseResource,
    build_resources,
)
from cfap_orchestration.settings import load_settings

SECRET_FIELDS = {
    "meta_ads": ["access_token"],
    "google_ads": ["developer_token", "client_id", "client_secret", "refresh_token"],
    "klaviyo": ["api_key"],
    "shopify": ["access_token", "shop"],
}


def test_local_resources_use_the_sandbox_and_the_duckdb_file(cfap_home: Path) -> None:
    resources = build_resources(load_settings())
    assert isinstance(resources["warehouse"], DuckDBWarehouseResource)
    assert resources["warehouse"].path == str(cfap_home / "warehouse.duckdb")
    for platform in SECRET_FIELDS:
        assert resources[platform].use_sandbox
        assert ".sandbox" in (resources[platform].base_url or "")


def test_prod_resources_read_credentials_from_the_environment(
    cfap_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CFAP_ENV", "prod")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "111, 222")
    resources = build_resources(load_settings())
    assert isinstance(resources["warehouse"], BigQueryWarehouseResource)
    for platform, fields in SECRET_FIELDS.items():
        resource = resources[platform]
        assert not resource.use_sandbox
        for field in fields:
            assert isinstance(getattr(resource, field), dg.EnvVar), (platform, field)
    assert resources["meta_ads"].base_url == "https://graph.facebook.com"
    assert resources["meta_ads"].account_ids == ["111", "222"]
    assert resources["google_ads"].token_url == "https://oauth2.googleapis.com/token"


def test_a_bad_environment_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFAP_ENV", "staging")
    with pytest.raises(ValueError, match="CFAP_ENV must be 'local' or 'prod'"):
        load_settings()
    monkeypatch.setenv("CFAP_ENV", "local")
    monkeypatch.setenv("CFAP_START_DATE", "01/02/2024")
    with pytest.raises(ValueError, match="CFAP_START_DATE must be YYYY-MM-DD"):
        load_settings()
