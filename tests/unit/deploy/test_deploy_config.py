"""The production deployment (deploy/), validated offline against the real schemas.

- deploy/prod/dagster.yaml: Dagster's own instance schema, then each configured class's
  config schema (resolved from its module and class, as the instance does), with dummy
  environment values. Nothing is instantiated: no database, cluster or bucket is touched.
- deploy/helm/values.yaml: the Dagster chart's values JSON schema (vendored in fixtures/,
  made strict so that a misspelled key fails), the Kubernetes API models for the raw
  Kubernetes objects the chart passes through, and Dagster's schemas for the settings the
  chart copies into dagster.yaml.
- the manifests in deploy/helm/, the Dockerfile, .dockerignore, the pinned versions, and
  that every environment variable the code reads is deployed.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import shlex
import shutil
import tomllib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes.client as k8s
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type, validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config, dagster_instance_config_schema
from dagster._core.instance.ref import configurable_class_data, configurable_storage_data
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._serdes import ConfigurableClassData
from dagster_gcp.gcs.compute_log_manager import GCSComputeLogManager
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import DAGSTER_PG_PASSWORD_ENV_VAR, DAGSTER_PG_PASSWORD_SECRET_KEY
from dagster_k8s.models import k8s_snake_case_dict
from dagster_postgres import DagsterPostgresStorage
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from cfap_orchestration.defs.kubernetes import ROLE_SECRETS

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
HELM = DEPLOY / "helm"
PROD_INSTANCE = DEPLOY / "prod" / "dagster.yaml"
CONSTRAINTS = DEPLOY / "prod" / "constraints.txt"
VALUES = HELM / "values.yaml"
CODE_ENV = HELM / "code-env.yaml"
SERVICE_ACCOUNTS = HELM / "service-accounts.yaml"
IAP = HELM / "iap.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
README = DEPLOY / "README.md"
CHART_SCHEMA = Path(__file__).parent / "fixtures" / "dagster-chart-values.schema.json"

NAMESPACE = "cfap"
RELEASE = "dagster"
# The chart names the webserver Service "<release>-webserver" (helpers: dagster.webserver.fullname).
WEBSERVER_SERVICE = f"{RELEASE}-webserver"
DAGSTER_SERVICE_ACCOUNT = "cfap-dagster"
PLATFORM_SECRET = "cfap-platform-credentials"
ALERTS_SECRET = "cfap-alerts"
CODE_ENV_CONFIGMAP = "cfap-code-env"
POSTGRES_SECRET = "dagster-postgresql-secret"
WI_ANNOTATION = "iam.gke.io/gcp-service-account"
# Set for the instance validation only; none of these is real.
INSTANCE_ENV = {
    "DAGSTER_PG_HOST": "10.20.0.3",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_COMPUTE_LOG_BUCKET": "cfap-artifacts-test",
    "CFAP_K8S_NAMESPACE": NAMESPACE,
}
REMOTE_REF_PREFIX = "https://"
SECRET_NAME_PATTERN = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIALS|WEBHOOK")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(VALUES)
    return loaded


def user_deployment(chart_values: Mapping[str, Any]) -> dict[str, Any]:
    deployments = chart_values["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1, "one code location: cfap_orchestration.definitions"
    deployment: dict[str, Any] = deployments[0]
    return deployment


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {camel_to_snake(key): value for key, value in mapping.items()}


# --- deploy/prod/dagster.yaml: Dagster's instance and class schemas ----------------------


@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in INSTANCE_ENV.items():
        monkeypatch.setenv(key, value)
    return INSTANCE_ENV


def validated_instance(config_file: Path, tmp_path: Path) -> Mapping[str, Any]:
    """The file as DagsterInstance.from_config reads it: schema-validated, not instantiated."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(config_file, home / "dagster.yaml")
    config, custom_instance_class = dagster_instance_config(str(home))
    assert custom_instance_class is None
    return config


def class_sections(config: Mapping[str, Any]) -> dict[str, ConfigurableClassData]:
    """Each class-configured section, resolved to module/class/config as DagsterInstance does."""
    storage, *_legacy = configurable_storage_data(config["storage"], {})
    assert storage is not None
    sections = {"storage": storage}
    for name in ("run_launcher", "run_coordinator", "compute_logs", "scheduler"):
        sections[name] = configurable_class_data(config[name])
    return sections


