# Offline tests of the Terraform (no AWS account, no API calls): every resource
# is overridden with fake ARNs and the AWS provider runs with fake credentials,
# so the IAM policy documents, environments, queues and event sources are
# computed for real and checked against docs/settings.md.
#
# Needs the hashicorp/aws provider installed: scripts/check-infra runs these when
# SOLACE_TF_PLUGIN_DIR names a provider mirror; or `terraform -chdir=infra test`.

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}

override_data {
  target = data.aws_caller_identity.current
  values = { account_id = "111122223333" }
}

override_resource {
  target = aws_sqs_queue.work["request"]
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:REQUESTQ", id = "https://sqs/REQUESTQ", url = "https://sqs/REQUESTQ" }
}
override_resource {
  target = aws_sqs_queue.work["backup"]
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:BACKUPQ", id = "https://sqs/BACKUPQ", url = "https://sqs/BACKUPQ" }
}
override_resource {
  target = aws_sqs_queue.work["restore"]
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:RESTOREQ", id = "https://sqs/RESTOREQ", url = "https://sqs/RESTOREQ" }
}
override_resource {
  target = aws_sqs_queue.dlq["request"]
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:REQUESTDLQ", id = "https://sqs/REQUESTDLQ", url = "https://sqs/REQUESTDLQ" }
}
override_resource {
  target = aws_sqs_queue.dlq["backup"]
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:BACKUPDLQ", id = "https://sqs/BACKUPDLQ", url = "https://sqs/BACKUPDLQ" }
}
override_resource {
  target = aws_sqs_queue.dlq["restore"]
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:RESTOREDLQ", id = "https://sqs/RESTOREDLQ", url = "https://sqs/RESTOREDLQ" }
}
override_resource {
  target = aws_sqs_queue.rejected
  values = { arn = "arn:aws:sqs:us-east-1:111122223333:REJECTEDQ", id = "https://sqs/REJECTEDQ", url = "https://sqs/REJECTEDQ" }
}
override_resource {
  target = aws_sqs_queue_redrive_allow_policy.dlq
}
override_resource {
  target = aws_dynamodb_table.status["backup"]
  values = { arn = "arn:aws:dynamodb:us-east-1:111122223333:table/BACKUPTABLE" }
}
override_resource {
  target = aws_dynamodb_table.status["restore"]
  values = { arn = "arn:aws:dynamodb:us-east-1:111122223333:table/RESTORETABLE" }
}
override_resource {
  target = aws_kms_key.solace
  values = { arn = "arn:aws:kms:us-east-1:111122223333:key/SOLACEKEY", key_id = "SOLACEKEY" }
}
override_resource {
  target = aws_kms_alias.solace
}
override_resource {
  target = aws_cloudwatch_log_group.fn["request"]
  values = { arn = "arn:aws:logs:us-east-1:111122223333:log-group:REQUESTLOGS" }
}
override_resource {
  target = aws_cloudwatch_log_group.fn["backup"]
  values = { arn = "arn:aws:logs:us-east-1:111122223333:log-group:BACKUPLOGS" }
}
override_resource {
  target = aws_cloudwatch_log_group.fn["restore"]
  values = { arn = "arn:aws:logs:us-east-1:111122223333:log-group:RESTORELOGS" }
}
override_resource {
  target = aws_cloudwatch_log_group.fn["redrive"]
  values = { arn = "arn:aws:logs:us-east-1:111122223333:log-group:REDRIVELOGS" }
}
override_resource {
  target = aws_iam_role.fn
  values = { arn = "arn:aws:iam::111122223333:role/ROLE", id = "ROLE" }
}
override_resource {
  target = aws_iam_role_policy.fn
}
override_resource {
  target = aws_lambda_function.fn
  values = { arn = "arn:aws:lambda:us-east-1:111122223333:function:FUNCTION" }
}
override_resource {
  target = aws_lambda_event_source_mapping.fn
}
override_resource {
  target = aws_cloudwatch_metric_alarm.dlq_depth
}
override_resource {
  target = aws_cloudwatch_metric_alarm.redrive_invocations
}
override_resource {
  target = aws_cloudwatch_metric_alarm.request_errors
}
override_resource {
  target = aws_cloudwatch_metric_alarm.rejected_requests
}
override_resource {
  target = aws_cloudwatch_metric_alarm.queue_age
}
override_resource {
  target = aws_cloudwatch_dashboard.solace
}

# The allow-lists have no default: every run names them.
variables {
  request_senders = ["arn:aws:iam::111122223333:role/backup-operator"]
  allowed_tables  = [{ region = "us-east-1", name = "orders" }, { region = "*", name = "orders-restored-*" }]
  allowed_buckets = [{ name = "example-dynamodb-backups", prefix = "orders/" }]
}

