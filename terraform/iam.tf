# One service account per role, each bound to the Kubernetes service account of the same
# name in var.namespace through Workload Identity (no keys exist anywhere). Every grant is
# on the one dataset, bucket or secret it concerns; at project level only
# roles/bigquery.jobUser (queries and load jobs run as project jobs) and, for cfap-dagster,
# roles/cloudsql.client (an Auth Proxy session to the instance database).
#
# Each step pod runs as its role's account (cfap_orchestration/defs/kubernetes.py):
#   cfap-ingestion    ingest and reference (Python) steps: raw extracts, landing uploads
#   cfap-dbt          the dbt build and the data-quality report: reads raw, writes its seeds
#                     (reference), staging and marts
#   cfap-measurement  estimators, reports, ad-hoc analyses: reads the models, writes causal
#                     and the artifacts bucket
#   cfap-dagster      webserver, daemon, code server (where sensors run), run workers

locals {
  service_accounts = {
    cfap-ingestion = {
      display_name = "CFAP ingestion"
      description  = "Ingest and reference assets: writes raw, reads and moves landing uploads, reads the platforms' credentials."
    }
    cfap-dbt = {
      display_name = "CFAP dbt"
      description  = "dbt build: reads raw and reference, writes its seeds (reference), staging and marts."
    }
    cfap-measurement = {
      display_name = "CFAP measurement"
      description  = "Estimators, data quality and reports: reads raw, staging and marts, writes causal and the artifacts bucket."
    }
    cfap-dagster = {
      display_name = "CFAP Dagster"
      description  = "Dagster webserver, daemon, code server and run workers: instance database, sensors, run outcomes."
    }
  }

  viewer = "roles/bigquery.dataViewer"
  editor = "roles/bigquery.dataEditor"

  # Service account -> dataset (schema) -> role. What each reads and writes:
  #   ingestion    writes raw.* (extracts, landed uploads, the file log, public holidays)
  #   dbt          sources in raw and reference.fx_rates; seeds into reference
  #                (dbt_project.yml seeds +schema: reference); models into staging and marts
  #                the data-quality report compares marts with raw
  #   measurement  marts and staging (stg_reference__experiment_registry and
  #                stg_reference__geo_regions feed the geo studies); raw for the results
  #                workbook's data_quality sheet; writes causal
  #   dagster      the geo-experiment sensor reads staging.stg_reference__experiment_registry
  #                and marts.fct_experiment_geo_panel; the run-status sensor writes
  #                causal.job_status
  dataset_access = {
    cfap-ingestion = {
      raw = local.editor
    }
    cfap-dbt = {
      raw       = local.viewer
      reference = local.editor
      staging   = local.editor
      marts     = local.editor
    }
    cfap-measurement = {
      raw     = local.viewer
      staging = local.viewer
      marts   = local.viewer
      causal  = local.editor
    }
    cfap-dagster = {
      staging = local.viewer
      marts   = local.viewer
      causal  = local.editor
    }
  }

  # Service account -> bucket -> role.
  #   ingestion    lists, reads and moves uploads (to <kind>/loaded/ and quarantine/<kind>/)
  #   measurement  writes posteriors (models/) and reports (reports/)
  #   dagster      the landing sensor lists uploads and quarantines a day file no partition
  #                takes (copy, then delete: objectUser); compute logs and IO in artifacts
  bucket_access = {
    cfap-ingestion = {
      landing = "roles/storage.objectAdmin"
    }
    cfap-measurement = {
      artifacts = "roles/storage.objectAdmin"
    }
    cfap-dagster = {
      landing   = "roles/storage.objectUser"
      artifacts = "roles/storage.objectAdmin"
    }
  }

  # Step pods that run as these accounts write their captured logs and IO-manager outputs
  # to the artifacts bucket, under those two prefixes only (an IAM condition).
  artifact_log_writers = ["cfap-ingestion", "cfap-dbt"]

  # Service account -> the environment variables (secrets.tf) whose secrets it reads.
  secret_access = {
    cfap-ingestion = keys(local.platform_secrets)
    cfap-dagster   = keys(local.dagster_secrets)
  }

  # Service account -> project-level roles. Nothing else is granted on the project.
  project_roles = {
    cfap-ingestion   = ["roles/bigquery.jobUser"]
    cfap-dbt         = ["roles/bigquery.jobUser"]
    cfap-measurement = ["roles/bigquery.jobUser"]
    cfap-dagster     = ["roles/bigquery.jobUser", "roles/cloudsql.client"]
  }

  buckets = {
    landing   = google_storage_bucket.landing.name
    artifacts = google_storage_bucket.artifacts.name
  }

  dataset_grants = merge([
    for sa, datasets in local.dataset_access : {
      for dataset, role in datasets : "${sa}/${dataset}" => { sa = sa, dataset = dataset, role = role }
    }
  ]...)
  bucket_grants = merge([
    for sa, buckets in local.bucket_access : {
      for bucket, role in buckets : "${sa}/${bucket}" => { sa = sa, bucket = bucket, role = role }
    }
  ]...)
  secret_grants = merge([
    for sa, names in local.secret_access : {
      for name in names : "${sa}/${name}" => { sa = sa, env_var = name }
    }
  ]...)
  project_grants = merge([
    for sa, roles in local.project_roles : {
      for role in roles : "${sa}/${role}" => { sa = sa, role = role }
    }
  ]...)
}

