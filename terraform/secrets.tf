# Secret Manager holds every credential the code location reads. Terraform creates the
# secrets, never their values (README.md, "Secret values"), except the Dagster Postgres
# password, which it generates and stores as the first version.

locals {
  # The platforms' credentials, by the environment variable the code reads (dg.EnvVar in
  # cfap_orchestration/resources.py prod_resources()).
  platform_secrets = {
    META_ACCESS_TOKEN          = "cfap-meta-access-token"
    GOOGLE_ADS_DEVELOPER_TOKEN = "cfap-google-ads-developer-token"
    GOOGLE_ADS_CLIENT_ID       = "cfap-google-ads-client-id"
    GOOGLE_ADS_CLIENT_SECRET   = "cfap-google-ads-client-secret"
    GOOGLE_ADS_REFRESH_TOKEN   = "cfap-google-ads-refresh-token"
    KLAVIYO_API_KEY            = "cfap-klaviyo-api-key"
    SHOPIFY_ACCESS_TOKEN       = "cfap-shopify-access-token"
  }

  # What the Dagster processes read: the alert webhook (cfap_orchestration/studies/job_status.py;
  # the URL can embed a token) and the instance database's password.
  dagster_secrets = {
    CFAP_ALERT_WEBHOOK_URL = "cfap-alert-webhook-url"
    DAGSTER_PG_PASSWORD    = "cfap-dagster-postgres-password"
  }

  secrets = merge(local.platform_secrets, local.dagster_secrets)
}

resource "google_secret_manager_secret" "this" {
  for_each = local.secrets

  secret_id = each.value
  labels    = { env-var = lower(replace(each.key, "_", "-")) }

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

# Letters and digits only: the password goes into a Postgres connection URL unescaped.
resource "random_password" "dagster_db" {
  length  = 40
  special = false
}

resource "google_secret_manager_secret_version" "dagster_db_password" {
  secret      = google_secret_manager_secret.this["DAGSTER_PG_PASSWORD"].id
  secret_data = random_password.dagster_db.result
}