run "allow_lists_may_not_be_empty" {
  command = plan

  variables {
    allowed_tables  = []
    allowed_buckets = []
  }

  expect_failures = [var.allowed_tables, var.allowed_buckets]
}

run "defaults" {
  command = apply

  # --- names and queues -----------------------------------------------------------
  assert {
    condition = (
      aws_sqs_queue.work["request"].name == "solace-request-queue" &&
      aws_sqs_queue.work["backup"].name == "solace-backup-queue" &&
      aws_sqs_queue.work["restore"].name == "solace-restore-queue" &&
      aws_sqs_queue.rejected.name == "solace-request-rejected" &&
      aws_dynamodb_table.status["backup"].name == "solace-backup-table" &&
      aws_dynamodb_table.status["restore"].name == "solace-restore-table"
    )
    error_message = "resource names must be <name_prefix> + the local default names"
  }
  assert {
    condition = (
      aws_sqs_queue.work["request"].visibility_timeout_seconds == 360 &&
      aws_sqs_queue.work["backup"].visibility_timeout_seconds == 5400 &&
      aws_sqs_queue.work["restore"].visibility_timeout_seconds == 5400 &&
      aws_sqs_queue.dlq["backup"].visibility_timeout_seconds == 360 &&
      aws_sqs_queue.dlq["restore"].visibility_timeout_seconds == 360
    )
    error_message = "visibility timeouts must be 6 x the consuming function's timeout"
  }
  assert {
    condition = alltrue([
      for k in ["request", "backup", "restore"] :
      jsondecode(aws_sqs_queue.work[k].redrive_policy).maxReceiveCount == 3 &&
      jsondecode(aws_sqs_queue.work[k].redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq[k].arn
    ])
    error_message = "each work queue dead-letters into its own DLQ after dlq_max_receive_count receives"
  }
  assert {
    condition = alltrue([
      for q in concat(values(aws_sqs_queue.work), values(aws_sqs_queue.dlq), [aws_sqs_queue.rejected]) :
      q.kms_master_key_id == aws_kms_key.solace[0].arn
    ])
    error_message = "queues must be encrypted with the deployment key by default"
  }

  # --- status tables --------------------------------------------------------------
  assert {
    condition = alltrue([
      for t in values(aws_dynamodb_table.status) :
      t.hash_key == "task-id" && t.billing_mode == "PAY_PER_REQUEST" &&
      t.point_in_time_recovery[0].enabled && t.server_side_encryption[0].enabled
    ])
    error_message = "status tables: hash key task-id, on-demand, PITR, SSE"
  }

  # --- functions --------------------------------------------------------------------
  assert {
    condition = alltrue([
      for f in values(aws_lambda_function.fn) :
      f.runtime == "provided.al2023" && f.handler == "bootstrap" && f.architectures == tolist(["x86_64"]) &&
      f.logging_config[0].log_format == "JSON"
    ])
    error_message = "functions: provided.al2023, bootstrap, x86_64, JSON logs"
  }
  assert {
    condition = (
      toset(keys(aws_lambda_function.fn["request"].environment[0].variables)) == toset(["RUST_LOG", "SOLACE_REQUEST_QUEUE_URL", "SOLACE_BACKUP_QUEUE_URL", "SOLACE_RESTORE_QUEUE_URL", "SOLACE_REJECTED_QUEUE_URL", "SOLACE_BACKUP_STATUS_TABLE", "SOLACE_RESTORE_STATUS_TABLE", "SOLACE_MAX_SEGMENTS", "SOLACE_ALLOWED_TABLES", "SOLACE_ALLOWED_BUCKETS"]) &&
      toset(keys(aws_lambda_function.fn["backup"].environment[0].variables)) == toset(["RUST_LOG", "SOLACE_BACKUP_QUEUE_URL", "SOLACE_BACKUP_STATUS_TABLE", "SOLACE_BATCH_BYTES", "SOLACE_COMPRESSION_LEVEL", "SOLACE_DEADLINE_MARGIN_MS"]) &&
      toset(keys(aws_lambda_function.fn["restore"].environment[0].variables)) == toset(["RUST_LOG", "SOLACE_RESTORE_QUEUE_URL", "SOLACE_RESTORE_STATUS_TABLE", "SOLACE_DEADLINE_MARGIN_MS"]) &&
      toset(keys(aws_lambda_function.fn["redrive"].environment[0].variables)) == toset(["RUST_LOG", "SOLACE_BACKUP_QUEUE_URL", "SOLACE_RESTORE_QUEUE_URL", "SOLACE_BACKUP_STATUS_TABLE", "SOLACE_RESTORE_STATUS_TABLE", "SOLACE_REDRIVE_LIMIT"])
    )
    error_message = "environment variables must be exactly those of docs/settings.md (optional ones unset by default)"
  }
  assert {
    condition = (
      aws_lambda_function.fn["request"].environment[0].variables["SOLACE_BACKUP_QUEUE_URL"] == "https://sqs/BACKUPQ" &&
      aws_lambda_function.fn["request"].environment[0].variables["SOLACE_REJECTED_QUEUE_URL"] == "https://sqs/REJECTEDQ" &&
      aws_lambda_function.fn["request"].environment[0].variables["SOLACE_MAX_SEGMENTS"] == "1000" &&
      aws_lambda_function.fn["backup"].environment[0].variables["SOLACE_BATCH_BYTES"] == "8388608" &&
      aws_lambda_function.fn["backup"].environment[0].variables["SOLACE_COMPRESSION_LEVEL"] == "6" &&
      aws_lambda_function.fn["backup"].environment[0].variables["SOLACE_DEADLINE_MARGIN_MS"] == "30000" &&
      aws_lambda_function.fn["restore"].environment[0].variables["SOLACE_RESTORE_STATUS_TABLE"] == "solace-restore-table" &&
      aws_lambda_function.fn["redrive"].environment[0].variables["SOLACE_REDRIVE_LIMIT"] == "3"
    )
    error_message = "environment values must come from the queues, tables and variables"
  }

  # --- event sources ------------------------------------------------------------------
  assert {
    condition = (
      length(aws_lambda_event_source_mapping.fn) == 5 &&
      aws_lambda_event_source_mapping.fn["redrive-backup"].event_source_arn == aws_sqs_queue.dlq["backup"].arn &&
      aws_lambda_event_source_mapping.fn["redrive-restore"].event_source_arn == aws_sqs_queue.dlq["restore"].arn &&
      aws_lambda_event_source_mapping.fn["backup"].batch_size == 1 &&
      aws_lambda_event_source_mapping.fn["backup"].scaling_config[0].maximum_concurrency == 200 &&
      alltrue([for m in values(aws_lambda_event_source_mapping.fn) : m.function_response_types == toset(["ReportBatchItemFailures"])])
    )
    error_message = "event sources: one per work queue, two for redrive, partial batch responses"
  }

  # --- IAM: only the contract's actions, on the right resources ----------------------------
  assert {
    condition = alltrue([
      for doc in [data.aws_iam_policy_document.request, data.aws_iam_policy_document.backup, data.aws_iam_policy_document.restore, data.aws_iam_policy_document.redrive] :
      alltrue([for a in flatten([for s in jsondecode(doc.json).Statement : s.Action]) : !strcontains(a, "*")])
    ])
    error_message = "no wildcard actions"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(data.aws_iam_policy_document.request.json).Statement : s.Action])) == toset([
      "logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt", "kms:GenerateDataKey",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
      "sqs:SendMessage", "dynamodb:PutItem", "s3:ListBucket", "s3:GetObject", "s3:PutObject",
    ])
    error_message = "request role actions differ from docs/settings.md"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(data.aws_iam_policy_document.backup.json).Statement : s.Action])) == toset([
      "logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt", "kms:GenerateDataKey",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
      "sqs:SendMessage", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan", "s3:PutObject",
    ])
    error_message = "backup role actions differ from docs/settings.md"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(data.aws_iam_policy_document.restore.json).Statement : s.Action])) == toset([
      "logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt", "kms:GenerateDataKey",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
      "sqs:SendMessage", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "s3:ListBucket", "s3:GetObject",
    ])
    error_message = "restore role actions differ from docs/settings.md"
  }
  assert {
    condition = toset(flatten([for s in jsondecode(data.aws_iam_policy_document.redrive.json).Statement : s.Action])) == toset([
      "logs:CreateLogStream", "logs:PutLogEvents", "kms:Decrypt", "kms:GenerateDataKey",
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
      "sqs:SendMessage", "dynamodb:GetItem", "dynamodb:UpdateItem",
    ])
    error_message = "redrive role actions differ from docs/settings.md"
  }
  assert {
    condition = (
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.request.json).Statement : s.Resource if s.Sid == "FanOutAndReject"])) == toset([aws_sqs_queue.work["backup"].arn, aws_sqs_queue.work["restore"].arn, aws_sqs_queue.rejected.arn]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.request.json).Statement : s.Resource if s.Sid == "TriggerQueue"])) == toset([aws_sqs_queue.work["request"].arn]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.backup.json).Statement : s.Resource if s.Sid == "ContinueSegment"])) == toset([aws_sqs_queue.work["backup"].arn]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.backup.json).Statement : s.Resource if s.Sid == "TaskStatus"])) == toset([aws_dynamodb_table.status["backup"].arn]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.backup.json).Statement : s.Resource if s.Sid == "ScanDataTables"])) == toset(["arn:aws:dynamodb:*:111122223333:table/*"]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.restore.json).Statement : s.Resource if s.Sid == "ContinueSegment"])) == toset([aws_sqs_queue.work["restore"].arn]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.redrive.json).Statement : s.Resource if s.Sid == "TriggerQueues"])) == toset([aws_sqs_queue.dlq["backup"].arn, aws_sqs_queue.dlq["restore"].arn]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.redrive.json).Statement : s.Resource if s.Sid == "OwnLogGroup"])) == toset(["${aws_cloudwatch_log_group.fn["redrive"].arn}:*"])
    )
    error_message = "IAM statements must target only the function's own queues, tables and log group"
  }

  # --- alarms -------------------------------------------------------------------------
  assert {
    condition = (
      length(aws_cloudwatch_metric_alarm.dlq_depth) == 3 && length(aws_cloudwatch_metric_alarm.queue_age) == 3 &&
      aws_cloudwatch_metric_alarm.rejected_requests.namespace == "Solace" &&
      length(aws_cloudwatch_metric_alarm.request_errors.alarm_actions) == 0
    )
    error_message = "alarms: DLQ depth x3, queue age x3, RejectedRequests; no actions without a topic"
  }
}

