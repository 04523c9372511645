"""Every dbt model compiles for BigQuery offline, and the SQL parses as BigQuery SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[3]
DBT = str(Path(sys.executable).with_name("dbt"))
INCREMENTAL_MARTS = ("fct_marketing_daily", "fct_marketing_geo_daily", "fct_orders_daily")


def _dummy_service_account(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "cfap-offline",
                "private_key_id": "0" * 40,
                "private_key": pem,
                "client_email": "dbt@cfap-offline.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )


@pytest.fixture(scope="module", params=["full", "incremental"])
def compiled(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The project compiled for prod, once per branch of the incremental models."""
    work = tmp_path_factory.mktemp(f"prod-{request.param}")
    keyfile = work / "service-account.json"
    _dummy_service_account(keyfile)
    target = work / "target"
    env = {
        **os.environ,
        "CFAP_DBT_TARGET": "prod",
        "CFAP_BIGQUERY_AUTH_METHOD": "service-account",
        "GOOGLE_APPLICATION_CREDENTIALS": str(keyfile),
        "GCP_PROJECT": "cfap-offline",
        "CFAP_DATASET_PREFIX": "cfap",
    }
    result = subprocess.run(
        [
            DBT,
            "compile",
            "--target",
            "prod",
            "--no-populate-cache",
            "--target-path",
            str(target),
            "--project-dir",
            "dbt_project",
            "--profiles-dir",
            "dbt_project",
            "--vars",
            json.dumps({"offline_compile": request.param}),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return target


def test_every_model_compiles_to_sql_bigquery_parses(compiled: Path) -> None:
    files = sorted((compiled / "compiled" / "cfap" / "models").rglob("*.sql"))
    assert len(files) >= 25
    for file in files:
        sql = file.read_text()
        statements = sqlglot.parse(sql, read="bigquery")
        assert statements and all(s is not None for s in statements), file.name


def test_compiled_tests_parse_too(compiled: Path) -> None:
    files = sorted((compiled / "compiled" / "cfap" / "models").parent.rglob("*.sql"))
    for file in files:
        sqlglot.parse(file.read_text(), read="bigquery")


def test_prod_sql_uses_bigquery_idioms_and_prefixed_datasets(compiled: Path) -> None:
    spine = (compiled / "compiled/cfap/models/intermediate/int_date_spine.sql").read_text()
    assert "generate_date_array" in spine
    meta = (
        compiled / "compiled/cfap/models/staging/meta_ads/stg_meta_ads__insights.sql"
    ).read_text()
    assert "json_query_array" in meta and "`cfap-offline`.`cfap_raw`.`meta_ads_insights`" in meta
    fx = (
        compiled / "compiled/cfap/models/staging/reference/stg_reference__fx_rates.sql"
    ).read_text()
    assert "`cfap-offline`.`cfap_reference`.`fx_rates`" in fx  # a source in prod, not the seed


def test_incremental_marts_are_partitioned_and_clustered_on_bigquery(compiled: Path) -> None:
    manifest = json.loads((compiled / "manifest.json").read_text())
    for name in INCREMENTAL_MARTS:
        config = manifest["nodes"][f"model.cfap.{name}"]["config"]
        assert config["materialized"] == "incremental"
        assert config["incremental_strategy"] == "insert_overwrite"
        assert config["partition_by"]["field"] == "date_day"
        assert config["cluster_by"]
        assert manifest["nodes"][f"model.cfap.{name}"]["schema"] == "cfap_marts"