resource "google_service_account" "workload" {
  for_each = local.service_accounts

  account_id   = each.key
  display_name = each.value.display_name
  description  = each.value.description

  depends_on = [google_project_service.this]
}

# Workload Identity: the Kubernetes service account <namespace>/<name> acts as the GCP
# service account <name>. The cluster must exist first: it creates the identity pool.
resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.service_accounts

  service_account_id = google_service_account.workload[each.key].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.namespace}/${each.key}]"

  depends_on = [google_container_cluster.main]
}

resource "google_bigquery_dataset_iam_member" "workload" {
  for_each = local.dataset_grants

  dataset_id = google_bigquery_dataset.this[each.value.dataset].dataset_id
  role       = each.value.role
  member     = google_service_account.workload[each.value.sa].member
}

# The owners of reference.fx_rates (var.reference_data_editors).
resource "google_bigquery_dataset_iam_member" "reference_editors" {
  for_each = toset(var.reference_data_editors)

  dataset_id = google_bigquery_dataset.this["reference"].dataset_id
  role       = local.editor
  member     = each.value
}

resource "google_storage_bucket_iam_member" "workload" {
  for_each = local.bucket_grants

  bucket = local.buckets[each.value.bucket]
  role   = each.value.role
  member = google_service_account.workload[each.value.sa].member
}

resource "google_storage_bucket_iam_member" "artifact_logs" {
  for_each = toset(local.artifact_log_writers)

  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = google_service_account.workload[each.value].member

  condition {
    title       = "compute-logs-and-io-only"
    description = "Objects under compute-logs/ and io/ only."
    expression  = <<-EOT
      resource.name.startsWith("projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/compute-logs/") ||
      resource.name.startsWith("projects/_/buckets/${google_storage_bucket.artifacts.name}/objects/io/")
    EOT
  }
}

resource "google_secret_manager_secret_iam_member" "workload" {
  for_each = local.secret_grants

  secret_id = google_secret_manager_secret.this[each.value.env_var].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.workload[each.value.sa].member
}

resource "google_project_iam_member" "workload" {
  for_each = local.project_grants

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.workload[each.value.sa].member
}

# --- The cluster's nodes ---------------------------------------------------------------
# Not the Compute Engine default account (often Editor): logs, metrics and image pulls only.
# Workloads never use it; they have Workload Identity.

resource "google_service_account" "gke_nodes" {
  account_id   = "cfap-gke-nodes"
  display_name = "CFAP GKE nodes"
  description  = "Node identity of the cfap cluster: logging, monitoring, pulling images from the cfap repository."

  depends_on = [google_project_service.this]
}

resource "google_project_iam_member" "gke_nodes" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.gke_nodes.member
}

resource "google_artifact_registry_repository_iam_member" "gke_nodes" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.gke_nodes.member
}
