# One execution role per function, holding only the actions docs/settings.md lists
# for that function, on the resources it uses. No wildcard actions.
# functions/tests/infra.rs checks every role against the calls the code makes
# (functions/src/operations.rs): add an AWS call there and here together.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "fn" {
  for_each = local.functions

  name               = "${var.name_prefix}${each.key}-lambda"
  description        = "Solace ${each.key} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

# Every function: logs on its own log group, the deployment key (queues are
# encrypted with it), X-Ray when tracing is Active.
data "aws_iam_policy_document" "common" {
  for_each = local.functions

  statement {
    sid     = "OwnLogGroup"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "${aws_cloudwatch_log_group.fn[each.key].arn}:*",
    ]
  }

  dynamic "statement" {
    for_each = var.kms_cmk_enabled ? [local.kms_key_arn] : []
    content {
      sid       = "DeploymentKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }

  # Whatever allowed_tables says, Solace's own status tables are never data tables.
  statement {
    sid     = "StatusTablesAreNotData"
    effect  = "Deny"
    actions = ["dynamodb:BatchWriteItem", "dynamodb:Scan"]
    resources = [
      aws_dynamodb_table.status["backup"].arn,
      aws_dynamodb_table.status["restore"].arn,
    ]
  }

  dynamic "statement" {
    # X-Ray has no resource-level permissions: these two actions only take "*".
    for_each = var.tracing_mode == "Active" ? ["xray"] : []
    content {
      sid       = "XRayTracing"
      effect    = "Allow"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
}

locals {
  # What the SQS event source mapping needs on the function's trigger queue(s).
  event_source_actions = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
  ]
}

# --- request ----------------------------------------------------------------------

data "aws_iam_policy_document" "request" {
  source_policy_documents = [data.aws_iam_policy_document.common["request"].json]

  statement {
    sid       = "TriggerQueue"
    effect    = "Allow"
    actions   = local.event_source_actions
    resources = [aws_sqs_queue.work["request"].arn]
  }

  statement {
    sid     = "FanOutAndReject"
    effect  = "Allow"
    actions = ["sqs:SendMessage"]
    resources = [
      aws_sqs_queue.work["request"].arn,
      aws_sqs_queue.work["backup"].arn,
      aws_sqs_queue.work["restore"].arn,
      aws_sqs_queue.rejected.arn,
    ]
  }

  statement {
    sid     = "RecordTask"
    effect  = "Allow"
    actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [
      aws_dynamodb_table.status["backup"].arn,
      aws_dynamodb_table.status["restore"].arn,
    ]
  }

  # A restore's destination must hold no items (Scan with Limit 1), or is created from the
  # backup's schema (create-table); a backup keeps its table's schema (docs/schema.md).
  statement {
    sid    = "CheckDestination"
    effect = "Allow"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DescribeContinuousBackups",
      "dynamodb:DescribeTable",
      "dynamodb:DescribeTimeToLive",
      "dynamodb:ListTagsOfResource",
      "dynamodb:Scan",
      "dynamodb:TagResource",
      "dynamodb:UpdateContinuousBackups",
      "dynamodb:UpdateTimeToLive",
    ]
    resources = local.data_table_arns
  }

  statement {
    sid       = "ManifestBuckets"
    effect    = "Allow"
    actions   = ["s3:GetBucketObjectLockConfiguration", "s3:ListBucket"]
    resources = local.data_bucket_arns
    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = local.data_bucket_account_ids
    }
  }

  statement {
    sid       = "ManifestObjects"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"]
    resources = local.data_object_arns
    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = local.data_bucket_account_ids
    }
  }

  dynamic "statement" {
    for_each = length(local.data_kms_keys) > 0 ? ["kms"] : []
    content {
      sid       = "DataBucketKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = local.data_kms_keys
      condition {
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["s3.*.amazonaws.com"]
      }
    }
  }
}

# --- backup -----------------------------------------------------------------------

