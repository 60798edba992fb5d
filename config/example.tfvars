# Solace deployment settings. Every variable, its meaning and its default is in
# infra/project-vars.tf; set here only what differs. Copy to config/<name>.tfvars
# (git-ignored) and run, from the repo root:
#   terraform -chdir=infra apply -var-file=../config/<name>.tfvars

region      = "us-east-1"
name_prefix = "solace-prod-" # queues solace-prod-request-queue, tables solace-prod-backup-table, ...

tags = {
  Owner = "data-platform"
}

# --- what may be backed up / restored (any region) ---
# Who may send requests (the request queue's policy refuses everyone else).
request_senders = ["arn:aws:iam::111122223333:role/backup-operator"]

allowed_tables = [
  { region = "us-east-1", name = "orders" },
  { region = "*", name = "orders-restored-*" },
]
allowed_buckets = [
  { name = "example-dynamodb-backups", prefix = "orders/" },
]
data_bucket_account_ids = ["111122223333"]
expected_bucket_owner   = "111122223333"
# data_kms_key_arns     = ["arn:aws:kms:us-east-1:111122223333:key/..."] # SSE-KMS buckets

# --- parallelism: segments processed at once across all tasks ---
# Solace v3 allowed 1000 (the default account limit); needs Lambda quota headroom.
backup_reserved_concurrency  = 200
backup_maximum_concurrency   = 200
restore_reserved_concurrency = 200
restore_maximum_concurrency  = 200
max_segments                 = 1000

# --- function tuning (environment variables) ---
batch_bytes        = 8388608 # 8 MiB per batch object before compression
compression_level  = 6
deadline_margin_ms = 30000
redrive_limit      = 3
# read_capacity_limit  = 500 # RCU/s per backup invocation (unset = no limit)
# write_capacity_limit = 500 # WCU/s per restore invocation (unset = no limit)

# --- queues ---
dlq_max_receive_count         = 3
visibility_timeout_multiplier = 6

# --- logs, alarms ---
rust_log            = "info"
log_retention_days  = 365
alarm_sns_topic_arn = "" # e.g. "arn:aws:sns:us-east-1:111122223333:ops-alerts"
