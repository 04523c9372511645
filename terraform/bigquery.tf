# One dataset per schema of the data contract, named <prefix>_<schema>.
#
# Only the causal tables are defined here. The others are created by their writers:
#   raw        the ingest assets, on first write, partitioned by day on partition_date; a
#              field an API adds becomes a new column (no schema here to keep in step)
#   reference  dbt's seeds; reference.fx_rates is maintained by its owners
#   staging    dbt views (stg_*, int_*)
#   marts      dbt tables (fct_*, dim_*)

locals {
  datasets = {
    raw       = "Raw extracts as each platform API sent them, one table per source, partitioned by partition_date. Written by the ingest assets."
    reference = "Reference data: the daily FX rates (fx_rates) and dbt's seeds (experiment registry, geo regions, peak seasons)."
    staging   = "dbt staging and intermediate models (stg_*, int_*): typed, renamed, deduplicated."
    marts     = "dbt marts: fct_marketing_daily, fct_orders_daily, dim_calendar, fct_marketing_calendar_daily and the experiment panels."
    causal    = "Measurement results: lift_analysis_results, causal_model_registry, job_status, and the planning tables the estimators write."
  }

  # The causal tables with explicit schemas, from cfap_orchestration.bigquery_schemas
  # (`python -m cfap_orchestration.bigquery_schemas terraform/schemas`).
  #
  # No table requires a partition filter: the writers replace a model's rows with
  # `DELETE ... WHERE model_name IN (...)` (or run_id), which names no partition.
  causal_tables = {
    lift_analysis_results = {
      description     = "One row per estimate: effect, interval, p-value, incremental value and ROAS, per model, subject and metric."
      partition_field = "created_at"
      clustering      = ["model_name", "subject"]
    }
    causal_model_registry = {
      description     = "One row per fitted model configuration: parameters, hash, diagnostics and the saved artifact."
      partition_field = null
      clustering      = ["model_name"]
    }
    job_status = {
      description     = "One row per finished Dagster run: status, duration, error, partitions and assets."
      partition_field = "ended_at"
      clustering      = ["job_name", "status"]
    }
  }
}

resource "google_bigquery_dataset" "this" {
  for_each = local.datasets

  #checkov:skip=CKV_GCP_81:Encrypted at rest with Google-managed keys. No requirement here calls for customer-managed keys, whose rotation, access and loss would become this project's to operate.
  dataset_id    = "${var.dataset_prefix}_${each.key}"
  friendly_name = "CFAP ${each.key}"
  description   = each.value
  location      = var.bigquery_location

  # Access is granted per service account with dataset IAM members (iam.tf); the dataset
  # keeps BigQuery's default project owner/writer/reader entries and no other ACL.
  delete_contents_on_destroy = false

  depends_on = [google_project_service.this]
}

resource "google_bigquery_table" "causal" {
  for_each = local.causal_tables

  #checkov:skip=CKV_GCP_80:Encrypted at rest with Google-managed keys, like its dataset (see CKV_GCP_81 on google_bigquery_dataset.this).
  dataset_id          = google_bigquery_dataset.this["causal"].dataset_id
  table_id            = each.key
  description         = each.value.description
  schema              = file("${path.module}/schemas/${each.key}.json")
  clustering          = each.value.clustering
  deletion_protection = var.deletion_protection

  dynamic "time_partitioning" {
    for_each = each.value.partition_field == null ? [] : [each.value.partition_field]
    content {
      type  = "DAY"
      field = time_partitioning.value
    }
  }
}