data "aws_iam_policy_document" "backup" {
  source_policy_documents = [data.aws_iam_policy_document.common["backup"].json]

  statement {
    sid       = "TriggerQueue"
    effect    = "Allow"
    actions   = local.event_source_actions
    resources = [aws_sqs_queue.work["backup"].arn]
  }

  statement {
    sid       = "ContinueSegment"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work["backup"].arn]
  }

  # UpdateItem counts the segment; GetItem reads the task when the count is
  # refused (counted before, or no such task).
  statement {
    sid       = "TaskStatus"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.status["backup"].arn]
  }

  statement {
    sid       = "ScanDataTables"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeTable", "dynamodb:ExportTableToPointInTime", "dynamodb:Scan"]
    resources = local.data_table_arns
  }

  # A backup by export waits for its export (docs/export.md#backup-by-export).
  statement {
    sid       = "WatchExports"
    effect    = "Allow"
    actions   = ["dynamodb:DescribeExport"]
    resources = local.data_table_export_arns
  }

  # Conditional writes only (If-None-Match): a 412 is followed by reading what is there.
  statement {
    sid       = "ReadBackBuckets"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = local.data_bucket_arns
    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = local.data_bucket_account_ids
    }
  }

  # DynamoDB writes an export's files with the caller's permissions.
  statement {
    sid       = "WriteBatches"
    effect    = "Allow"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectRetention"]
    resources = local.data_object_arns
    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = local.data_bucket_account_ids
    }
  }

  dynamic "statement" {
    for_each = length(local.data_kms_keys) > 0 ? ["kms"] : []
    content {
      sid       = "DataBucketKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = local.data_kms_keys
      condition {
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["s3.*.amazonaws.com"]
      }
    }
  }
}

# --- restore ----------------------------------------------------------------------

data "aws_iam_policy_document" "restore" {
  source_policy_documents = [data.aws_iam_policy_document.common["restore"].json]

  statement {
    sid       = "TriggerQueue"
    effect    = "Allow"
    actions   = local.event_source_actions
    resources = [aws_sqs_queue.work["restore"].arn]
  }

  statement {
    sid       = "ContinueSegment"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work["restore"].arn]
  }

  # UpdateItem counts the segment; GetItem reads the task when the count is
  # refused (counted before, or no such task).
  statement {
    sid       = "TaskStatus"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.status["restore"].arn]
  }

  statement {
    sid       = "WriteDataTables"
    effect    = "Allow"
    actions   = ["dynamodb:BatchWriteItem"]
    resources = local.data_table_arns
  }

  statement {
    sid       = "ListBatches"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = local.data_bucket_arns
    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = local.data_bucket_account_ids
    }
  }

  statement {
    sid       = "ReadBatches"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = local.data_object_arns
    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = local.data_bucket_account_ids
    }
  }

  dynamic "statement" {
    for_each = length(local.data_kms_keys) > 0 ? ["kms"] : []
    content {
      sid       = "DataBucketKeys"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = local.data_kms_keys
      condition {
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["s3.*.amazonaws.com"]
      }
    }
  }
}

# --- redrive ----------------------------------------------------------------------

data "aws_iam_policy_document" "redrive" {
  source_policy_documents = [data.aws_iam_policy_document.common["redrive"].json]

  statement {
    sid     = "TriggerQueues"
    effect  = "Allow"
    actions = local.event_source_actions
    resources = [
      aws_sqs_queue.dlq["backup"].arn,
      aws_sqs_queue.dlq["restore"].arn,
    ]
  }

  statement {
    sid     = "ReRoute"
    effect  = "Allow"
    actions = ["sqs:SendMessage"]
    resources = [
      aws_sqs_queue.work["backup"].arn,
      aws_sqs_queue.work["restore"].arn,
    ]
  }

  statement {
    sid     = "MarkSegmentFailed"
    effect  = "Allow"
    actions = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [
      aws_dynamodb_table.status["backup"].arn,
      aws_dynamodb_table.status["restore"].arn,
    ]
  }
}

locals {
  function_policies = {
    request = data.aws_iam_policy_document.request.json
    backup  = data.aws_iam_policy_document.backup.json
    restore = data.aws_iam_policy_document.restore.json
    redrive = data.aws_iam_policy_document.redrive.json
  }
}

resource "aws_iam_role_policy" "fn" {
  for_each = local.functions

  name   = "${var.name_prefix}${each.key}"
  role   = aws_iam_role.fn[each.key].id
  policy = local.function_policies[each.key]
}
