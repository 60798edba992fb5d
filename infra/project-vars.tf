# Every configuration setting of a Solace deployment. Operators override them in
# config/<name>.tfvars (see config/example.tfvars); defaults are production-sane.

# --- deployment ---------------------------------------------------------------

variable "region" {
  description = "AWS region the Solace deployment (queues, functions, status tables, alarms) lives in. Tables and buckets being backed up or restored may be in any region: the request names their regions."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Deployment name prefix put verbatim in front of every resource name: queues ('<prefix>request-queue'), status tables ('<prefix>backup-table', '<prefix>restore-table'), functions ('<prefix>backup'), roles, alarms. Use \"\" for the bare Solace v3 names (one deployment per account and region)."
  type        = string
  default     = "solace-"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{0,40}$", var.name_prefix))
    error_message = "name_prefix must be at most 40 characters of A-Z a-z 0-9 _ - (it ends up in queue, function, role and table names)."
  }
}

variable "tags" {
  description = "Extra tags put on every resource (merged over Project/Deployment/ManagedBy)."
  type        = map(string)
  default     = {}
}

variable "rust_log" {
  description = "RUST_LOG of every function (tracing filter, e.g. \"info\" or \"info,solace_pipeline=debug\")."
  type        = string
  default     = "info"
}

variable "tracing_mode" {
  description = "Lambda X-Ray tracing mode: \"PassThrough\" (trace only requests that arrive sampled; no X-Ray permissions needed) or \"Active\" (sample and record every invocation; grants xray:PutTraceSegments/PutTelemetryRecords)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be \"PassThrough\" or \"Active\"."
  }
}

# --- request function -----------------------------------------------------------

variable "request_memory_mb" {
  description = "Memory (MB) of the request function."
  type        = number
  default     = 256
}

variable "request_timeout_seconds" {
  description = "Timeout (s) of the request function. The request queue's visibility timeout is visibility_timeout_multiplier times this."
  type        = number
  default     = 60

  validation {
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 900
    error_message = "Lambda timeouts are 1..900 seconds."
  }
}

variable "request_reserved_concurrency" {
  description = "Reserved concurrent executions of the request function (-1 = unreserved, shares the account pool)."
  type        = number
  default     = 5
}

variable "request_batch_size" {
  description = "Request-queue messages per request-function invocation (1..10; partial batch failures are reported per message)."
  type        = number
  default     = 10

  validation {
    condition     = var.request_batch_size >= 1 && var.request_batch_size <= 10
    error_message = "request_batch_size must be 1..10."
  }
}

variable "request_maximum_concurrency" {
  description = "Maximum concurrent request-function invocations the request-queue event source starts (2..1000; keep <= request_reserved_concurrency)."
  type        = number
  default     = 2

  validation {
    condition     = var.request_maximum_concurrency >= 2 && var.request_maximum_concurrency <= 1000
    error_message = "SQS event source maximum concurrency must be 2..1000."
  }
}

# --- backup function ------------------------------------------------------------

variable "backup_memory_mb" {
  description = "Memory (MB) of the backup function. CPU scales with memory (1769 MB = one vCPU); scanning, JSON encoding and zlib compression are CPU bound."
  type        = number
  default     = 1769
}

variable "backup_timeout_seconds" {
  description = "Timeout (s) of the backup function. It stops deadline_margin_ms before this and continues the segment in a new message."
  type        = number
  default     = 900

  validation {
    condition     = var.backup_timeout_seconds >= 1 && var.backup_timeout_seconds <= 900
    error_message = "Lambda timeouts are 1..900 seconds."
  }
}

variable "backup_reserved_concurrency" {
  description = "Reserved concurrent executions of the backup function (-1 = unreserved). Solace v3 ran up to 1000 segments at once (the account default limit); raise this together with backup_maximum_concurrency (and the account's Lambda quota) for that."
  type        = number
  default     = 200
}

variable "backup_batch_size" {
  description = "Backup-queue messages per backup-function invocation (1..10). The records of a batch run at once, each its own segment to the same deadline, so memory grows with the batch size: 1 is recommended."
  type        = number
  default     = 1

  validation {
    condition     = var.backup_batch_size >= 1 && var.backup_batch_size <= 10
    error_message = "backup_batch_size must be 1..10."
  }
}