def class_config(data: ConfigurableClassData) -> tuple[type, Mapping[str, Any]]:
    """The class a section names and its config, processed against the class's own schema
    (env vars resolved) exactly as ConfigurableClassData.rehydrate does before it
    instantiates, which is the step left out here."""
    klass = getattr(importlib.import_module(data.module_name), data.class_name)
    raw = yaml.safe_load(data.config_yaml) or {}
    result = process_config(resolve_to_config_type(klass.config_type()), raw)
    messages = [error.message for error in result.errors or []]
    assert result.success, f"{data.module_name}.{data.class_name}: {messages}"
    assert result.value is not None
    return klass, result.value


def test_prod_instance_is_valid_dagster_config(
    instance_env: dict[str, str], tmp_path: Path
) -> None:
    config = validated_instance(PROD_INSTANCE, tmp_path)
    classes = {name: class_config(data) for name, data in class_sections(config).items()}

    storage_class, storage = classes["storage"]
    assert issubclass(storage_class, DagsterPostgresStorage)
    database = storage["postgres_db"]
    assert database["hostname"] == instance_env["DAGSTER_PG_HOST"]
    assert database["password"] == instance_env["DAGSTER_PG_PASSWORD"]
    assert (database["db_name"], database["username"]) == ("dagster", "dagster")

    launcher_class, launcher = classes["run_launcher"]
    assert issubclass(launcher_class, K8sRunLauncher)
    assert launcher["job_namespace"] == NAMESPACE
    assert launcher["service_account_name"] == DAGSTER_SERVICE_ACCOUNT

    coordinator_class, coordinator = classes["run_coordinator"]
    assert issubclass(coordinator_class, QueuedRunCoordinator)
    assert coordinator["max_concurrent_runs"] > 0
    limits = {
        (limit["key"], limit.get("value")): limit["limit"]
        for limit in coordinator["tag_concurrency_limits"]
    }
    assert limits[("cfap/job", "mmm_weekly_refit")] == 1
    assert 0 < limits[("dagster/backfill", None)] < coordinator["max_concurrent_runs"]

    logs_class, logs = classes["compute_logs"]
    assert issubclass(logs_class, GCSComputeLogManager)
    assert logs["bucket"] == instance_env["DAGSTER_COMPUTE_LOG_BUCKET"]
    assert logs["prefix"] == "compute-logs"

    assert config["telemetry"] == {"enabled": False}
    assert config["run_monitoring"]["enabled"] is True
    assert config["freshness"] == {"enabled": True}


def test_prod_instance_reads_every_host_and_secret_from_the_environment() -> None:
    raw = load_yaml(PROD_INSTANCE)
    database = raw["storage"]["postgres"]["postgres_db"]
    assert database["password"] == {"env": DAGSTER_PG_PASSWORD_ENV_VAR}
    assert database["hostname"] == {"env": "DAGSTER_PG_HOST"}
    assert raw["compute_logs"]["config"]["bucket"] == {"env": "DAGSTER_COMPUTE_LOG_BUCKET"}
    # The launcher mounts the same password into run and step pods under the same name.
    assert raw["run_launcher"]["config"]["postgres_password_secret"] == POSTGRES_SECRET
    for name in set(INSTANCE_ENV) - {DAGSTER_PG_PASSWORD_ENV_VAR}:
        assert name in raw["run_launcher"]["config"]["env_vars"], name


def test_an_unset_environment_variable_fails_the_instance(
    instance_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_PG_HOST")
    storage = class_sections(validated_instance(PROD_INSTANCE, tmp_path))["storage"]
    with pytest.raises(AssertionError, match="DAGSTER_PG_HOST"):
        class_config(storage)


@pytest.mark.parametrize(
    ("mutate", "misspelled"),
    [
        (lambda c: c.__setitem__("run_monitorng", c.pop("run_monitoring")), "run_monitorng"),
        (
            lambda c: c["run_launcher"]["config"].__setitem__(
                "job_namespce", c["run_launcher"]["config"].pop("job_namespace")
            ),
            "job_namespce",
        ),
        (
            lambda c: c["run_coordinator"]["config"].__setitem__(
                "max_concurrent_run", c["run_coordinator"]["config"].pop("max_concurrent_runs")
            ),
            "max_concurrent_run",
        ),
    ],
)
def test_a_misspelled_instance_key_is_rejected(
    instance_env: dict[str, str],
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None],
    misspelled: str,
) -> None:
    config = load_yaml(PROD_INSTANCE)
    mutate(config)
    mutated = tmp_path / "dagster.yaml"
    mutated.write_text(yaml.safe_dump(config))
    with pytest.raises((DagsterInvalidConfigError, AssertionError), match=misspelled):
        loaded = validated_instance(mutated, tmp_path)
        for data in class_sections(loaded).values():
            class_config(data)


