# S3 backend settings (infra/versions.tf declares an empty `backend "s3" {}`).
# Copy to config/<name>-backend.tfvars (git-ignored) and run, from the repo root:
#   terraform -chdir=infra init -backend-config=../config/<name>-backend.tfvars

bucket  = "example-terraform-state"       # an existing, versioned state bucket
key     = "solace/prod/terraform.tfstate" # one key per deployment
region  = "us-east-1"                     # region of the state bucket
encrypt = true

# State locking: S3-native lock files (Terraform >= 1.10) ...
use_lockfile = true
# ... or, with older Terraform, a DynamoDB lock table (hash key LockID, type S):
# dynamodb_table = "terraform-locks"

# Optional: a KMS key for the state object, or a role to assume.
# kms_key_id = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
# assume_role = { role_arn = "arn:aws:iam::111122223333:role/terraform" }