variable "backup_maximum_concurrency" {
  description = "Maximum concurrent backup-function invocations the backup-queue event source starts, i.e. how many segments are scanned at once across all tasks (2..1000; Solace v3: 1000). Keep <= backup_reserved_concurrency."
  type        = number
  default     = 200

  validation {
    condition     = var.backup_maximum_concurrency >= 2 && var.backup_maximum_concurrency <= 1000
    error_message = "SQS event source maximum concurrency must be 2..1000."
  }
}

# --- restore function -----------------------------------------------------------

variable "restore_memory_mb" {
  description = "Memory (MB) of the restore function (decompression and BatchWriteItem)."
  type        = number
  default     = 1024
}

variable "restore_timeout_seconds" {
  description = "Timeout (s) of the restore function. It stops deadline_margin_ms before this and continues the segment in a new message."
  type        = number
  default     = 900

  validation {
    condition     = var.restore_timeout_seconds >= 1 && var.restore_timeout_seconds <= 900
    error_message = "Lambda timeouts are 1..900 seconds."
  }
}

variable "restore_reserved_concurrency" {
  description = "Reserved concurrent executions of the restore function (-1 = unreserved). See backup_reserved_concurrency."
  type        = number
  default     = 200
}

variable "restore_batch_size" {
  description = "Restore-queue messages per restore-function invocation (1..10); the records of a batch run at once (see backup_batch_size): 1 is recommended."
  type        = number
  default     = 1

  validation {
    condition     = var.restore_batch_size >= 1 && var.restore_batch_size <= 10
    error_message = "restore_batch_size must be 1..10."
  }
}

variable "restore_maximum_concurrency" {
  description = "Maximum concurrent restore-function invocations the restore-queue event source starts, i.e. segments restored at once across all tasks (2..1000; Solace v3: 1000). Keep <= restore_reserved_concurrency."
  type        = number
  default     = 200

  validation {
    condition     = var.restore_maximum_concurrency >= 2 && var.restore_maximum_concurrency <= 1000
    error_message = "SQS event source maximum concurrency must be 2..1000."
  }
}

# --- redrive function -----------------------------------------------------------

variable "redrive_memory_mb" {
  description = "Memory (MB) of the redrive function."
  type        = number
  default     = 256
}

variable "redrive_timeout_seconds" {
  description = "Timeout (s) of the redrive function. The dead-letter queues' visibility timeout is visibility_timeout_multiplier times this."
  type        = number
  default     = 60

  validation {
    condition     = var.redrive_timeout_seconds >= 1 && var.redrive_timeout_seconds <= 900
    error_message = "Lambda timeouts are 1..900 seconds."
  }
}

variable "redrive_reserved_concurrency" {
  description = "Reserved concurrent executions of the redrive function (-1 = unreserved). It has two event sources (backup and restore dead-letter queues), so keep >= 2 x redrive_maximum_concurrency."
  type        = number
  default     = 5
}

variable "redrive_batch_size" {
  description = "Dead-letter-queue messages per redrive-function invocation (1..10)."
  type        = number
  default     = 10

  validation {
    condition     = var.redrive_batch_size >= 1 && var.redrive_batch_size <= 10
    error_message = "redrive_batch_size must be 1..10."
  }
}

variable "redrive_maximum_concurrency" {
  description = "Maximum concurrent redrive-function invocations started by EACH dead-letter-queue event source (2..1000)."
  type        = number
  default     = 2

  validation {
    condition     = var.redrive_maximum_concurrency >= 2 && var.redrive_maximum_concurrency <= 1000
    error_message = "SQS event source maximum concurrency must be 2..1000."
  }
}

# --- queues ---------------------------------------------------------------------

variable "visibility_timeout_multiplier" {
  description = "Each queue's visibility timeout is this times the timeout of the function it triggers (AWS requires >= 1 and recommends 6 for SQS event sources); capped at SQS's 43200 s."
  type        = number
  default     = 6

  validation {
    condition     = var.visibility_timeout_multiplier >= 1
    error_message = "visibility_timeout_multiplier must be >= 1 (Lambda rejects a visibility timeout shorter than the function timeout)."
  }
}

variable "dlq_max_receive_count" {
  description = "maxReceiveCount of the redrive policies: receives of a request/backup/restore message before SQS moves it to the queue's dead-letter queue."
  type        = number
  default     = 3

  validation {
    condition     = var.dlq_max_receive_count >= 1 && var.dlq_max_receive_count <= 1000
    error_message = "dlq_max_receive_count must be 1..1000."
  }
}

