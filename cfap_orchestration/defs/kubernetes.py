"""Production runs on Kubernetes: every step in its own pod, as its role's service account.

With `CFAP_ENV=prod` the K8sRunLauncher (deploy/) starts each run's pod, and this
executor starts one Kubernetes job per step. Each step's pod runs as the service account
of its domain, bound by Workload Identity to a GCP service account that can reach only
that domain's datasets and buckets (terraform/iam.tf):

| steps | service account | may write |
|---|---|---|
| ingest, reference (Python) | cfap-ingestion | raw, the landing bucket |
| dbt, data quality | cfap-dbt | reference (seeds), staging, marts |
| measure, report, ad-hoc analyses | cfap-measurement | causal, the artifacts bucket |

Only the ingestion steps get the platform credentials: the Kubernetes Secret
`cfap-platform-credentials` (synced from Secret Manager) is added to their pods alone.
The media-mix fit is the heavy step; its pod asks for more CPU and memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

ROLE_BY_GROUP = {
    "ingest": "cfap-ingestion",
    "reference": "cfap-ingestion",
    "staging": "cfap-dbt",
    "marts": "cfap-dbt",
    "measure": "cfap-measurement",
    "report": "cfap-measurement",
}
# Ops that are not assets: their role by op name.
ROLE_BY_OP = {"analyze_geo_lift": "cfap-measurement"}
# The dbt op builds seeds (group reference) with the models: dbt owns those schemas.
DBT_ROLE = "cfap-dbt"
STEP_RESOURCES: Mapping[str, dict[str, dict[str, str]]] = {
    # One core per chain (2 by default, up to 4 here) plus JAX's compile. The fit's process
    # peaks near 2.1 GB on the demo's ~156 weeks (sampling benchmark); 8 GiB leaves room
    # for longer histories, more chains and draws.
    "causal__mmm_fit": {
        "requests": {"cpu": "4", "memory": "8Gi"},
        "limits": {"cpu": "4", "memory": "12Gi"},
    },
}
DEFAULT_STEP_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"cpu": "1", "memory": "4Gi"},
}
# Kubernetes Secrets whose keys become environment variables of a role's step pods.
ROLE_SECRETS = {"cfap-ingestion": ("cfap-platform-credentials",)}
# Steps of one run that may run at once (each is a pod).
MAX_CONCURRENT_STEPS = 8


def step_role(op_name: str, groups: set[str]) -> str:
    """The service account a step runs as: the role of its asset group(s)."""
    roles = {ROLE_BY_GROUP[g] for g in groups if g in ROLE_BY_GROUP}
    if len(roles) != 1 or not groups <= ROLE_BY_GROUP.keys():
        raise ValueError(
            f"step {op_name!r} materializes asset groups {sorted(groups)}: give it one role "
            "in ROLE_BY_GROUP (each step pod runs as one service account)"
        )
    return roles.pop()


def step_roles(defs: dg.Definitions) -> dict[str, str]:
    """Every step (op) of the code location and the service account it runs as."""
    roles = dict(ROLE_BY_OP)
    for assets_def in defs.assets or []:
        if not isinstance(assets_def, dg.AssetsDefinition) or not assets_def.is_executable:
            continue
        name = assets_def.node_def.name
        if any("dbt" in spec.kinds for spec in assets_def.specs):
            roles[name] = DBT_ROLE
        else:
            roles[name] = step_role(name, set(assets_def.group_names_by_key.values()))
    return roles


def per_step_k8s_config(defs: dg.Definitions) -> dict[str, dict[str, Any]]:
    ops = step_roles(defs)
    return {name: _step_config(name, role) for name, role in sorted(ops.items())}


def _step_config(op_name: str, role: str) -> dict[str, Any]:
    container: dict[str, Any] = {"resources": STEP_RESOURCES.get(op_name, DEFAULT_STEP_RESOURCES)}
    secrets = ROLE_SECRETS.get(role, ())
    if secrets:
        container["env_from"] = [{"secret_ref": {"name": name}} for name in secrets]
    return {"pod_spec_config": {"service_account_name": role}, "container_config": container}


def kubernetes_executor(defs: dg.Definitions) -> dg.ExecutorDefinition:
    """The k8s job executor with each step's service account and resources."""
    # Imported here: the kubernetes client costs about 0.4 s, and local loads never use it.
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(
        {
            "job_namespace": os.getenv("CFAP_K8S_NAMESPACE", "cfap"),
            "max_concurrent": MAX_CONCURRENT_STEPS,
            "per_step_k8s_config": per_step_k8s_config(defs),
        },
        name="cfap_k8s_job_executor",
    )
