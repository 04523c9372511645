"""terraform/ checked offline: every file parses, it names what the code uses, it grants
each service account only what its role needs, and checkov finds nothing to fail.

No terraform binary can run here (DESIGN, "Facts about this environment"): the files are
parsed with python-hcl2 and compared with the project's own sources of truth (dbt's
sources and schemas, the Python result contracts, the environment variables the code
reads), and scanned with checkov, installed in its own environment by `make venv`.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from cfap_orchestration import landing
from cfap_orchestration.bigquery_schemas import TERRAFORM_TABLES, stale_files
from cfap_orchestration.studies.results import RESULTS_SCHEMA

ROOT = Path(__file__).resolve().parents[3]
TERRAFORM = ROOT / "terraform"
SCHEMAS = TERRAFORM / "schemas"
DBT = ROOT / "dbt_project"
RESOURCES_PY = ROOT / "cfap_orchestration" / "resources.py"
SETTINGS_PY = ROOT / "cfap_orchestration" / "settings.py"
JOB_STATUS_PY = ROOT / "cfap_orchestration" / "studies" / "job_status.py"
CHECKOV = ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))

VIEWER = "roles/bigquery.dataViewer"
EDITOR = "roles/bigquery.dataEditor"

# Who may read and write which dataset (iam.tf explains each entry). A new grant has to be
# added here too, deliberately.
INTENDED_DATASET_ACCESS: dict[str, dict[str, str]] = {
    "cfap-ingestion": {"raw": EDITOR},
    "cfap-dbt": {"raw": VIEWER, "reference": EDITOR, "staging": EDITOR, "marts": EDITOR},
    "cfap-measurement": {"raw": VIEWER, "staging": VIEWER, "marts": VIEWER, "causal": EDITOR},
    "cfap-dagster": {"staging": VIEWER, "marts": VIEWER, "causal": EDITOR},
}
INTENDED_BUCKET_ACCESS: dict[str, dict[str, str]] = {
    "cfap-ingestion": {"landing": "roles/storage.objectAdmin"},
    "cfap-measurement": {"artifacts": "roles/storage.objectAdmin"},
    "cfap-dagster": {
        "landing": "roles/storage.objectUser",
        "artifacts": "roles/storage.objectAdmin",
    },
}
PLATFORM_SECRETS = {
    "META_ACCESS_TOKEN",
    "GOOGLE_ADS_DEVELOPER_TOKEN",
    "GOOGLE_ADS_CLIENT_ID",
    "GOOGLE_ADS_CLIENT_SECRET",
    "GOOGLE_ADS_REFRESH_TOKEN",
    "KLAVIYO_API_KEY",
    "SHOPIFY_ACCESS_TOKEN",
}
DAGSTER_SECRETS = {"CFAP_ALERT_WEBHOOK_URL", "DAGSTER_PG_PASSWORD"}
INTENDED_SECRET_ACCESS = {"cfap-ingestion": PLATFORM_SECRETS, "cfap-dagster": DAGSTER_SECRETS}
# dg.EnvVar values that are configuration, not credentials.
NOT_SECRETS = {
    "GCP_PROJECT",
    "SHOPIFY_SHOP",
    "CFAP_LANDING_URI",
    "CFAP_LANDING_DIR",
    "CFAP_ARTIFACTS_URI",
}
# Where the code location finds the infrastructure: terraform's code_location_env output.
INFRA_ENV_VARS = re.compile(
    r"^(GCP_PROJECT|BIGQUERY_LOCATION|CFAP_DATASET_PREFIX|CFAP_LANDING_\w+|CFAP_ARTIFACTS_\w+)$"
)
WORKLOAD_ACCOUNTS = {"cfap-ingestion", "cfap-dbt", "cfap-measurement", "cfap-dagster"}
PROJECT_ROLES = {"roles/bigquery.jobUser", "roles/cloudsql.client"}
NODE_ROLE = "roles/container.defaultNodeServiceAccount"
BROAD_ROLES = (
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "roles/bigquery.admin",
    "roles/storage.admin",
    "roles/secretmanager.admin",
    "roles/iam.serviceAccountKeyAdmin",
)
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


# --- Reading the configuration -------------------------------------------------------


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ('"x"') and block metadata (__is_block__,
    __comments__): plain values, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


@pytest.fixture(scope="module")
def config() -> dict[str, dict[str, Any]]:
    """Every .tf file, parsed and unquoted, by file name."""
    parsed = {}
    for path in TF_FILES:
        with path.open() as handle:
            parsed[path.name] = unquote(hcl2.load(handle))
    return parsed


def _resources(config: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for document in config.values():
        for block in document.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    yield kind, name, body


@pytest.fixture(scope="module")
def resources(config: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """type -> name -> body."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, name, body in _resources(config):
        assert name not in found.get(kind, {}), f"{kind}.{name} is defined twice"
        found.setdefault(kind, {})[name] = body
    return found