variable "queue_message_retention_seconds" {
  description = "Message retention of the request, backup and restore queues. Keep it below dlq_message_retention_seconds: a dead-lettered message keeps its original enqueue time."
  type        = number
  default     = 345600 # 4 days

  validation {
    condition     = var.queue_message_retention_seconds >= 60 && var.queue_message_retention_seconds <= 1209600
    error_message = "SQS message retention is 60..1209600 seconds."
  }
}

variable "dlq_message_retention_seconds" {
  description = "Message retention of the dead-letter queues and of the request-rejected queue."
  type        = number
  default     = 1209600 # 14 days, the SQS maximum

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "SQS message retention is 60..1209600 seconds."
  }
}

# --- function settings (environment variables) -------------------------------------

variable "max_segments" {
  description = "SOLACE_MAX_SEGMENTS: largest total-segments a request may ask for; larger requests are rejected."
  type        = number
  default     = 1000

  validation {
    condition     = var.max_segments >= 1 && var.max_segments <= 1000000 && floor(var.max_segments) == var.max_segments
    error_message = "max_segments must be a whole number, 1..1000000 (DynamoDB's parallel scan allows up to 1000000 segments)."
  }
}

variable "batch_bytes" {
  description = "SOLACE_BATCH_BYTES: target uncompressed size of one backup batch object (bytes), at most 267386880 (255 MiB)."
  type        = number
  default     = 8388608 # 8 MiB

  validation {
    # MAX_BATCH_BYTES in functions/src/config.rs: the backup function refuses more at start.
    condition     = var.batch_bytes >= 1 && var.batch_bytes <= 267386880 && floor(var.batch_bytes) == var.batch_bytes
    error_message = "batch_bytes is ${var.batch_bytes}: it must be a whole number of bytes, 1..267386880 (255 MiB). A batch may pass it by one scan page (1 MiB) and a restore refuses a batch that inflates past 256 MiB, so the backup function refuses a larger setting at start."
  }
}

variable "compression_level" {
  description = "SOLACE_COMPRESSION_LEVEL: zlib level of backup batches (0 = none .. 9 = smallest)."
  type        = number
  default     = 6

  validation {
    condition     = var.compression_level >= 0 && var.compression_level <= 9 && floor(var.compression_level) == var.compression_level
    error_message = "compression_level must be a whole number, 0..9."
  }
}

variable "deadline_margin_ms" {
  description = "SOLACE_DEADLINE_MARGIN_MS: backup/restore stop this long before the Lambda deadline and continue the segment in a new message. The margin plus 5 s of work must fit in backup_timeout_seconds and in restore_timeout_seconds."
  type        = number
  default     = 30000

  validation {
    condition     = var.deadline_margin_ms >= 0 && floor(var.deadline_margin_ms) == var.deadline_margin_ms
    error_message = "deadline_margin_ms is ${var.deadline_margin_ms}: it must be a whole number of milliseconds, 0 or more (the backup and restore functions refuse anything else at start)."
  }
  validation {
    # The rule `solace local` applies to its --lambda-timeout-secs (check_lambda_timeout in
    # cli/src/main.rs): an invocation shorter than the margin plus 5 s runs no segment, and
    # every segment message goes back unrun until it is dead-lettered.
    condition     = var.deadline_margin_ms + 5000 <= 1000 * var.backup_timeout_seconds && var.deadline_margin_ms + 5000 <= 1000 * var.restore_timeout_seconds
    error_message = "deadline_margin_ms (${var.deadline_margin_ms} ms) plus 5000 ms of work must fit in both backup_timeout_seconds (${var.backup_timeout_seconds} s) and restore_timeout_seconds (${var.restore_timeout_seconds} s): deadline_margin_ms + 5000 <= 1000 * timeout. Otherwise no segment runs and every segment message goes back unrun until it is dead-lettered; lower the margin or raise the timeouts."
  }
}

variable "redrive_limit" {
  description = "SOLACE_REDRIVE_LIMIT: times the redrive function re-routes a dead-lettered batch to its work queue before it marks the segment failed."
  type        = number
  default     = 3

  validation {
    condition     = var.redrive_limit >= 0 && var.redrive_limit <= 4294967295 && floor(var.redrive_limit) == var.redrive_limit
    error_message = "redrive_limit must be a whole number, 0..4294967295 (the redrive function refuses anything else at start)."
  }
}

