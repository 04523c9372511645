# The Dagster web UI is reached only through an external HTTPS load balancer with IAP in
# front: every request carries a signed-in identity from var.iap_members, or it is turned
# away before it reaches the cluster. The Kubernetes side lives in deploy/helm/iap.yaml: the
# Ingress (on the address below), the BackendConfig `cfap-webserver-iap` with iap.enabled,
# and the Google-managed certificate (a ManagedCertificate for var.webserver_domain).

resource "google_compute_global_address" "webserver" {
  name        = "cfap-webserver-ip"
  description = "The Dagster web UI's load balancer (Ingress annotation kubernetes.io/ingress.global-static-ip-name)."

  depends_on = [google_project_service.this]
}

# TLS 1.2 or later with modern ciphers, for the load balancer's HTTPS proxy: attach it with
# a FrontendConfig (spec.sslPolicy) referenced by the Ingress (README.md, "The web UI").
resource "google_compute_ssl_policy" "webserver" {
  name            = "cfap-webserver"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"

  depends_on = [google_project_service.this]
}

# Who may pass IAP. Granted on the project's IAP-secured web resources: the backend
# service the Ingress creates has a generated name, unknown until it exists, and it is
# the only IAP-secured resource in this project.
resource "google_iap_web_iam_member" "webserver" {
  for_each = toset(var.iap_members)

  project = var.project_id
  role    = "roles/iap.httpsResourceAccessor"
  member  = each.value

  depends_on = [google_project_service.this]
}
