terraform {
  # 1.9: cross-variable validation rules. The configuration uses nothing newer.
  required_version = ">= 1.9, < 2.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # Pinned with the GA provider so a beta-only argument can be adopted without a
    # provider upgrade in the same change. No resource here needs it today.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State lives in a GCS bucket created once, outside this configuration (see README.md,
  # "State"). Uncomment, set the bucket, and run `terraform init -migrate-state`.
  #
  # backend "gcs" {
  #   bucket = "<project-id>-tfstate"
  #   prefix = "cfap/prod"
  # }
}
