# Queues: request -> (backup | restore) work queues, each with a dead-letter
# queue the redrive function consumes; request-rejected collects bad requests.
# Every visibility timeout is visibility_timeout_multiplier x the timeout of the
# function that consumes the queue (AWS requires >= 1x, recommends 6x).

locals {
  work_queues = {
    request = {
      name               = "request-queue"
      visibility_timeout = min(43200, var.visibility_timeout_multiplier * var.request_timeout_seconds)
    }
    backup = {
      name               = "backup-queue"
      visibility_timeout = min(43200, var.visibility_timeout_multiplier * var.backup_timeout_seconds)
    }
    restore = {
      name               = "restore-queue"
      visibility_timeout = min(43200, var.visibility_timeout_multiplier * var.restore_timeout_seconds)
    }
  }

  # Dead-letter queues: backup/restore are consumed by the redrive function;
  # request-dlq has no consumer (infrastructure failures of the request
  # function land there; bad requests go to request-rejected instead).
  dead_letter_queues = {
    request = {
      name               = "request-dlq"
      visibility_timeout = min(43200, var.visibility_timeout_multiplier * var.request_timeout_seconds)
    }
    backup = {
      name               = "backup-dlq"
      visibility_timeout = min(43200, var.visibility_timeout_multiplier * var.redrive_timeout_seconds)
    }
    restore = {
      name               = "restore-dlq"
      visibility_timeout = min(43200, var.visibility_timeout_multiplier * var.redrive_timeout_seconds)
    }
  }

  sqs_kms_data_key_reuse_seconds = 3600
}

resource "aws_sqs_queue" "dlq" {
  for_each = local.dead_letter_queues

  name                       = "${var.name_prefix}${each.value.name}"
  message_retention_seconds  = var.dlq_message_retention_seconds
  visibility_timeout_seconds = each.value.visibility_timeout

  sqs_managed_sse_enabled           = var.kms_cmk_enabled ? null : true
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_cmk_enabled ? local.sqs_kms_data_key_reuse_seconds : null
}

resource "aws_sqs_queue" "work" {
  for_each = local.work_queues

  name                       = "${var.name_prefix}${each.value.name}"
  message_retention_seconds  = var.queue_message_retention_seconds
  visibility_timeout_seconds = each.value.visibility_timeout

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[each.key].arn
    maxReceiveCount     = var.dlq_max_receive_count
  })

  sqs_managed_sse_enabled           = var.kms_cmk_enabled ? null : true
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_cmk_enabled ? local.sqs_kms_data_key_reuse_seconds : null
}

# Only its own work queue may dead-letter into a DLQ (and messages can be moved
# back to it with SQS's DLQ redrive, e.g. request-dlq after an outage).
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  for_each = local.dead_letter_queues

  queue_url = aws_sqs_queue.dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.work[each.key].arn]
  })
}

# {"task-id", "reason", "request", "rejected-at"} of every rejected request (docs/request.md#rejected-requests), kept
# for operators to read; nothing consumes it.
resource "aws_sqs_queue" "rejected" {
  name                      = "${var.name_prefix}request-rejected"
  message_retention_seconds = var.dlq_message_retention_seconds

  sqs_managed_sse_enabled           = var.kms_cmk_enabled ? null : true
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = var.kms_cmk_enabled ? local.sqs_kms_data_key_reuse_seconds : null
}