# --- deploy/helm/values.yaml: the chart's schema, Kubernetes models, Dagster schemas -----


def strict_chart_schema() -> dict[str, Any]:
    """The vendored chart schema, adapted to validate our file on its own, strictly.

    - `required` is dropped (except in the type -> config conditionals): Helm validates
      our file merged over the chart's defaults, which are not vendored here.
    - Remote `$ref`s to kubernetesjsonschema.dev are dropped (no network): those objects
      are checked with the Kubernetes client models instead (`kubernetes_objects`).
    - Every chart-defined object with declared properties forbids other keys, so a
      misspelled key fails even where the chart itself would let it pass silently.
    """
    schema = json.loads(CHART_SCHEMA.read_text())
    schema.pop("$comment")

    def walk(node: Any, in_conditional: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(item, in_conditional) for item in node]
        if not isinstance(node, dict):
            return node
        remote = str(node.get("$ref", "")).startswith(REMOTE_REF_PREFIX)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and remote:
                continue
            if key == "required" and not in_conditional:
                continue
            out[key] = walk(value, in_conditional or key == "then")
        if out.get("type") == "object" and out.get("properties") and not remote:
            out["additionalProperties"] = False
        return out

    strict: dict[str, Any] = walk(schema)
    return strict


def _at(mapping: Any, *path: str | int) -> Any:
    """The value at `path`, or None where a key is missing (a mutated copy may lack it)."""
    for step in path:
        try:
            mapping = mapping[step]
        except (KeyError, IndexError, TypeError):
            return None
    return mapping


def kubernetes_objects(chart_values: Mapping[str, Any]) -> Iterator[tuple[str, type, Any]]:
    """The raw Kubernetes objects in our values: (where, API model, value)."""
    deployment = _at(chart_values, "dagster-user-deployments", "deployments", 0) or {}
    run_config = _at(chart_values, "runLauncher", "config", "k8sRunLauncher", "runK8sConfig")
    found: list[tuple[str, type, Any]] = []
    for where, component in (
        ("dagsterWebserver", chart_values.get("dagsterWebserver")),
        ("dagsterDaemon", chart_values.get("dagsterDaemon")),
        ("user deployment", deployment),
    ):
        for key, model in (
            ("podSecurityContext", k8s.V1PodSecurityContext),
            ("securityContext", k8s.V1SecurityContext),
            ("resources", k8s.V1ResourceRequirements),
        ):
            found.append((f"{where}.{key}", model, _at(component, key)))
    probe = _at(chart_values, "dagsterWebserver", "readinessProbe")
    found.append(("dagsterWebserver.readinessProbe", k8s.V1Probe, probe))
    found += [("user deployment env", k8s.V1EnvVar, e) for e in deployment.get("env") or []]
    found += [
        ("user deployment envConfigMaps", k8s.V1ConfigMapEnvSource, e)
        for e in deployment.get("envConfigMaps") or []
    ]
    for key, model in (
        ("containerConfig", k8s.V1Container),
        ("podSpecConfig", k8s.V1PodSpec),
        ("jobSpecConfig", k8s.V1JobSpec),
    ):
        found.append((f"runK8sConfig.{key}", model, _at(run_config, key)))
    yield from ((where, model, value) for where, model, value in found if value is not None)


