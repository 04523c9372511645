"""Resources by environment: the sandbox locally, the real APIs and env credentials in prod."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster_gcp import BigQueryResource

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
    monkeypatch.setenv("CFAP_ARTIFACTS_URI", "gs://cfap-artifacts/team-a")
    monkeypatch.setenv("META_AD_ACCOUNT_IDS", "111, 222")
    resources = build_resources(load_settings())
    assert isinstance(resources["warehouse"], BigQueryWarehouseResource)
    assert isinstance(resources["warehouse"], BigQueryResource)  # dagster-gcp's client
    assert isinstance(resources["landing_zone"].path, dg.EnvVar)
    assert resources["io_manager"].gcs_bucket == "cfap-artifacts"
    assert resources["io_manager"].gcs_prefix == "team-a/io"
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


def test_prod_needs_the_artifacts_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFAP_ENV", "prod")
    monkeypatch.delenv("CFAP_ARTIFACTS_URI", raising=False)
    with pytest.raises(ValueError, match="CFAP_ARTIFACTS_URI must be the artifacts bucket"):
        load_settings()
    monkeypatch.setenv("CFAP_ARTIFACTS_URI", "/var/cfap/artifacts")
    with pytest.raises(ValueError, match="gs://<bucket>"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("META_AD_ACCOUNT_IDS", "123,act_9;DROP"), ("GOOGLE_ADS_CUSTOMER_IDS", "123-456-7890,x")],
)
def test_account_ids_from_the_environment_are_checked(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("CFAP_ENV", "prod")
    monkeypatch.setenv("CFAP_ARTIFACTS_URI", "gs://cfap-artifacts")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}: .* is not an account id"):
        build_resources(load_settings())
