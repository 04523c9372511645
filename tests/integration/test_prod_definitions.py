"""`CFAP_ENV=prod` with the documented variables: the Definitions load and point only at
BigQuery, GCS, the platforms' own APIs and Kubernetes, with no local path and no secret
value anywhere a user or the event log could see it. Nothing here reaches GCP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes.client as k8s
import pytest
import yaml
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_dbt import DbtCliResource
from dagster_gcp import GCSPickleIOManager
from dagster_k8s.job import UserDefinedDagsterK8sConfig
from dagster_k8s.models import k8s_model_from_dict

from cfap_orchestration.defs.kubernetes import per_step_k8s_config
from cfap_orchestration.resources import (
    BigQueryWarehouseResource,
    GoogleAdsResource,
    KlaviyoResource,
    LandingZoneResource,
    MetaAdsResource,
    ShopifyResource,
)
from cfap_orchestration.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
# deploy/README.md's variables, with secrets that are easy to find if they leak.
PROD_ENV = {
    "CFAP_ENV": "prod",
    "GCP_PROJECT": "cfap-prod-4711",
    "BIGQUERY_LOCATION": "EU",
    "CFAP_DATASET_PREFIX": "cfap",
    "CFAP_LANDING_URI": "gs://cfap-prod-4711-landing",
    "CFAP_ARTIFACTS_URI": "gs://cfap-prod-4711-artifacts",
    "CFAP_DBT_TARGET": "prod",
    "SHOPIFY_SHOP": "cfap-brand",
    "META_AD_ACCOUNT_IDS": "1234567890",
    "GOOGLE_ADS_CUSTOMER_IDS": "1112223333",
}
SECRETS = {
    "META_ACCESS_TOKEN": "leak-canary-meta-3f9a",
    "GOOGLE_ADS_DEVELOPER_TOKEN": "leak-canary-gads-dev-81c2",
    "GOOGLE_ADS_CLIENT_ID": "leak-canary-gads-client-77d0",
    "GOOGLE_ADS_CLIENT_SECRET": "leak-canary-gads-secret-0b4e",
    "GOOGLE_ADS_REFRESH_TOKEN": "leak-canary-gads-refresh-5e61",
    "KLAVIYO_API_KEY": "leak-canary-klaviyo-c2aa",
    "SHOPIFY_ACCESS_TOKEN": "leak-canary-shopify-9d13",
}
PLATFORM_HOSTS = {
    "meta_ads": "https://graph.facebook.com",
    "google_ads": "https://googleads.googleapis.com",
    "klaviyo": "https://a.klaviyo.com",
}
STORAGE_RESOURCES = {"warehouse", "dbt", "io_manager", "landing_zone"}
STEP_ACCOUNTS = {"cfap-ingestion", "cfap-dbt", "cfap-measurement"}


@pytest.fixture(scope="module")
def prod() -> Iterator[tuple[dg.Definitions, dg.RepositoryDefinition]]:
    from cfap_orchestration.definitions import defs as build_defs

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CFAP_HOME", str(ROOT / ".cfap-prod-test-unused"))
        for key, value in {**PROD_ENV, **SECRETS}.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        try:
            definitions = build_defs()
            yield definitions, definitions.get_repository_def()
        finally:
            get_settings.cache_clear()


def _resources(definitions: dg.Definitions) -> dict[str, Any]:
    return dict(definitions.resources or {})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dg.EnvVar):
        yield os.environ.get(value.env_var_name, "")
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dg.ConfigurableResource):
        for name in type(value).model_fields:
            yield from _strings(getattr(value, name))


def test_every_asset_is_stored_in_bigquery_or_gcs(prod: tuple[Any, Any]) -> None:
    definitions, _ = prod
    resources = _resources(definitions)
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_executable:
            continue
        assets_def = node.assets_def
        used = set(assets_def.required_resource_keys)
        assert used & (STORAGE_RESOURCES - {"io_manager"}), (key, used)
        for name in used:
            assert name in resources, (key, name)
    assert isinstance(resources["warehouse"], BigQueryWarehouseResource)
    assert resources["warehouse"].dataset_prefix == "cfap"
    assert isinstance(resources["io_manager"], GCSPickleIOManager)
    assert resources["io_manager"].gcs_bucket == "cfap-prod-4711-artifacts"
    assert isinstance(resources["landing_zone"], LandingZoneResource)
    assert isinstance(resources["landing_zone"].path, dg.EnvVar)
    assert os.environ.get("CFAP_LANDING_URI", PROD_ENV["CFAP_LANDING_URI"]).startswith("gs://")


def test_dbt_runs_the_bigquery_target(prod: tuple[Any, Any]) -> None:
    definitions, _ = prod
    dbt = _resources(definitions)["dbt"]
    assert isinstance(dbt, DbtCliResource)
    assert dbt.target == "prod"
    profile = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())
    output = profile["cfap"]["outputs"]["prod"]
    assert output["type"] == "bigquery"
    assert "maximum_bytes_billed" in output


def test_the_connectors_call_the_platforms_with_environment_credentials(
    prod: tuple[Any, Any],
) -> None:
    definitions, _ = prod
    resources = _resources(definitions)
    for name, host in PLATFORM_HOSTS.items():
        assert resources[name].base_url == host, name
    for name, kind in [
        ("meta_ads", MetaAdsResource),
        ("google_ads", GoogleAdsResource),
        ("klaviyo", KlaviyoResource),
        ("shopify", ShopifyResource),
    ]:
        resource = resources[name]
        assert isinstance(resource, kind) and not resource.use_sandbox
        secret_fields = [f for f, v in vars(resource).items() if isinstance(v, dg.EnvVar)]
        assert secret_fields, name
    assert {
        v.env_var_name
        for r in resources.values()
        if isinstance(r, dg.ConfigurableResource)
        for v in vars(r).values()
        if isinstance(v, dg.EnvVar)
    } >= set(SECRETS)


def test_no_local_path_or_local_engine_leaks_in(prod: tuple[Any, Any]) -> None:
    definitions, _ = prod
    resources = _resources(definitions)
    settings = get_settings.__wrapped__()  # type: ignore[attr-defined]
    assert settings.artifacts_uri.startswith("gs://")
    assert str(settings.models_dir).startswith("gs://")
    assert str(settings.reports_dir).startswith("gs://")
    for name, resource in resources.items():
        if name == "dbt":
            continue  # its project_dir is the dbt project's source, shipped in the image
        for text in _strings(resource):
            assert not text.startswith(("/", "./", "~")), (name, text)
            assert "duckdb" not in text.lower() and ".cfap" not in text, (name, text)


def test_every_step_is_a_kubernetes_job_with_its_roles_service_account(
    prod: tuple[Any, Any],
) -> None:
    definitions, repo = prod
    step_config = per_step_k8s_config(definitions)
    for job in repo.get_all_jobs():
        assert job.executor_def.name == "cfap_k8s_job_executor", job.name
        ops = {node.name for node in job.graph.node_defs}
        assert ops <= set(step_config), (job.name, ops - set(step_config))
        for op in ops:
            account = step_config[op]["pod_spec_config"]["service_account_name"]
            assert account in STEP_ACCOUNTS, (op, account)
    for op, config in step_config.items():
        # Valid Kubernetes: dagster-k8s builds the step's container and pod from it.
        user_config = UserDefinedDagsterK8sConfig.from_dict(config)
        k8s_model_from_dict(k8s.V1Container, {"name": op, **user_config.container_config})
        k8s_model_from_dict(k8s.V1PodSpec, {"containers": [], **user_config.pod_spec_config})
    mmm = step_config["causal__mmm_fit"]["container_config"]["resources"]
    assert mmm["requests"]["memory"] == "8Gi"
    roles = step_config
    assert roles["raw__meta_ads_insights"]["pod_spec_config"]["service_account_name"] == (
        "cfap-ingestion"
    )
    assert roles["cfap_dbt_models"]["pod_spec_config"]["service_account_name"] == "cfap-dbt"
    # The platform credentials reach the ingestion pods only.
    for op, config in step_config.items():
        env_from = config["container_config"].get("env_from", [])
        has_credentials = {"secret_ref": {"name": "cfap-platform-credentials"}} in env_from
        role = config["pod_spec_config"]["service_account_name"]
        assert has_credentials == (role == "cfap-ingestion"), op


def test_no_secret_value_is_in_what_the_ui_and_daemon_see(prod: tuple[Any, Any]) -> None:
    _, repo = prod
    snapshot = dg.serialize_value(RepositorySnap.from_def(repo))
    assert "META_ACCESS_TOKEN" in snapshot  # the resource config shows the variable's name
    for value in SECRETS.values():
        assert value not in snapshot


def test_the_prod_code_location_loads_without_the_sandbox_or_the_samplers(
    tmp_path: Path,
) -> None:
    """As the code server loads it: a fresh interpreter, only the documented variables."""
    probe = (
        "import json, sys\n"
        "from cfap_orchestration.definitions import defs\n"
        "repo = defs().get_repository_def()\n"
        "heavy = ['pymc', 'pymc_marketing', 'arviz', 'cfap_orchestration.sandbox.apis']\n"
        "print(json.dumps({'jobs': len(repo.get_all_jobs()),\n"
        "                  'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    env = {**os.environ, **PROD_ENV, **SECRETS, "CFAP_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["jobs"] >= 4
    assert found["loaded"] == []
    assert not (tmp_path / "warehouse.duckdb").exists()
    for value in SECRETS.values():
        assert value not in result.stdout + result.stderr
