# --- Project and locations -------------------------------------------------------------

variable "project_id" {
  description = "GCP project that holds everything (the code location's GCP_PROJECT)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 lower-case letters, digits or hyphens."
  }
}

variable "region" {
  description = <<-EOT
    Region of the cluster, Cloud SQL, the buckets and the image repository. The default,
    us-central1, lies inside the US multi-region that holds the BigQuery datasets by default,
    so warehouse data and compute stay on one continent. Pick a region inside
    bigquery_location if you change either.
  EOT
  type    = string
  default = "us-central1"
}

variable "bigquery_location" {
  description = "Location of the BigQuery datasets (the code location's BIGQUERY_LOCATION)."
  type        = string
  default     = "US"
}

variable "labels" {
  description = "Extra labels for every resource (app=cfap and managed-by=terraform are always set)."
  type        = map(string)
  default     = {}
}

# --- Warehouse -------------------------------------------------------------------------

variable "dataset_prefix" {
  description = <<-EOT
    Prefix of the dataset names, `<prefix>_<schema>` (the code location's CFAP_DATASET_PREFIX;
    dbt reads the same variable). Schemas: raw, reference, staging, marts, causal.
  EOT
  type    = string
  default = "cfap"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,50}$", var.dataset_prefix))
    error_message = "dataset_prefix must start with a letter and hold only a-z, 0-9 and _."
  }
}

variable "reference_data_editors" {
  description = <<-EOT
    Members who maintain the reference dataset's own tables (reference.fx_rates, the daily FX
    rates), e.g. ["group:finance-data@example.com"]. dbt writes its seeds there too.
  EOT
  type    = list(string)
  default = []
}

variable "deletion_protection" {
  description = <<-EOT
    Refuse to destroy the stateful resources: the causal tables, the Cloud SQL instance
    (and its deletion protection in the API) and the cluster. Turn off only to tear down
    a test project.
  EOT
  type    = bool
  default = true
}

# --- Landing and artifacts buckets ---------------------------------------------------

variable "landing_loaded_retention_days" {
  description = "Days a loaded upload stays under <kind>/loaded/ (its rows are in raw) before it is deleted."
  type        = number
  default     = 30
}

variable "landing_quarantine_retention_days" {
  description = "Days a refused upload (and its .reason.txt) stays under quarantine/ to be fixed and dropped again."
  type        = number
  default     = 90
}

variable "compute_log_retention_days" {
  description = "Days Dagster's captured step logs (artifacts compute-logs/) are kept."
  type        = number
  default     = 90
}

variable "io_retention_days" {
  description = "Days objects written by the Dagster IO manager (artifacts io/) are kept."
  type        = number
  default     = 30
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object's previous version is kept (both buckets)."
  type        = number
  default     = 30
}

# --- Kubernetes --------------------------------------------------------------------------

variable "namespace" {
  description = "Kubernetes namespace of the Dagster release; its service accounts get Workload Identity."
  type        = string
  default     = "cfap"
}

variable "cluster_name" {
  description = "Name of the GKE Autopilot cluster."
  type        = string
  default     = "cfap"
}

variable "master_authorized_networks" {
  description = <<-EOT
    CIDR ranges allowed to reach the cluster's control plane (kubectl, helm), e.g. the
    office or VPN egress range. Empty: reachable only from inside the VPC.
  EOT
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "gke_security_group" {
  description = <<-EOT
    Google Groups for RBAC: the `gke-security-groups@<your-domain>` group whose nested groups
    RoleBindings may name. Null leaves the feature off.
  EOT
  type    = string
  default = null
}

variable "subnet_cidr" {
  description = "Primary range of the cluster subnet (nodes)."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
  default     = "10.16.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for Kubernetes services."
  type        = string
  default     = "10.20.0.0/20"
}

variable "master_cidr" {
  description = "The /28 the private control plane uses."
  type        = string
  default     = "172.16.0.0/28"
}

variable "private_services_prefix_length" {
  description = "Size of the range reserved for private services access (Cloud SQL's private IP)."
  type        = number
  default     = 20
}

# --- Cloud SQL (the Dagster instance's Postgres) ---------------------------------------

variable "cloudsql_database_version" {
  description = "Postgres major version of the Dagster instance database."
  type        = string
  default     = "POSTGRES_18"
}

variable "cloudsql_tier" {
  description = "Machine tier of the Dagster Postgres (Enterprise edition custom tiers)."
  type        = string
  default     = "db-custom-2-7680"
}

variable "cloudsql_availability_type" {
  description = "REGIONAL (a standby in a second zone, for production) or ZONAL."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.cloudsql_availability_type)
    error_message = "cloudsql_availability_type must be REGIONAL or ZONAL."
  }
}

variable "cloudsql_disk_size_gb" {
  description = "Initial disk size; the disk grows by itself."
  type        = number
  default     = 20
}

variable "cloudsql_backup_count" {
  description = "Daily backups kept."
  type        = number
  default     = 14
}

variable "cloudsql_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1-7)."
  type        = number
  default     = 7
}

# --- The Dagster web UI behind IAP -------------------------------------------------------

variable "webserver_domain" {
  description = "DNS name of the Dagster web UI, e.g. dagster.example.com (its A record points at the static IP)."
  type        = string
}

variable "iap_members" {
  description = <<-EOT
    Who may open the Dagster web UI through IAP, as IAM members:
    ["group:marketing-analytics@example.com", "user:ana@example.com"].
  EOT
  type        = list(string)

  validation {
    condition = length(var.iap_members) > 0 && alltrue([
      for m in var.iap_members : can(regex("^(user|group|domain|serviceAccount):.+", m))
    ])
    error_message = "iap_members needs at least one member, each prefixed user:, group:, domain: or serviceAccount:."
  }
}