def _merged_blocks(config: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for document in config.values():
        for block in document.get(kind, []):
            for key, value in block.items():
                assert key not in merged, f"{kind} {key} is defined twice"
                merged[key] = value
    return merged


@pytest.fixture(scope="module")
def locals_(config: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _merged_blocks(config, "locals")


@pytest.fixture(scope="module")
def variables(config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return _merged_blocks(config, "variable")


@pytest.fixture(scope="module")
def outputs(config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return _merged_blocks(config, "output")


def resolve(value: Any, locals_: dict[str, Any]) -> Any:
    """`${local.name}` and `${keys(local.name)}` resolved against the locals; the rest as is."""
    if isinstance(value, str):
        if match := re.fullmatch(r"\$\{local\.(\w+)\}", value):
            return resolve(locals_[match[1]], locals_)
        if match := re.fullmatch(r"\$\{keys\(local\.(\w+)\)\}", value):
            return sorted(resolve(locals_[match[1]], locals_))
        return value
    if isinstance(value, list):
        return [resolve(v, locals_) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, locals_) for k, v in value.items()}
    return value


def _tf_text() -> dict[str, str]:
    return {path.name: path.read_text() for path in TF_FILES}


# --- Parsing ---------------------------------------------------------------------------


def test_the_configuration_is_split_by_concern() -> None:
    expected = {
        "versions.tf",
        "providers.tf",
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "bigquery.tf",
        "storage.tf",
        "secrets.tf",
        "iam.tf",
        "network.tf",
        "cloudsql.tf",
        "gke.tf",
        "iap.tf",
    }
    assert expected <= {p.name for p in TF_FILES}
    assert (TERRAFORM / "terraform.tfvars.example").is_file()
    assert (TERRAFORM / "README.md").is_file()


@pytest.mark.parametrize("path", TF_FILES, ids=[p.name for p in TF_FILES])
def test_every_file_parses(path: Path) -> None:
    try:
        with path.open() as handle:
            hcl2.load(handle)
    except Exception as exc:
        pytest.fail(f"{path.relative_to(ROOT)} does not parse: {exc}")


def test_providers_are_pinned(config: dict[str, dict[str, Any]]) -> None:
    terraform = config["versions.tf"]["terraform"][0]
    assert terraform["required_version"].startswith(">=")
    providers = terraform["required_providers"][0]
    for name in ("google", "google-beta"):
        assert providers[name]["source"] == f"hashicorp/{name}"
        assert providers[name]["version"].startswith("~>"), f"{name} is not pinned with ~>"


# --- Names shared with the code and dbt -------------------------------------------------


def _dbt_schemas() -> set[str]:
    """Every `+schema` of dbt_project.yml (models and seeds)."""
    project = yaml.safe_load((DBT / "dbt_project.yml").read_text())
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "+schema":
                    found.add(str(value))
                else:
                    walk(value)

    walk(project.get("models", {}))
    walk(project.get("seeds", {}))
    return found


def _source_schemas() -> set[str]:
    """The schema each dbt source reads on BigQuery: the `<prefix>_<schema>` suffix."""
    sources = yaml.safe_load((DBT / "models" / "staging" / "_sources.yml").read_text())
    found = set()
    for source in sources["sources"]:
        suffixes = re.findall(r"'_(\w+)'", source["schema"])
        assert suffixes, f"source {source['name']}: no '_<schema>' suffix in {source['schema']!r}"
        assert set(suffixes) == {source["name"]}, f"source {source['name']} reads {suffixes}"
        found.add(source["name"])
    return found


def test_datasets_are_the_schemas_the_project_uses(
    locals_: dict[str, Any], resources: dict[str, dict[str, dict[str, Any]]]
) -> None:
    used = _source_schemas() | _dbt_schemas() | {RESULTS_SCHEMA, landing.RAW_SCHEMA}
    assert set(locals_["datasets"]) == used
    dataset = resources["google_bigquery_dataset"]["this"]
    assert dataset["for_each"] == "${local.datasets}"
    assert dataset["dataset_id"] == "${var.dataset_prefix}_${each.key}"
    assert dataset["location"] == "${var.bigquery_location}"


def _prefix_defaults_in_dbt() -> set[str]:
    files = [
        DBT / "profiles.yml",
        DBT / "models" / "staging" / "_sources.yml",
        DBT / "macros" / "generate_schema_name.sql",
    ]
    found = set()
    for path in files:
        found |= set(re.findall(r"env_var\('CFAP_DATASET_PREFIX', '(\w+)'\)", path.read_text()))
    return found


def test_dataset_prefix_default_is_the_code_and_dbt_default(
    variables: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    default = variables["dataset_prefix"]["default"]
    assert _prefix_defaults_in_dbt() == {default}

    # The prod resources as the code location builds them, with no prefix configured.
    from cfap_orchestration import resources as cfap_resources
    from cfap_orchestration.settings import load_settings

    monkeypatch.delenv("CFAP_DATASET_PREFIX", raising=False)
    env = {
        "CFAP_ENV": "prod",
        "GCP_PROJECT": "cfap-test-project",
        "CFAP_LANDING_URI": "gs://cfap-test-project-cfap-landing",
        "CFAP_ARTIFACTS_URI": "gs://cfap-test-project-cfap-artifacts",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # prod_resources() takes the settings in newer code, nothing in older: accept both.
    build: Any = cfap_resources.prod_resources
    built = build(load_settings()) if inspect.signature(build).parameters else build()
    assert built["warehouse"].dataset_prefix == default


def test_every_infrastructure_variable_the_code_reads_is_an_output(
    outputs: dict[str, dict[str, Any]],
) -> None:
    read = set()
    for path in (RESOURCES_PY, SETTINGS_PY):
        names = re.findall(
            r"""(?:EnvVar|getenv|environ\.get|env\.get)\(\s*["'](\w+)["']""", path.read_text()
        )
        read |= {n for n in names if INFRA_ENV_VARS.match(n)}
    env = outputs["code_location_env"]["value"]
    assert {"CFAP_ENV", "CFAP_DBT_TARGET"} <= set(env)
    assert env["CFAP_ENV"] == "prod" and env["CFAP_DBT_TARGET"] == "prod"
    assert read, "found no infrastructure variable in the code: is the pattern stale?"
    assert read <= set(env), f"the code reads {sorted(read - set(env))}, terraform outputs none"


def test_landing_lifecycle_follows_the_loader_folders(
    locals_: dict[str, Any], resources: dict[str, dict[str, dict[str, Any]]]
) -> None:
    kinds = {landing.FIRST_PARTY_EVENTS, landing.OFFLINE_CONVERSIONS, landing.EXPERIMENTS}
    assert set(locals_["landing_kinds"]) == kinds
    assert set(landing.BATCH_CONTRACTS) <= kinds
    bucket = resources["google_storage_bucket"]["landing"]
    prefixes = [rule["condition"][0].get("matches_prefix") for rule in bucket["lifecycle_rule"]]
    loaded = [p for p in prefixes if isinstance(p, str) and "local.landing_kinds" in p]
    assert len(loaded) == 1 and f"/{landing.LOADED}/" in loaded[0], prefixes
    assert [f"{landing.QUARANTINE}/"] in prefixes
    # The event files themselves are kept: no rule deletes first_party_events/ as such.
    assert not any(p == [f"{landing.FIRST_PARTY_EVENTS}/"] for p in prefixes)
    for name in ("landing", "artifacts"):
        body = resources["google_storage_bucket"][name]
        assert body["uniform_bucket_level_access"] is True
        assert body["public_access_prevention"] == "enforced"
        assert body["versioning"][0]["enabled"] is True


# --- The causal tables' schemas ----------------------------------------------------------


def test_schema_files_are_the_python_contracts() -> None:
    assert {p.stem for p in SCHEMAS.glob("*.json")} == {t.name for t in TERRAFORM_TABLES}
    for table in TERRAFORM_TABLES:
        fields = json.loads((SCHEMAS / f"{table.name}.json").read_text())
        assert [(f["name"], f["type"]) for f in fields] == table.column_types("bigquery"), (
            table.name
        )
        assert {f["mode"] for f in fields} == {"NULLABLE"}
        assert all(f["description"] for f in fields), f"{table.name}: a column lacks a description"
    assert stale_files(SCHEMAS) == [], (
        "run: python -m cfap_orchestration.bigquery_schemas terraform/schemas"
    )


def test_every_table_has_its_schema_file_and_partitioning(
    locals_: dict[str, Any], resources: dict[str, dict[str, dict[str, Any]]]
) -> None:
    tables = locals_["causal_tables"]
    contracts = {t.name: t for t in TERRAFORM_TABLES}
    assert set(tables) == set(contracts)
    assert set(resources["google_bigquery_table"]) == {"causal"}, "tables outside causal"
    table = resources["google_bigquery_table"]["causal"]
    assert table["for_each"] == "${local.causal_tables}"
    assert table["schema"] == '${file("${path.module}/schemas/${each.key}.json")}'
    assert table["deletion_protection"] == "${var.deletion_protection}"
    for name, spec in tables.items():
        assert (SCHEMAS / f"{name}.json").is_file()
        types = dict(contracts[name].column_types("bigquery"))
        if spec["partition_field"] is not None:
            assert types[spec["partition_field"]] == "TIMESTAMP", name
        assert set(spec["clustering"]) <= set(types), name
    assert tables["lift_analysis_results"]["partition_field"] == "created_at"
    assert tables["lift_analysis_results"]["clustering"][0] == "model_name"
    assert tables["job_status"]["partition_field"] is not None


# The design's data contract for the causal tables (DESIGN.md, "Data contracts": names
# users rely on; columns may be added, never renamed). Kept here because the design
# document lives outside the repository, where CI cannot read it.
DESIGN_CONTRACT = {
    "lift_analysis_results": [
        "run_id",
        "model_name",
        "model_version",
        "subject",
        "metric",
        "effect",
        "effect_relative",
        "ci_lower",
        "ci_upper",
        "p_value",
        "incremental_value",
        "incremental_roas",
        "n_obs",
        "diagnostics",
        "params",
        "created_at",
    ],
    "causal_model_registry": [
        "model_name",
        "model_version",
        "code_version",
        "params_hash",
        "params",
        "fitted_at",
        "artifact_uri",
        "diagnostics",
    ],
}


@pytest.mark.parametrize("table", sorted(DESIGN_CONTRACT))
def test_design_contract_columns_are_in_the_schema_files(table: str) -> None:
    names = {f["name"] for f in json.loads((SCHEMAS / f"{table}.json").read_text())}
    missing = set(DESIGN_CONTRACT[table]) - names
    assert not missing, f"contract columns missing from {table}: {sorted(missing)}"


# --- Secrets -----------------------------------------------------------------------------


def _secret_env_vars_in_code() -> set[str]:
    env_vars = set(re.findall(r"""dg\.EnvVar\(\s*["'](\w+)["']""", RESOURCES_PY.read_text()))
    assert env_vars, "found no dg.EnvVar in resources.py: is the pattern stale?"
    secrets = env_vars - NOT_SECRETS
    if "CFAP_ALERT_WEBHOOK_URL" in JOB_STATUS_PY.read_text():
        secrets.add("CFAP_ALERT_WEBHOOK_URL")
    return secrets


def test_every_secret_the_code_reads_has_a_secret(
    locals_: dict[str, Any], outputs: dict[str, dict[str, Any]]
) -> None:
    secrets = {**locals_["platform_secrets"], **locals_["dagster_secrets"]}
    assert set(secrets) == PLATFORM_SECRETS | DAGSTER_SECRETS
    assert set(locals_["platform_secrets"]) == PLATFORM_SECRETS
    code = _secret_env_vars_in_code()
    assert code <= set(secrets), (
        f"secrets without a terraform secret: {sorted(code - set(secrets))}"
    )
    for env_var, secret_id in secrets.items():
        assert re.fullmatch(r"cfap(-[a-z0-9]+)+", secret_id), f"{env_var}: {secret_id!r}"
    assert len(set(secrets.values())) == len(secrets), "two variables share a secret id"
    assert "secret_ids" in outputs


def test_terraform_stores_no_secret_value_but_the_generated_password(
    resources: dict[str, dict[str, dict[str, Any]]],
) -> None:
    versions = resources.get("google_secret_manager_secret_version", {})
    assert set(versions) == {"dagster_db_password"}
    version = versions["dagster_db_password"]
    assert version["secret"] == '${google_secret_manager_secret.this["DAGSTER_PG_PASSWORD"].id}'
    assert version["secret_data"] == "${random_password.dagster_db.result}"
    user = resources["google_sql_user"]["dagster"]
    assert user["password"] == "${random_password.dagster_db.result}"


# --- IAM ---------------------------------------------------------------------------------


def test_no_broad_role_anywhere() -> None:
    for name, text in _tf_text().items():
        for role in BROAD_ROLES:
            assert not re.search(rf'"{re.escape(role)}"', text), f"{name} grants {role}"


def test_project_level_grants_are_only_the_allowed_roles(
    locals_: dict[str, Any], resources: dict[str, dict[str, dict[str, Any]]]
) -> None:
    for authoritative in ("google_project_iam_binding", "google_project_iam_policy"):
        assert authoritative not in resources, f"{authoritative} replaces others' grants"
    members = resources["google_project_iam_member"]
    assert set(members) == {"workload", "gke_nodes"}
    assert members["workload"]["for_each"] == "${local.project_grants}"
    assert members["workload"]["role"] == "${each.value.role}"
    project_roles = locals_["project_roles"]
    assert set(project_roles) == WORKLOAD_ACCOUNTS
    for account, roles in project_roles.items():
        assert set(roles) <= PROJECT_ROLES, account
        assert "roles/bigquery.jobUser" in roles, account
    assert [a for a, roles in project_roles.items() if "roles/cloudsql.client" in roles] == [
        "cfap-dagster"
    ]
    # The node identity gets GKE's least-privilege node role, nothing else.
    assert members["gke_nodes"]["role"] == NODE_ROLE


def test_dataset_grants_are_exactly_the_intended_ones(
    locals_: dict[str, Any], resources: dict[str, dict[str, dict[str, Any]]]
) -> None:
    assert resolve(locals_["dataset_access"], locals_) == INTENDED_DATASET_ACCESS
    for authoritative in (
        "google_bigquery_dataset_iam_binding",
        "google_bigquery_dataset_iam_policy",
    ):
        assert authoritative not in resources
    members = resources["google_bigquery_dataset_iam_member"]
    assert set(members) == {"workload", "reference_editors"}
    assert members["workload"]["for_each"] == "${local.dataset_grants}"
    assert members["reference_editors"]["dataset_id"].endswith('["reference"].dataset_id}')
    for name, dataset in resources["google_bigquery_dataset"].items():
        assert "access" not in dataset, f"dataset {name} sets ACL entries besides IAM"


def test_bucket_and_secret_grants_are_exactly_the_intended_ones(
    locals_: dict[str, Any], resources: dict[str, dict[str, dict[str, Any]]]
) -> None:
    assert resolve(locals_["bucket_access"], locals_) == INTENDED_BUCKET_ACCESS
    secret_access = resolve(locals_["secret_access"], locals_)
    assert {k: set(v) for k, v in secret_access.items()} == INTENDED_SECRET_ACCESS
    assert "google_storage_bucket_iam_binding" not in resources
    # Accounts without a bucket role write only their step logs and IO outputs.
    conditional = resources["google_storage_bucket_iam_member"]["artifact_logs"]
    assert set(locals_["artifact_log_writers"]) == {"cfap-ingestion", "cfap-dbt"}
    expression = conditional["condition"][0]["expression"]
    assert "/objects/compute-logs/" in expression and "/objects/io/" in expression
    secret_member = resources["google_secret_manager_secret_iam_member"]["workload"]
    assert secret_member["role"] == "roles/secretmanager.secretAccessor"


def test_each_service_account_is_its_kubernetes_service_account(
    locals_: dict[str, Any],
    variables: dict[str, dict[str, Any]],
    resources: dict[str, dict[str, dict[str, Any]]],
) -> None:
    assert set(locals_["service_accounts"]) == WORKLOAD_ACCOUNTS
    assert variables["namespace"]["default"] == "cfap"
    assert locals_["workload_pool"] == "${var.project_id}.svc.id.goog"
    binding = resources["google_service_account_iam_member"]["workload_identity"]
    assert binding["for_each"] == "${local.service_accounts}"
    assert binding["role"] == "roles/iam.workloadIdentityUser"
    assert (
        binding["member"] == "serviceAccount:${local.workload_pool}[${var.namespace}/${each.key}]"
    )
    account = resources["google_service_account"]["workload"]
    assert account["account_id"] == "${each.key}"


def test_no_service_account_key_exists(resources: dict[str, dict[str, dict[str, Any]]]) -> None:
    assert "google_service_account_key" not in resources
    for name, text in _tf_text().items():
        assert "google_service_account_key" not in text, name


# --- Cloud SQL, cluster, web UI ----------------------------------------------------------


def test_cloud_sql_is_private_encrypted_and_recoverable(
    resources: dict[str, dict[str, dict[str, Any]]],
) -> None:
    instance = resources["google_sql_database_instance"]["dagster"]
    settings = instance["settings"][0]
    ip = settings["ip_configuration"][0]
    assert ip["ipv4_enabled"] is False
    assert ip["ssl_mode"] in {"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"}
    assert "authorized_networks" not in ip
    backups = settings["backup_configuration"][0]
    assert backups["enabled"] is True and backups["point_in_time_recovery_enabled"] is True
    assert instance["deletion_protection"] == "${var.deletion_protection}"
    assert resources["google_sql_database"]["dagster"]["name"] == "dagster"
    assert resources["google_sql_user"]["dagster"]["name"] == "dagster"


def test_cluster_is_private_with_workload_identity(
    resources: dict[str, dict[str, dict[str, Any]]],
) -> None:
    cluster = resources["google_container_cluster"]["main"]
    assert cluster["private_cluster_config"][0]["enable_private_nodes"] is True
    assert cluster["workload_identity_config"][0]["workload_pool"] == "${local.workload_pool}"
    assert cluster["release_channel"][0]["channel"] in {"REGULAR", "STABLE"}
    assert "master_authorized_networks_config" in cluster
    nat = resources["google_compute_router_nat"]["main"]
    assert nat["router"] == "${google_compute_router.main.name}"


def test_web_ui_is_behind_iap(
    resources: dict[str, dict[str, dict[str, Any]]], locals_: dict[str, Any]
) -> None:
    assert '"iap.googleapis.com"' in locals_["services"]
    members = resources["google_iap_web_iam_member"]["webserver"]
    assert members["role"] == "roles/iap.httpsResourceAccessor"
    assert members["for_each"] == "${toset(var.iap_members)}"
    assert "webserver" in resources["google_compute_global_address"]
    readme = (TERRAFORM / "README.md").read_text()
    assert "cfap-webserver-iap" in readme and "webserver_static_ip_name" in readme


def test_outputs_name_everything_deploy_needs(outputs: dict[str, dict[str, Any]]) -> None:
    expected = {
        "dataset_ids",
        "landing_uri",
        "artifacts_uri",
        "landing_bucket",
        "artifacts_bucket",
        "service_account_emails",
        "secret_ids",
        "cloudsql_connection_name",
        "cloudsql_private_ip",
        "gke_cluster_name",
        "artifact_registry_repository_url",
        "webserver_static_ip_name",
        "code_location_env",
    }
    assert expected <= set(outputs)


# --- checkov -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.skip(f"checkov is not installed at {CHECKOV} (make venv installs it)")
    completed = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "terraform",
            "--skip-download",
            "-o",
            "json",
            "-d",
            "terraform",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    reports = report if isinstance(report, list) else [report]
    [terraform] = [r for r in reports if r.get("check_type") == "terraform"]
    result: dict[str, Any] = terraform
    return result


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert summary["parsing_errors"] == 0
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["passed"] > 50


def test_every_checkov_skip_has_a_reason_and_is_used(checkov_report: dict[str, Any]) -> None:
    written = set()
    for name, text in _tf_text().items():
        for match in SKIP_COMMENT.finditer(text):
            check_id, reason = match[1], (match[2] or "").strip()
            assert re.fullmatch(r"CKV2?_GCP_\d+", check_id), f"{name}: odd check id {check_id}"
            assert len(reason) >= 20, f"{name}: skip of {check_id} without a written reason"
            written.add(check_id)
    skipped = {c["check_id"] for c in checkov_report["results"]["skipped_checks"]}
    assert skipped == written, "a skip comment no longer matches a check, or checkov skips more"