def chart_values_errors(chart_values: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(strict_chart_schema())
    errors = []
    for error in validator.iter_errors(chart_values):
        # For anyOf (mostly "an object or null"), report the object branch's own error.
        causes = sorted(error.context or [error], key=lambda e: e.validator == "type")
        cause = causes[0]
        where = "/".join(map(str, cause.absolute_path)) or "<root>"
        errors.append(f"{where}: {cause.message}")
    for where, model, value in kubernetes_objects(chart_values):
        try:
            k8s_snake_case_dict(model, value)
        except Exception as exc:  # the models raise a bare Exception naming the keys
            errors.append(f"{where}: {exc}")
    # Settings the chart copies into dagster.yaml, checked with Dagster's own schema.
    instance_schema = dagster_instance_config_schema()
    for section in ("runMonitoring", "runRetries"):
        settings = _at(chart_values, "dagsterDaemon", section) or {}
        result = validate_config(
            instance_schema[camel_to_snake(section)].config_type, snake_keys(settings)
        )
        errors.extend(f"dagsterDaemon.{section}: {e.message}" for e in result.errors or [])
    extra = chart_values.get("additionalInstanceConfig") or {}
    result = validate_config(instance_schema, extra)
    errors.extend(f"additionalInstanceConfig: {e.message}" for e in result.errors or [])
    return errors


def test_values_match_the_chart_schema_and_the_kubernetes_models() -> None:
    assert chart_values_errors(values()) == []


def test_the_vendored_schema_names_its_source() -> None:
    comment = json.loads(CHART_SCHEMA.read_text())["$comment"]
    assert "helm/dagster/values.schema.json" in comment
    assert re.search(r"commit [0-9a-f]{40}", comment)


def _rename(path: tuple[str | int, ...], new_key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(chart_values: dict[str, Any]) -> None:
        parent: Any = chart_values
        for step in path[:-1]:
            parent = parent[step]
        parent[new_key] = parent.pop(path[-1])

    return mutate


RUN_COORDINATOR = ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator")
DEPLOYMENT = ("dagster-user-deployments", "deployments", 0)


@pytest.mark.parametrize(
    ("mutate", "misspelled"),
    [
        (_rename(("dagsterDaemon",), "dagsterDeamon"), "dagsterDeamon"),
        (_rename((*RUN_COORDINATOR, "maxConcurrentRuns"), "maxConcurentRuns"), "maxConcurentRuns"),
        (
            _rename((*DEPLOYMENT, "includeConfigInLaunchedRuns"), "includeConfigInLaunchRuns"),
            "includeConfigInLaunchRuns",
        ),
        (_rename(("dagsterWebserver", "service", "type"), "typ"), "typ"),
        (
            _rename(("dagsterWebserver", "podSecurityContext", "runAsNonRoot"), "runAsNonRot"),
            "runAsNonRot",
        ),
        (
            _rename(("dagsterDaemon", "runMonitoring", "startTimeoutSeconds"), "startTimeoutSecs"),
            "start_timeout_secs",
        ),
    ],
)
def test_a_misspelled_values_key_is_rejected(
    mutate: Callable[[dict[str, Any]], None], misspelled: str
) -> None:
    mutated = copy.deepcopy(values())
    mutate(mutated)
    errors = chart_values_errors(mutated)
    assert any(misspelled in error for error in errors), errors


def test_values_and_prod_instance_agree() -> None:
    """values.yaml renders, through the chart's instance template, what dagster.yaml says."""
    chart_values = values()
    instance = load_yaml(PROD_INSTANCE)
    daemon = chart_values["dagsterDaemon"]

    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert snake_keys(queued) == instance["run_coordinator"]["config"]
    for section in ("runMonitoring", "runRetries", "sensors", "schedules"):
        assert snake_keys(daemon[section]) == instance[camel_to_snake(section)], section
    retention = chart_values["retention"]
    assert retention["enabled"] is True
    for kind in ("schedule", "sensor"):
        assert snake_keys(retention[kind]) == instance["retention"][kind], kind
    assert chart_values["telemetry"] == instance["telemetry"] == {"enabled": False}
    for key, value in chart_values["additionalInstanceConfig"].items():
        assert instance[key] == value, key

    logs = chart_values["computeLogManager"]
    assert logs["type"] == "GCSComputeLogManager"
    gcs = logs["config"]["gcsComputeLogManager"]
    assert gcs["prefix"] == instance["compute_logs"]["config"]["prefix"]
    assert gcs["uploadInterval"] == instance["compute_logs"]["config"]["upload_interval"]

    postgres = chart_values["postgresql"]
    database = instance["storage"]["postgres"]["postgres_db"]
    assert postgres["enabled"] is False
    assert chart_values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in postgres
    assert postgres["postgresqlUsername"] == database["username"]
    assert postgres["postgresqlDatabase"] == database["db_name"]
    assert postgres["service"]["port"] == database["port"]
    assert postgres["postgresqlParams"] == database["params"]
    # The chart, the K8sRunLauncher and dagster.yaml use one secret and one variable name.
    launcher = instance["run_launcher"]["config"]
    assert chart_values["global"]["postgresqlSecretName"] == launcher["postgres_password_secret"]
    assert database["password"] == {"env": DAGSTER_PG_PASSWORD_ENV_VAR}
    assert f"--from-file={DAGSTER_PG_PASSWORD_SECRET_KEY}=" in README.read_text()

    assert chart_values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s_launcher = chart_values["runLauncher"]["config"]["k8sRunLauncher"]
    assert k8s_launcher["jobNamespace"] == NAMESPACE
    run_config = k8s_launcher["runK8sConfig"]
    for camel, model in (
        ("containerConfig", k8s.V1Container),
        ("podSpecConfig", k8s.V1PodSpec),
        ("jobSpecConfig", k8s.V1JobSpec),
    ):
        ours = k8s_snake_case_dict(model, run_config[camel])
        assert ours == k8s_snake_case_dict(model, launcher["run_k8s_config"][camel_to_snake(camel)])

    names = {
        chart_values["global"]["serviceAccountName"],
        chart_values["serviceAccount"]["name"],
        launcher["service_account_name"],
    }
    assert names == {DAGSTER_SERVICE_ACCOUNT}


def test_every_pod_runs_as_the_images_non_root_user() -> None:
    chart_values = values()
    uid = dockerfile_user_uid()
    contexts = [
        chart_values["dagsterWebserver"]["podSecurityContext"],
        chart_values["dagsterDaemon"]["podSecurityContext"],
        user_deployment(chart_values)["podSecurityContext"],
        chart_values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"][
            "securityContext"
        ],
    ]
    for context in contexts:
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == uid


def test_the_code_server_serves_the_definitions_module() -> None:
    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert module == "cfap_orchestration.definitions"
    deployment = user_deployment(values())
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    assert deployment["port"] == 3030
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    cmd = json.loads(dockerfile_instruction_args("CMD")[-1])
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[cmd.index("-m") + 1] == module


def test_one_image_for_every_component() -> None:
    chart_values = values()
    images = [
        chart_values["dagsterWebserver"]["image"],
        chart_values["dagsterDaemon"]["image"],
        user_deployment(chart_values)["image"],
    ]
    assert all(image == images[0] for image in images)
    assert images[0]["repository"].endswith(
        "-docker.pkg.dev/${GCP_PROJECT}/cfap/cfap-orchestration"
    )
    assert images[0]["tag"] == "${IMAGE_TAG}"


# --- environment: every variable the code reads is deployed -------------------------------


def code_env() -> dict[str, str]:
    (configmap,) = load_docs(CODE_ENV)
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"] == {
        "name": CODE_ENV_CONFIGMAP,
        "namespace": NAMESPACE,
        "labels": configmap["metadata"]["labels"],
    }
    k8s_snake_case_dict(k8s.V1ConfigMap, configmap)
    data: dict[str, str] = configmap["data"]
    assert all(isinstance(value, str) for value in data.values())
    return data


