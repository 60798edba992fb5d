# Shared names and settings of a Solace deployment. Resources are split by
# service: kms.tf, sqs.tf, dynamodb.tf, iam.tf, lambda.tf, monitoring.tf.

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # KMS keys of data buckets the functions may use: the ones named, and the backups' own.
  data_kms_keys = distinct(compact(concat(var.data_kms_key_arns, [var.backup_kms_key_arn])))

  # Short deployment name for the few resources that need one word.
  deployment = var.name_prefix == "" ? "solace" : trimsuffix(var.name_prefix, "-")

  # Customer managed key for queues, status tables, log groups and function
  # environments: the operator's, one created here, or none (service keys).
  create_kms_key = var.kms_cmk_enabled && var.kms_key_arn == ""
  kms_key_arn    = var.kms_cmk_enabled ? (local.create_kms_key ? aws_kms_key.solace[0].arn : var.kms_key_arn) : null

  # The four functions (docs/settings.md#function-contract), their settings and the queue that triggers them.
  functions = {
    request = {
      description          = "Solace: validates backup/restore requests, records the task, fans out one message per segment"
      memory_mb            = var.request_memory_mb
      timeout              = var.request_timeout_seconds
      reserved_concurrency = var.request_reserved_concurrency
    }
    backup = {
      description          = "Solace: scans one DynamoDB segment and writes its batches to S3"
      memory_mb            = var.backup_memory_mb
      timeout              = var.backup_timeout_seconds
      reserved_concurrency = var.backup_reserved_concurrency
    }
    restore = {
      description          = "Solace: reads one segment's batches from S3 and writes their items to DynamoDB"
      memory_mb            = var.restore_memory_mb
      timeout              = var.restore_timeout_seconds
      reserved_concurrency = var.restore_reserved_concurrency
    }
    redrive = {
      description          = "Solace: re-routes dead-lettered backup/restore batches a bounded number of times, then marks the segment failed"
      memory_mb            = var.redrive_memory_mb
      timeout              = var.redrive_timeout_seconds
      reserved_concurrency = var.redrive_reserved_concurrency
    }
  }

  function_names  = { for name, _ in local.functions : name => "${var.name_prefix}${name}" }
  log_group_names = { for name, _ in local.functions : name => "/aws/lambda/${var.name_prefix}${name}" }

  # Data being backed up or restored: exactly the allow-lists the request function enforces
  # (it gets the same variables as SOLACE_ALLOWED_TABLES and SOLACE_ALLOWED_BUCKETS).
  data_table_arns         = [for t in var.allowed_tables : "arn:${local.partition}:dynamodb:${t.region}:${local.account_id}:table/${t.name}"]
  data_table_export_arns  = [for arn in local.data_table_arns : "${arn}/export/*"]
  data_bucket_arns        = distinct([for b in var.allowed_buckets : "arn:${local.partition}:s3:::${b.name}"])
  data_object_arns        = [for b in var.allowed_buckets : "arn:${local.partition}:s3:::${b.name}/${b.prefix}*"]
  data_bucket_account_ids = length(var.data_bucket_account_ids) > 0 ? var.data_bucket_account_ids : distinct(compact([local.account_id, var.expected_bucket_owner]))
}

# Plan-time warnings for settings that deploy but misbehave. Settings that cannot work at all
# (a deadline margin that leaves no time in the timeouts, a batch size past the decoder's cap)
# are refused by the variables' validations instead (project-vars.tf).
check "event_source_concurrency_fits_reservation" {
  assert {
    condition = alltrue([
      var.request_reserved_concurrency < 0 || var.request_maximum_concurrency <= var.request_reserved_concurrency,
      var.backup_reserved_concurrency < 0 || var.backup_maximum_concurrency <= var.backup_reserved_concurrency,
      var.restore_reserved_concurrency < 0 || var.restore_maximum_concurrency <= var.restore_reserved_concurrency,
      var.redrive_reserved_concurrency < 0 || 2 * var.redrive_maximum_concurrency <= var.redrive_reserved_concurrency,
    ])
    error_message = "An event source's maximum_concurrency exceeds its function's reserved concurrency (redrive has two event sources): SQS messages will be throttled and may be dead-lettered."
  }
}

check "dead_letter_retention_outlasts_source" {
  assert {
    condition     = var.dlq_message_retention_seconds > var.queue_message_retention_seconds
    error_message = "dlq_message_retention_seconds should exceed queue_message_retention_seconds: a dead-lettered message keeps its original enqueue time and would expire early."
  }
}