variable "read_capacity_limit" {
  description = "SOLACE_READ_CAPACITY_LIMIT (optional): read capacity units per second one backup invocation (one segment) may consume. null = not set (no client-side limit)."
  type        = number
  default     = null

  validation {
    # The functions refuse 0, negative or tiny rates at start; catch them at plan time.
    condition     = var.read_capacity_limit == null ? true : var.read_capacity_limit >= 0.001
    error_message = "read_capacity_limit must be null (no limit) or at least 0.001 capacity units per second."
  }
}

variable "write_capacity_limit" {
  description = "SOLACE_WRITE_CAPACITY_LIMIT (optional): write capacity units per second one restore invocation (one segment) may consume. null = not set (no client-side limit)."
  type        = number
  default     = null

  validation {
    # The functions refuse 0, negative or tiny rates at start; catch them at plan time.
    condition     = var.write_capacity_limit == null ? true : var.write_capacity_limit >= 0.001
    error_message = "write_capacity_limit must be null (no limit) or at least 0.001 capacity units per second."
  }
}

variable "expected_bucket_owner" {
  description = "SOLACE_EXPECTED_BUCKET_OWNER (optional): 12-digit account id every data bucket must belong to (sent as x-amz-expected-bucket-owner). \"\" = not set."
  type        = string
  default     = ""

  validation {
    condition     = var.expected_bucket_owner == "" || can(regex("^[0-9]{12}$", var.expected_bucket_owner))
    error_message = "expected_bucket_owner must be \"\" or a 12-digit AWS account id."
  }
}

# --- data access (tables and buckets being backed up or restored) -------------------

variable "request_senders" {
  description = "IAM principal ARNs (roles, users) that may send requests to the request queue; the queue's policy denies SendMessage to everyone else. No default: name them, e.g. [\"arn:aws:iam::111122223333:role/backup-operator\"]. Each needs sqs:SendMessage on the queue (and kms:GenerateDataKey on the deployment key) in its own policy too."
  type        = list(string)
  validation {
    condition     = length(var.request_senders) > 0
    error_message = "request_senders is empty: name the principals that may send requests, e.g. request_senders = [\"arn:aws:iam::111122223333:role/backup-operator\"]."
  }
  validation {
    condition     = alltrue([for p in var.request_senders : can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:", p))])
    error_message = "request_senders: each entry is an IAM principal ARN (arn:<partition>:iam::<account>:role/<name>, …:user/<name>, …)."
  }
}

variable "allowed_tables" {
  description = "The tables Solace may back up from and restore into: region and table name, each with IAM wildcards (* and ?). The request function rejects a request naming any other table, and the roles allow Scan and BatchWriteItem only on these (in this account). Solace's own status tables are never allowed, whatever this says. No default: name them, e.g. [{ region = \"us-east-1\", name = \"orders\" }, { region = \"*\", name = \"orders-restored-*\" }]."
  type = list(object({
    region = string
    name   = string
  }))
  validation {
    condition     = length(var.allowed_tables) > 0
    error_message = "allowed_tables is empty: name the tables Solace may back up and restore into, e.g. allowed_tables = [{ region = \"us-east-1\", name = \"orders\" }]. There is no allow-all default."
  }
  validation {
    condition     = alltrue([for t in var.allowed_tables : can(regex("^[a-z0-9*?-]+$", t.region)) && can(regex("^[A-Za-z0-9_.*?-]+$", t.name))])
    error_message = "allowed_tables: each region is a region name and each name a table name, with * and ? as wildcards."
  }
}

variable "allowed_buckets" {
  description = "The buckets (name with IAM wildcards) and key prefixes Solace may write backups to and restore from. The request function rejects any other bucket or a prefix outside these, and the roles allow objects only under <name>/<prefix>*. No default: name them, e.g. [{ name = \"example-dynamodb-backups\", prefix = \"orders/\" }]."
  type = list(object({
    name   = string
    prefix = optional(string, "")
  }))
  validation {
    condition     = length(var.allowed_buckets) > 0
    error_message = "allowed_buckets is empty: name the buckets (and optional key prefixes) backups may go to, e.g. allowed_buckets = [{ name = \"example-dynamodb-backups\" }]. There is no allow-all default."
  }
  validation {
    condition     = alltrue([for b in var.allowed_buckets : can(regex("^[a-z0-9.*?-]+$", b.name)) && !startswith(b.prefix, "/")])
    error_message = "allowed_buckets: each name is a bucket name (with * and ? as wildcards), and a prefix does not start with /."
  }
}

variable "data_bucket_account_ids" {
  description = "Accounts whose buckets the functions may use (IAM condition s3:ResourceAccount). [] = this account, plus expected_bucket_owner when set."
  type        = list(string)
  default     = []
}

variable "backup_kms_key_arn" {
  description = "KMS key every object of a backup is written with (SSE-KMS, with the S3 bucket key). \"\" = SSE-S3. The functions get kms:GenerateDataKey and kms:Decrypt on it (it joins data_kms_key_arns)."
  type        = string
  default     = ""
  validation {
    condition     = var.backup_kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.backup_kms_key_arn))
    error_message = "backup_kms_key_arn must be \"\" (SSE-S3) or a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>)."
  }
}