def secret_env() -> dict[str, dict[str, Any]]:
    """The user deployment's env entries, each from a Secret (settings are in the ConfigMap)."""
    refs: dict[str, dict[str, Any]] = {}
    for entry in user_deployment(values())["env"]:
        assert "value" not in entry, f"{entry['name']}: settings belong in {CODE_ENV.name}"
        refs[entry["name"]] = entry["valueFrom"]["secretKeyRef"]
    return refs


def platform_secret_keys() -> set[str]:
    """The keys the README's sync writes into the platform-credentials Secret."""
    readme = README.read_text()
    (loop,) = re.findall(r"for var in ([A-Z0-9_\s\\]+); do", readme)
    return set(loop.replace("\\", " ").split())


def deployed_env() -> set[str]:
    """Every variable some pod of the deployment gets: the code server's settings and
    alert secret, and the credentials the executor mounts in the ingestion step pods."""
    deployment = user_deployment(values())
    assert {"name": CODE_ENV_CONFIGMAP} in deployment["envConfigMaps"]
    assert ROLE_SECRETS["cfap-ingestion"] == (PLATFORM_SECRET,)
    return set(secret_env()) | set(code_env()) | platform_secret_keys()


def names_in(source: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, source))


def test_every_env_var_of_the_resources_is_deployed() -> None:
    source = (ROOT / "cfap_orchestration" / "resources.py").read_text()
    env_vars = names_in(source, r"\bEnvVar\(\s*[\"']([A-Za-z0-9_]+)[\"']")
    assert env_vars, "no dg.EnvVar(...) found: has resources.py moved?"
    read_directly = names_in(
        source, r"(?:os\.getenv|os\.environ\.get|_id_list)\(\s*[\"']([A-Za-z0-9_]+)[\"']"
    )
    missing = (env_vars | read_directly) - deployed_env()
    assert not missing, f"read by the code, not deployed: {sorted(missing)}"


