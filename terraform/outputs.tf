# --- Warehouse -------------------------------------------------------------------------

output "dataset_ids" {
  description = "Schema -> BigQuery dataset id."
  value       = { for schema, dataset in google_bigquery_dataset.this : schema => dataset.dataset_id }
}

output "causal_table_ids" {
  description = "The causal tables terraform defines, as project.dataset.table."
  value       = {
    for name, table in google_bigquery_table.causal :
    name => "${var.project_id}.${table.dataset_id}.${table.table_id}"
  }
}

# --- Buckets -----------------------------------------------------------------------------

output "landing_bucket" {
  description = "Name of the landing bucket (batch uploads)."
  value       = google_storage_bucket.landing.name
}

output "landing_uri" {
  description = "The code location's CFAP_LANDING_URI."
  value       = "gs://${google_storage_bucket.landing.name}"
}

output "artifacts_bucket" {
  description = "Name of the artifacts bucket (models/, reports/, io/, compute-logs/)."
  value       = google_storage_bucket.artifacts.name
}

output "artifacts_uri" {
  description = "The code location's CFAP_ARTIFACTS_URI."
  value       = "gs://${google_storage_bucket.artifacts.name}"
}

# --- Identities and secrets ------------------------------------------------------------

output "service_account_emails" {
  description = "Kubernetes service account name (in var.namespace) -> the GCP service account it acts as (annotation iam.gke.io/gcp-service-account)."
  value       = { for name, sa in google_service_account.workload : name => sa.email }
}

output "secret_ids" {
  description = "Environment variable -> Secret Manager secret id."
  value       = { for env_var, secret in google_secret_manager_secret.this : env_var => secret.secret_id }
}

# --- Dagster instance database ---------------------------------------------------------

output "cloudsql_connection_name" {
  description = "project:region:instance (Cloud SQL Auth Proxy, gcloud sql connect)."
  value       = google_sql_database_instance.dagster.connection_name
}

output "cloudsql_private_ip" {
  description = "Private IP of the Dagster Postgres: the pods' DAGSTER_PG_HOST (TLS required)."
  value       = google_sql_database_instance.dagster.private_ip_address
}

output "cloudsql_database" {
  description = "Database and user of the Dagster instance; the password is the secret DAGSTER_PG_PASSWORD."
  value       = {
    database = google_sql_database.dagster.name
    user     = google_sql_user.dagster.name
  }
}

# --- Cluster, images, web UI -----------------------------------------------------------

output "gke_cluster_name" {
  description = "GKE cluster (gcloud container clusters get-credentials <name> --region <region>)."
  value       = google_container_cluster.main.name
}

output "gke_cluster_location" {
  description = "Region of the GKE cluster."
  value       = google_container_cluster.main.location
}

output "namespace" {
  description = "Kubernetes namespace the service accounts are bound in."
  value       = var.namespace
}

output "artifact_registry_repository_url" {
  description = "Docker repository for the code-location image: <url>/<image>:<tag>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "webserver_static_ip_name" {
  description = "Global address name for the Ingress annotation kubernetes.io/ingress.global-static-ip-name."
  value       = google_compute_global_address.webserver.name
}

output "webserver_static_ip_address" {
  description = "The address the webserver_domain A record must point at."
  value       = google_compute_global_address.webserver.address
}

output "webserver_ssl_policy_name" {
  description = "SSL policy for the FrontendConfig's spec.sslPolicy."
  value       = google_compute_ssl_policy.webserver.name
}

output "webserver_domain" {
  description = "DNS name of the web UI (the ManagedCertificate's domain in deploy/helm/iap.yaml)."
  value       = var.webserver_domain
}

output "webserver_url" {
  description = "The Dagster web UI, behind IAP."
  value       = "https://${var.webserver_domain}"
}

# --- Everything the code location reads, in one place -----------------------------------

output "code_location_env" {
  description = "Non-secret environment of the code location (and of dbt) in prod; secrets come from secret_ids."
  value       = {
    CFAP_ENV            = "prod"
    CFAP_DBT_TARGET     = "prod"
    GCP_PROJECT         = var.project_id
    BIGQUERY_LOCATION   = var.bigquery_location
    CFAP_DATASET_PREFIX = var.dataset_prefix
    CFAP_LANDING_URI    = "gs://${google_storage_bucket.landing.name}"
    CFAP_ARTIFACTS_URI  = "gs://${google_storage_bucket.artifacts.name}"
  }
}
