# Shared names, labels and the Google APIs everything else needs.

locals {
  labels = merge(var.labels, {
    app        = "cfap"
    managed-by = "terraform"
  })

  # The Kubernetes namespace's workload identity pool: `<project>.svc.id.goog`.
  workload_pool = "${var.project_id}.svc.id.goog"

  services = toset([
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "binaryauthorization.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "iap.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "this" {
  for_each = local.services

  service = each.value
  # Destroying this configuration leaves the APIs on: other things in the project may use them.
  disable_on_destroy = false
}