def test_dbt_prod_profile_and_settings_variables_are_deployed() -> None:
    profiles = load_yaml(ROOT / "dbt_project" / "profiles.yml")
    prod = json.dumps(profiles["cfap"]["outputs"]["prod"])
    dbt_vars = names_in(prod, r"env_var\('([A-Za-z0-9_]+)'")
    # Key files are never used: BigQuery and GCS authenticate with Workload Identity (ADC).
    dbt_vars.discard("GOOGLE_APPLICATION_CREDENTIALS")
    required = dbt_vars | {"CFAP_ENV", "CFAP_DBT_TARGET", "CFAP_ARTIFACTS_URI"}
    assert required <= deployed_env(), sorted(required - deployed_env())
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in deployed_env()
    settings = code_env()
    assert (settings["CFAP_ENV"], settings["CFAP_DBT_TARGET"]) == ("prod", "prod")
    assert settings["CFAP_BIGQUERY_AUTH_METHOD"] == "oauth"
    assert settings["CFAP_K8S_NAMESPACE"] == NAMESPACE


def test_platform_credentials_reach_the_ingestion_pods_only() -> None:
    # The code server holds only the alert webhook, from its own Secret.
    assert secret_env() == {
        "CFAP_ALERT_WEBHOOK_URL": {
            "name": ALERTS_SECRET,
            "key": "CFAP_ALERT_WEBHOOK_URL",
            "optional": True,
        }
    }
    assert PLATFORM_SECRET not in json.dumps(values())
    assert PLATFORM_SECRET not in json.dumps(load_yaml(PROD_INSTANCE))
    # Every platform credential the resources read is a key of the Secret the executor
    # mounts in the ingestion pods, and no other role mounts a Secret.
    source = (ROOT / "cfap_orchestration" / "resources.py").read_text()
    secrets = {
        n
        for n in names_in(source, r"\bEnvVar\(\s*[\"']([A-Za-z0-9_]+)[\"']")
        if SECRET_NAME_PATTERN.search(n)
    }
    assert secrets and secrets <= platform_secret_keys(), sorted(secrets - platform_secret_keys())
    assert set(ROLE_SECRETS) == {"cfap-ingestion"}
    settings = code_env()
    leaked = {name for name in settings if SECRET_NAME_PATTERN.search(name)}
    assert not leaked, f"secret-looking names in the ConfigMap: {sorted(leaked)}"


def test_every_placeholder_is_filled_by_the_readme() -> None:
    readme = README.read_text()
    (cfap_vars,) = re.findall(r"^CFAP_VARS='([^']*)'", readme, flags=re.MULTILINE)
    allowed = set(re.findall(r"\$\{([A-Z0-9_]+)\}", cfap_vars))
    for name in allowed:
        assert re.search(rf"^export {name}=", readme, flags=re.MULTILINE), name
    for manifest in HELM.glob("*.yaml"):
        used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", manifest.read_text()))
        assert used <= allowed, f"{manifest.name}: {sorted(used - allowed)} not in CFAP_VARS"
        assert "$(" not in manifest.read_text(), manifest.name


# --- service accounts, IAP, exposure ------------------------------------------------------


def test_service_accounts_cover_every_step_role_with_workload_identity() -> None:
    accounts: dict[str, str] = {}
    for doc in load_docs(SERVICE_ACCOUNTS):
        assert doc["kind"] == "ServiceAccount"
        k8s_snake_case_dict(k8s.V1ServiceAccount, doc)
        assert doc["metadata"]["namespace"] == NAMESPACE
        accounts[doc["metadata"]["name"]] = doc["metadata"]["annotations"][WI_ANNOTATION]
    chart_values = values()
    accounts[chart_values["serviceAccount"]["name"]] = chart_values["serviceAccount"][
        "annotations"
    ][WI_ANNOTATION]
    assert chart_values["serviceAccount"]["create"] is True
    # The chart's Role (jobs, pods, pods/log, events) bound to cfap-dagster: run workers
    # start their step jobs with it. It exists unless rbacEnabled is turned off.
    assert chart_values.get("rbacEnabled", True) is True
    for name, gcp_account in accounts.items():
        assert gcp_account == f"{name}@${{GCP_PROJECT}}.iam.gserviceaccount.com", name

    # Every account the code's k8s executor assigns to a step pod exists here.
    executor = (ROOT / "cfap_orchestration" / "defs" / "kubernetes.py").read_text()
    roles = names_in(executor, r"[\"'](cfap-[a-z]+)[\"']")
    assert roles, "no step roles found in cfap_orchestration/defs/kubernetes.py"
    assert roles <= set(accounts), sorted(roles - set(accounts))
    iam = ROOT / "terraform" / "iam.tf"
    if iam.exists():  # terraform creates the GCP accounts of the same names
        for name in accounts:
            assert re.search(rf"\b{name}\b", iam.read_text()), f"{name} not in terraform/iam.tf"


