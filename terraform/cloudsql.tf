# The Dagster instance's Postgres (runs, event log, schedules): a private IP in the VPC and
# no public address. The webserver, daemon, run and step pods connect to that IP directly,
# over TLS (`sslmode: require`, deploy/prod/dagster.yaml), as the user `dagster` with the
# generated password. The Cloud SQL Auth Proxy works too (roles/cloudsql.client, granted to
# cfap-dagster) for an operator's session.

resource "google_sql_database_instance" "dagster" {
  #checkov:skip=CKV_GCP_6:Every connection must use TLS (ssl_mode ENCRYPTED_ONLY), which is the check's intent; checkov passes Postgres only with TRUSTED_CLIENT_CERTIFICATE_REQUIRED, which would refuse the pods' direct TLS connections (run and step pods are short-lived Jobs without an Auth Proxy or client certificate).
  name                = "cfap-dagster"
  database_version    = var.cloudsql_database_version
  region              = var.region
  deletion_protection = var.deletion_protection

  settings {
    # Enterprise edition: custom tiers, and the default for a new Postgres would otherwise
    # be Enterprise Plus.
    edition                     = "ENTERPRISE"
    tier                        = var.cloudsql_tier
    availability_type           = var.cloudsql_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.cloudsql_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.main.id
      # TLS on every connection; an unencrypted one is refused. The password authenticates.
      ssl_mode = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.cloudsql_log_retention_days

      backup_retention_settings {
        retained_backups = var.cloudsql_backup_count
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7 # Sunday
      hour         = 5
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    # The Postgres logging checkov checks for. log_statement = ddl logs schema
    # changes (Dagster's migrations), not the text of the instance's steady stream of event
    # writes; log_duration adds one short line per statement, without its text, and
    # log_min_duration_statement stays at its default (-1, off).
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    # pgaudit records DDL and role changes once `CREATE EXTENSION pgaudit;` has run in the
    # dagster database (README.md, "After the first apply").
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "dagster" {
  name     = "dagster"
  instance = google_sql_database_instance.dagster.name
}

resource "google_sql_user" "dagster" {
  name     = "dagster"
  instance = google_sql_database_instance.dagster.name
  password = random_password.dagster_db.result
}
