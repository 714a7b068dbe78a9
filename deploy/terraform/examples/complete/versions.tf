terraform {
  # 1.10 is the first release whose S3 backend locks state with a lock file in
  # the bucket itself (use_lockfile, backend.tf).
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}