def iap_docs() -> dict[str, dict[str, Any]]:
    docs = {doc["kind"]: doc for doc in load_docs(IAP)}
    assert len(docs) == len(load_docs(IAP)), "one object of each kind"
    for doc in docs.values():
        assert doc["metadata"]["namespace"] == NAMESPACE
    return docs


def test_iap_guards_the_webserver() -> None:
    docs = iap_docs()
    assert set(docs) == {
        "BackendConfig",
        "FrontendConfig",
        "ManagedCertificate",
        "Ingress",
        "NetworkPolicy",
    }
    backend = docs["BackendConfig"]
    assert backend["apiVersion"].startswith("cloud.google.com/")
    assert backend["spec"]["iap"]["enabled"] is True

    service = values()["dagsterWebserver"]["service"]
    annotation = json.loads(service["annotations"]["cloud.google.com/backend-config"])
    assert (
        annotation == {"default": backend["metadata"]["name"]} == {"default": "cfap-webserver-iap"}
    )
    assert json.loads(service["annotations"]["cloud.google.com/neg"]) == {"ingress": True}
    assert backend["spec"]["healthCheck"]["port"] == service["port"]

    ingress = docs["Ingress"]
    k8s_snake_case_dict(k8s.V1Ingress, ingress)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.class"] == "gce"
    assert annotations["kubernetes.io/ingress.global-static-ip-name"] == "cfap-webserver-ip"
    assert (
        annotations["networking.gke.io/managed-certificates"]
        == docs["ManagedCertificate"]["metadata"]["name"]
    )
    assert (
        annotations["networking.gke.io/v1beta1.FrontendConfig"]
        == docs["FrontendConfig"]["metadata"]["name"]
    )
    assert annotations["kubernetes.io/ingress.allow-http"] == "false"
    assert "rules" not in ingress["spec"]
    backend_service = ingress["spec"]["defaultBackend"]["service"]
    assert backend_service == {"name": WEBSERVER_SERVICE, "port": {"number": service["port"]}}
    assert docs["ManagedCertificate"]["spec"]["domains"] == ["${CFAP_UI_DOMAIN}"]

    policy = docs["NetworkPolicy"]
    k8s_snake_case_dict(k8s.V1NetworkPolicy, policy)
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": RELEASE,
        "component": "dagster-webserver",
    }
    (rule,) = policy["spec"]["ingress"]
    assert {block["ipBlock"]["cidr"] for block in rule["from"]} == {
        "130.211.0.0/22",
        "35.191.0.0/16",
    }
    assert rule["ports"] == [{"protocol": "TCP", "port": service["port"]}]


def _service_types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "type" and isinstance(value, str):
                yield value
            yield from _service_types(value)
    elif isinstance(node, list):
        for item in node:
            yield from _service_types(item)


def test_the_webserver_is_exposed_only_through_the_iap_ingress() -> None:
    chart_values = values()
    assert chart_values["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert chart_values["ingress"]["enabled"] is False
    documents: list[Any] = [chart_values]
    for manifest in HELM.glob("*.yaml"):
        if manifest != VALUES:
            documents.extend(load_docs(manifest))
    for doc in documents:
        exposed = {kind for kind in _service_types(doc) if kind in ("LoadBalancer", "NodePort")}
        assert not exposed, exposed
        if isinstance(doc, dict) and doc.get("kind") == "Ingress":
            assert doc["metadata"]["name"] == "cfap-webserver"
        assert not (isinstance(doc, dict) and doc.get("kind") == "Service"), "no extra Service"


# --- Dockerfile, .dockerignore, pinned versions -------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, arguments = (pending + line).partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile_instruction_args(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def dockerfile_user_uid() -> int:
    users = [args for name, args in final_stage() if name == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "a numeric UID lets Kubernetes' runAsNonRoot verify it"
    return int(user)


def test_image_runs_as_a_non_root_user() -> None:
    assert dockerfile_user_uid() != 0


def test_base_image_is_pinned_to_a_tag() -> None:
    instructions = dockerfile_instructions()
    global_args: dict[str, str] = {}
    for name, args in instructions:
        if name == "FROM":
            break
        if name == "ARG" and "=" in args:
            key, _, default = args.partition("=")
            global_args[key] = default
    stages: set[str] = set()
    for name, args in instructions:
        if name != "FROM":
            continue
        image, *alias = args.split(" AS ")
        stages.update(a.strip() for a in alias)
        image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], image.strip())
        if image in stages:
            continue
        repository, _, digest = image.partition("@")
        _, _, tag = repository.rpartition("/")[2].partition(":")
        assert tag or digest, f"{image}: no tag"
        assert tag != "latest", image
        assert repository.startswith("python:3.11"), image


