# Remote state in S3 with state locking. The bucket and its region are
# deployment-specific, so they come from a backend configuration file at
# init time (a partial configuration):
#
#   cp backend.hcl.example backend.hcl   # then edit bucket and region
#   terraform init -backend-config=backend.hcl
#
# use_lockfile takes a lock object next to the state (<key>.tflock) with an
# S3 conditional write while a plan or apply runs, so two applies never
# interleave; no DynamoDB lock table is needed. The bucket should have
# versioning on (to recover an earlier state) and block public access.
terraform {
  backend "s3" {
    key          = "cloudcommerce/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