variable "retention_mode" {
  description = "Object Lock mode of every object of a backup whose request names no retention: \"GOVERNANCE\" or \"COMPLIANCE\". \"\" = none. The buckets must be versioned with Object Lock enabled (README: Immutable backups); a backup to another bucket is rejected."
  type        = string
  default     = ""
  validation {
    condition     = contains(["", "GOVERNANCE", "COMPLIANCE"], var.retention_mode)
    error_message = "retention_mode must be \"\", \"GOVERNANCE\" or \"COMPLIANCE\"."
  }
}

variable "retention_days" {
  description = "Days each object of a backup stays locked, from its write, with retention_mode."
  type        = number
  default     = 30
  validation {
    condition     = var.retention_days >= 1 && var.retention_days <= 36500 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, 1 to 36500."
  }
}

variable "data_kms_key_arns" {
  description = "KMS keys of SSE-KMS encrypted data buckets: the functions get kms:GenerateDataKey (backup writes) and kms:Decrypt (restore reads) on them. [] = none (buckets use SSE-S3)."
  type        = list(string)
  default     = []
}

# --- encryption of Solace's own resources --------------------------------------------

variable "kms_cmk_enabled" {
  description = "Encrypt the queues, status tables, log groups and function environments with a customer managed KMS key. false = SQS-managed SSE, DynamoDB's AWS owned key, CloudWatch Logs' and Lambda's service keys."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "Customer managed KMS key to use when kms_cmk_enabled. \"\" = create a dedicated key for this deployment (rotation on). A key of your own must allow this account's IAM policies (the default key policy) and the CloudWatch Logs service principal of var.region."
  type        = string
  default     = ""
}

variable "kms_deletion_window_days" {
  description = "Deletion window of the key Terraform creates (7..30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be 7..30."
  }
}

# --- logs and monitoring ---------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups (days; one of the values CloudWatch Logs accepts)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "alarm_sns_topic_arn" {
  description = "SNS topic the alarms notify (alarm and OK). \"\" = alarms without actions (visible in the console only)."
  type        = string
  default     = ""
}

variable "alarm_period_seconds" {
  description = "Period of the alarms' metric statistics (seconds, multiple of 60)."
  type        = number
  default     = 300
}

variable "dlq_depth_alarm_threshold" {
  description = "Alarm when a dead-letter queue holds more than this many visible messages for 3 consecutive periods (the redrive function normally drains them at once)."
  type        = number
  default     = 0
}

variable "redrive_invocations_alarm_threshold" {
  description = "Alarm when the redrive function is invoked more than this many times in one period (the rate failed batches are re-routed)."
  type        = number
  default     = 10
}

variable "request_errors_alarm_threshold" {
  description = "Alarm when the request function errors more than this many times in one period."
  type        = number
  default     = 0
}

variable "rejected_requests_alarm_threshold" {
  description = "Alarm when more than this many requests are rejected in one period (Solace/RejectedRequests, the bad-request rate)."
  type        = number
  default     = 0
}

variable "request_queue_age_alarm_seconds" {
  description = "Alarm when the oldest message of the request queue is older than this (seconds)."
  type        = number
  default     = 900
}

variable "work_queue_age_alarm_seconds" {
  description = "Alarm when the oldest message of the backup or restore queue is older than this (seconds). Segments wait while maximum_concurrency is in use, so allow for the longest expected task."
  type        = number
  default     = 21600
}
