# The four functions (provided.al2023, x86_64, one `bootstrap` per zip built by
# scripts/package-lambdas into dist/lambda/<name>.zip), their log groups and
# their SQS event sources. Environment variables exactly as docs/settings.md#function-contract lists.

locals {
  lambda_zip = { for name, _ in local.functions : name => "${path.module}/../dist/lambda/${name}.zip" }

  optional_bucket_owner_env = var.expected_bucket_owner == "" ? {} : {
    SOLACE_EXPECTED_BUCKET_OWNER = var.expected_bucket_owner
  }

  # Functions that write a backup's objects encrypt them with this key (SSE-KMS), or SSE-S3.
  optional_backup_key_env = var.backup_kms_key_arn == "" ? {} : {
    SOLACE_BACKUP_KMS_KEY_ARN = var.backup_kms_key_arn
  }

  optional_retention_env = var.retention_mode == "" ? {} : {
    SOLACE_RETENTION_MODE = var.retention_mode
    SOLACE_RETENTION_DAYS = tostring(var.retention_days)
  }

  function_env = {
    request = merge(
      {
        RUST_LOG                    = var.rust_log
        SOLACE_REQUEST_QUEUE_URL    = aws_sqs_queue.work["request"].url
        SOLACE_BACKUP_QUEUE_URL     = aws_sqs_queue.work["backup"].url
        SOLACE_RESTORE_QUEUE_URL    = aws_sqs_queue.work["restore"].url
        SOLACE_REJECTED_QUEUE_URL   = aws_sqs_queue.rejected.url
        SOLACE_BACKUP_STATUS_TABLE  = aws_dynamodb_table.status["backup"].name
        SOLACE_RESTORE_STATUS_TABLE = aws_dynamodb_table.status["restore"].name
        SOLACE_MAX_SEGMENTS         = tostring(var.max_segments)
        SOLACE_ALLOWED_TABLES       = jsonencode(var.allowed_tables)
        SOLACE_ALLOWED_BUCKETS      = jsonencode(var.allowed_buckets)
      },
      local.optional_bucket_owner_env,
      local.optional_backup_key_env,
      local.optional_retention_env,
    )
    backup = merge(
      {
        RUST_LOG                   = var.rust_log
        SOLACE_BACKUP_QUEUE_URL    = aws_sqs_queue.work["backup"].url
        SOLACE_BACKUP_STATUS_TABLE = aws_dynamodb_table.status["backup"].name
        SOLACE_BATCH_BYTES         = tostring(var.batch_bytes)
        SOLACE_COMPRESSION_LEVEL   = tostring(var.compression_level)
        SOLACE_DEADLINE_MARGIN_MS  = tostring(var.deadline_margin_ms)
      },
      var.read_capacity_limit == null ? {} : { SOLACE_READ_CAPACITY_LIMIT = tostring(var.read_capacity_limit) },
      local.optional_bucket_owner_env,
      local.optional_backup_key_env,
    )
    restore = merge(
      {
        RUST_LOG                    = var.rust_log
        SOLACE_RESTORE_QUEUE_URL    = aws_sqs_queue.work["restore"].url
        SOLACE_RESTORE_STATUS_TABLE = aws_dynamodb_table.status["restore"].name
        SOLACE_DEADLINE_MARGIN_MS   = tostring(var.deadline_margin_ms)
      },
      var.write_capacity_limit == null ? {} : { SOLACE_WRITE_CAPACITY_LIMIT = tostring(var.write_capacity_limit) },
      local.optional_bucket_owner_env,
    )
    redrive = {
      RUST_LOG                    = var.rust_log
      SOLACE_BACKUP_QUEUE_URL     = aws_sqs_queue.work["backup"].url
      SOLACE_RESTORE_QUEUE_URL    = aws_sqs_queue.work["restore"].url
      SOLACE_BACKUP_STATUS_TABLE  = aws_dynamodb_table.status["backup"].name
      SOLACE_RESTORE_STATUS_TABLE = aws_dynamodb_table.status["restore"].name
      SOLACE_REDRIVE_LIMIT        = tostring(var.redrive_limit)
    }
  }

  # SQS event sources: each function's trigger queue; redrive has two.
  event_sources = {
    request = {
      function            = "request"
      queue_arn           = aws_sqs_queue.work["request"].arn
      batch_size          = var.request_batch_size
      maximum_concurrency = var.request_maximum_concurrency
    }
    backup = {
      function            = "backup"
      queue_arn           = aws_sqs_queue.work["backup"].arn
      batch_size          = var.backup_batch_size
      maximum_concurrency = var.backup_maximum_concurrency
    }
    restore = {
      function            = "restore"
      queue_arn           = aws_sqs_queue.work["restore"].arn
      batch_size          = var.restore_batch_size
      maximum_concurrency = var.restore_maximum_concurrency
    }
    redrive-backup = {
      function            = "redrive"
      queue_arn           = aws_sqs_queue.dlq["backup"].arn
      batch_size          = var.redrive_batch_size
      maximum_concurrency = var.redrive_maximum_concurrency
    }
    redrive-restore = {
      function            = "redrive"
      queue_arn           = aws_sqs_queue.dlq["restore"].arn
      batch_size          = var.redrive_batch_size
      maximum_concurrency = var.redrive_maximum_concurrency
    }
  }
}

resource "aws_cloudwatch_log_group" "fn" {
  for_each = local.functions

  name              = local.log_group_names[each.key]
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn

  # The key policy must allow CloudWatch Logs before the group is encrypted.
  depends_on = [aws_kms_key.solace]
}

resource "aws_lambda_function" "fn" {
  #checkov:skip=CKV_AWS_117:Not in a VPC on purpose: the functions only call public AWS endpoints (SQS, DynamoDB and S3 in whatever regions a request names, cross-region). A VPC would add NAT gateways or per-region endpoints and no isolation for data that never touches a private network.
  #checkov:skip=CKV_AWS_116:A function DLQ only applies to asynchronous invocations. These functions are invoked synchronously by SQS event source mappings; failed messages are dead-lettered by the source queues' redrive policies (backup-dlq and restore-dlq are consumed by the redrive function, request-dlq is alarmed).
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and signed artifacts uploaded through S3; the zips are built from this repository by scripts/package-lambdas and uploaded directly by Terraform, whose source_code_hash pins each deployed artifact.
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.fn[each.key].arn

  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = ["x86_64"]

  filename         = local.lambda_zip[each.key]
  source_code_hash = filebase64sha256(local.lambda_zip[each.key])

  memory_size                    = each.value.memory_mb
  timeout                        = each.value.timeout
  reserved_concurrent_executions = each.value.reserved_concurrency

  kms_key_arn = local.kms_key_arn

  environment {
    variables = local.function_env[each.key]
  }

  tracing_config {
    mode = var.tracing_mode
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.fn[each.key].name
  }

  depends_on = [
    aws_iam_role_policy.fn,
    aws_cloudwatch_log_group.fn,
  ]
}

resource "aws_lambda_event_source_mapping" "fn" {
  for_each = local.event_sources

  event_source_arn        = each.value.queue_arn
  function_name           = aws_lambda_function.fn[each.value.function].arn
  batch_size              = each.value.batch_size
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = each.value.maximum_concurrency
  }

  # Lambda checks the role's SQS permissions when the mapping is created.
  depends_on = [aws_iam_role_policy.fn]
}