run "optional_settings" {
  command = apply

  variables {
    name_prefix           = ""
    kms_cmk_enabled       = false
    expected_bucket_owner = "444455556666"
    read_capacity_limit   = 100
    write_capacity_limit  = 50
    tracing_mode          = "Active"
    alarm_sns_topic_arn   = "arn:aws:sns:us-east-1:111122223333:ops"
    data_kms_key_arns     = ["arn:aws:kms:us-east-1:111122223333:key/DATAKEY"]
  }

  assert {
    condition = (
      aws_sqs_queue.work["request"].name == "request-queue" &&
      aws_dynamodb_table.status["backup"].name == "backup-table" &&
      aws_dynamodb_table.status["restore"].name == "restore-table"
    )
    error_message = "an empty prefix gives the Solace v3 names"
  }
  assert {
    condition = alltrue([
      for q in concat(values(aws_sqs_queue.work), values(aws_sqs_queue.dlq), [aws_sqs_queue.rejected]) :
      q.sqs_managed_sse_enabled == true && q.kms_master_key_id == null
    ]) && length(aws_kms_key.solace) == 0
    error_message = "without a CMK the queues use SQS-managed SSE"
  }
  assert {
    condition = (
      aws_lambda_function.fn["backup"].environment[0].variables["SOLACE_READ_CAPACITY_LIMIT"] == "100" &&
      aws_lambda_function.fn["restore"].environment[0].variables["SOLACE_WRITE_CAPACITY_LIMIT"] == "50" &&
      alltrue([for k in ["request", "backup", "restore"] : aws_lambda_function.fn[k].environment[0].variables["SOLACE_EXPECTED_BUCKET_OWNER"] == "444455556666"]) &&
      !contains(keys(aws_lambda_function.fn["redrive"].environment[0].variables), "SOLACE_EXPECTED_BUCKET_OWNER")
    )
    error_message = "optional environment variables are set only when configured"
  }
  assert {
    condition = (
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.backup.json).Statement : s.Condition.StringEquals["s3:ResourceAccount"] if s.Sid == "WriteBatches"])) == toset(["111122223333", "444455556666"]) &&
      toset(flatten([for s in jsondecode(data.aws_iam_policy_document.restore.json).Statement : s.Action if s.Sid == "DataBucketKeys"])) == toset(["kms:Decrypt"]) &&
      length([for s in jsondecode(data.aws_iam_policy_document.redrive.json).Statement : s if s.Sid == "XRayTracing"]) == 1 &&
      length([for s in jsondecode(data.aws_iam_policy_document.redrive.json).Statement : s if s.Sid == "DeploymentKey"]) == 0
    )
    error_message = "bucket owner condition, data keys, X-Ray and no deployment key"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.request_errors.alarm_actions == toset(["arn:aws:sns:us-east-1:111122223333:ops"])
    error_message = "alarms notify the configured topic"
  }
}
