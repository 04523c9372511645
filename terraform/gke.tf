# GKE Autopilot, private nodes: it runs the Dagster Helm release and the run and step
# pods (Kubernetes Jobs), and bills them per pod, so a quiet day costs little. Autopilot
# itself provides shielded nodes with secure boot, the GKE metadata server, Dataplane V2
# (network policy enforced), intranode visibility and node auto-upgrade; the provider
# refuses the Standard-cluster arguments for them (see the skips below).

resource "google_container_cluster" "main" {
  #checkov:skip=CKV_GCP_12:Autopilot always runs Dataplane V2, which enforces NetworkPolicy; the provider refuses the network_policy block with enable_autopilot.
  #checkov:skip=CKV_GCP_61:Autopilot enables intranode visibility itself; the provider refuses enable_intranode_visibility with enable_autopilot.
  #checkov:skip=CKV_GCP_69:Autopilot nodes always use the GKE metadata server (Workload Identity is always on); there is no node_config to set on Autopilot.
  name     = var.cluster_name
  location = var.region

  enable_autopilot    = true
  deletion_protection = var.deletion_protection

  network         = google_compute_network.main.id
  subnetwork      = google_compute_subnetwork.cluster.id
  resource_labels = local.labels

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_cidr
  }

  # The public endpoint answers only these ranges (none by default: use the private
  # endpoint from inside the VPC).
  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  release_channel {
    channel = "REGULAR"
  }

  workload_identity_config {
    workload_pool = local.workload_pool
  }

  # Every image is checked against the project's Binary Authorization policy. The default
  # policy admits all images; tighten it to this project's repository once the Dagster
  # images are mirrored there (README.md, "Hardening later").
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  dynamic "authenticator_groups_config" {
    for_each = var.gke_security_group == null ? [] : [var.gke_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  # Autopilot's node identity: the least-privilege account from iam.tf.
  cluster_autoscaling {
    auto_provisioning_defaults {
      service_account = google_service_account.gke_nodes.email
      oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    }
  }

  depends_on = [
    google_project_service.this,
    google_project_iam_member.gke_nodes,
  ]
}

# The code location's image (Dagster code server, run and step pods).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Encrypted at rest with Google-managed keys; the images hold code, not data, and no requirement here calls for customer-managed keys.
  repository_id = "cfap"
  location      = var.region
  format        = "DOCKER"
  description   = "CFAP code-location images."

  docker_config {
    # A tag names one build for good: what ran in a given run can be found again.
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent-releases"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s" # 30 days
    }
  }

  depends_on = [google_project_service.this]
}
