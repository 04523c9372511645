# Two buckets, both private (uniform bucket-level access, public access prevention) and
# versioned, with lifecycle rules that delete only what the code has finished with.

locals {
  landing_bucket   = "${var.project_id}-cfap-landing"
  artifacts_bucket = "${var.project_id}-cfap-artifacts"

  # Batch uploads, one folder per kind (cfap_orchestration/landing.py). The loader moves a
  # loaded upload to <kind>/loaded/ and a refused one to quarantine/<kind>/.
  # first_party_events/*.jsonl are never moved: they are the event store, kept for good.
  landing_kinds = ["first_party_events", "offline_conversions", "experiments"]
}

# Landing: batch uploads (first-party events, offline conversions, experiment definitions).
resource "google_storage_bucket" "landing" {
  #checkov:skip=CKV_GCP_62:Object reads and writes are recorded by Cloud Audit Logs (Data Access logs for storage.googleapis.com, google_project_iam_audit_config.storage below); usage-log buckets are the older mechanism and would add a third bucket to secure.
  name     = local.landing_bucket
  location = var.region

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age            = var.landing_loaded_retention_days
      matches_prefix = [for kind in local.landing_kinds : "${kind}/loaded/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.landing_quarantine_retention_days
      matches_prefix = ["quarantine/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

# Artifacts: media-mix posteriors (models/), report exports (reports/), Dagster IO (io/)
# and captured step logs (compute-logs/). models/ and reports/ are kept: a
# causal_model_registry row's artifact_uri points into models/.
resource "google_storage_bucket" "artifacts" {
  #checkov:skip=CKV_GCP_62:Object reads and writes are recorded by Cloud Audit Logs (Data Access logs for storage.googleapis.com, google_project_iam_audit_config.storage below); usage-log buckets are the older mechanism and would add a third bucket to secure.
  name     = local.artifacts_bucket
  location = var.region

  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age            = var.compute_log_retention_days
      matches_prefix = ["compute-logs/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.io_retention_days
      matches_prefix = ["io/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

# Data Access audit logs for Cloud Storage: who read, wrote or deleted which object, in
# both buckets (BigQuery records its data access without this). Admin activity is always on.
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_READ"
  }

  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