def test_image_bakes_in_no_secret() -> None:
    forbidden = {*secret_env(), DAGSTER_PG_PASSWORD_ENV_VAR, "GOOGLE_APPLICATION_CREDENTIALS"}
    for name, args in dockerfile_instructions():
        if name in ("ENV", "ARG"):
            keys = {token.partition("=")[0] for token in shlex.split(args)}
            assert not keys & forbidden, keys & forbidden
            assert not any(SECRET_NAME_PATTERN.search(key) for key in keys), keys
        if name in ("RUN", "ENV", "ARG", "COPY", "ADD"):
            mentioned = {secret for secret in forbidden if secret in args}
            assert not mentioned, f"{name} {args}"
        if name in ("COPY", "ADD"):
            assert not re.search(r"\.env\b|\.pem\b|key\.json|credentials", args), args


def test_image_contains_the_dbt_project_with_its_prod_manifest() -> None:
    copies = dockerfile_instruction_args("COPY")
    assert any(args.split()[0] == "dbt_project" for args in copies)
    runs = dockerfile_instruction_args("RUN")
    (prepare,) = [args for args in runs if "manifest_path" in args]
    assert "CFAP_ENV=prod" in prepare and "CFAP_DBT_TARGET=prod" in prepare
    assert "dagster definitions validate -m cfap_orchestration.definitions" in prepare
    # The RUN calls the project's own factory, which must still exist under that name.
    (factory,) = re.findall(r"from (cfap_orchestration[\w.]*) import (\w+)", prepare)
    assert callable(getattr(importlib.import_module(factory[0]), factory[1]))
    runtime_env = " ".join(args for name, args in final_stage() if name == "ENV")
    assert "CFAP_ENV=prod" in runtime_env


def test_image_installs_the_pinned_versions() -> None:
    copies = dockerfile_instruction_args("COPY")
    assert any(args.split()[0] == "deploy/prod/constraints.txt" for args in copies)
    assert any("--constraint" in args for args in dockerfile_instruction_args("RUN"))

    pins: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = Version(pinned)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned: run deploy/prod/pin_constraints.py"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}: "
            "run deploy/prod/pin_constraints.py"
        )
    for package in ("dagster-k8s", "dagster-postgres", "dagster-gcp", "dagster-webserver"):
        assert package in pins, package


def test_chart_version_matches_the_installed_dagster() -> None:
    installed = version("dagster")
    for document in (README, VALUES):
        versions = set(re.findall(r"dagster/dagster --version (\S+)", document.read_text()))
        assert versions == {installed}, (document.name, versions)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def docker_ignores(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder
    matches everything under it; `!` re-admits."""
    ignored = False
    parts = path.split("/")
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        regex = _glob_regex(line.removeprefix("!").strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".cfap/warehouse.duckdb",
        ".cfap/dagster/dagster.yaml",
        "dbt_project/target/prod/manifest.json",
        "dbt_project/logs/dbt.log",
        "dbt_project/.user.yml",
        "cfap_orchestration/__pycache__/settings.cpython-311.pyc",
        "tests/unit/test_resources.py",
        ".pytest_cache/v/cache/lastfailed",
        "benchmarks/output/extraction.csv",
        "terraform/terraform.tfstate",
        "deploy/prod/dagster.yaml",
        ".env",
        "cfap_orchestration/service-account-key.json",
    ],
)
def test_dockerignore_keeps_local_state_and_tests_out(path: str) -> None:
    assert docker_ignores(path), path


def test_dockerignore_admits_everything_the_image_copies() -> None:
    copied = [
        args.split()[0]
        for name, args in dockerfile_instructions()
        if name == "COPY" and not args.startswith("--from")
    ]
    examples = {
        "pyproject.toml",
        "README.md",
        "deploy/prod/constraints.txt",
        "cfap_orchestration/definitions.py",
        "cfap_orchestration/defs/dbt/project.py",
        "dbt_project/dbt_project.yml",
        "dbt_project/profiles.yml",
    }
    examples |= {str(p.relative_to(ROOT)) for p in (ROOT / "dbt_project" / "models").rglob("*.sql")}
    for path in examples:
        assert not docker_ignores(path), path
    for source in copied:
        assert not docker_ignores(source), source
