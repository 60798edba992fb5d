# Alarms (seed "Monitoring": backup/restore errors are tolerated, redrive
# invocations are the re-route rate, request errors and rejected requests are
# the bad-request rate) and a dashboard of the functions' EMF metrics
# (namespace Solace, dimension Function).

locals {
  alarm_actions = var.alarm_sns_topic_arn == "" ? [] : [var.alarm_sns_topic_arn]

  queue_age_alarms = {
    request = var.request_queue_age_alarm_seconds
    backup  = var.work_queue_age_alarm_seconds
    restore = var.work_queue_age_alarm_seconds
  }

  dashboard_metrics = ["Items", "Bytes", "SegmentsCompleted", "SegmentsFailed"]
  dashboard_functions = {
    Items             = ["backup", "restore"]
    Bytes             = ["backup", "restore"]
    SegmentsCompleted = ["backup", "restore"]
    SegmentsFailed    = ["backup", "restore", "redrive"]
  }
}

# Dead-letter queue depth. backup-dlq and restore-dlq are drained by the redrive
# function, so a backlog that persists means redrive itself is failing.
# request-dlq has no consumer: any message there is a request the request
# function could not process (not a bad request: those are rejected).
resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each = local.dead_letter_queues

  alarm_name          = "${var.name_prefix}${each.value.name}-depth"
  alarm_description   = "Solace: messages are piling up in ${aws_sqs_queue.dlq[each.key].name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq[each.key].name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = each.key == "request" ? 1 : 3
  datapoints_to_alarm = each.key == "request" ? 1 : 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.dlq_depth_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "redrive_invocations" {
  alarm_name          = "${var.name_prefix}redrive-invocations"
  alarm_description   = "Solace: backup/restore batches are being re-routed from the dead-letter queues (redrive invocations per period)."
  namespace           = "AWS/Lambda"
  metric_name         = "Invocations"
  dimensions          = { FunctionName = aws_lambda_function.fn["redrive"].function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.redrive_invocations_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "request_errors" {
  alarm_name          = "${var.name_prefix}request-errors"
  alarm_description   = "Solace: the request function is failing invocations."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.fn["request"].function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.request_errors_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "rejected_requests" {
  alarm_name          = "${var.name_prefix}rejected-requests"
  alarm_description   = "Solace: requests were rejected as invalid; reasons are in the ${aws_sqs_queue.rejected.name} queue and the request function's logs."
  namespace           = "Solace"
  metric_name         = "RejectedRequests"
  dimensions          = { Function = "request" }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.rejected_requests_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each = local.queue_age_alarms

  alarm_name          = "${var.name_prefix}${local.work_queues[each.key].name}-oldest-message"
  alarm_description   = "Solace: the oldest message in ${aws_sqs_queue.work[each.key].name} is older than ${each.value} s."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.work[each.key].name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_dashboard" "solace" {
  dashboard_name = local.deployment

  dashboard_body = jsonencode({
    widgets = concat(
      [
        for i, metric in local.dashboard_metrics : {
          type   = "metric"
          x      = (i % 2) * 12
          y      = floor(i / 2) * 6
          width  = 12
          height = 6
          properties = {
            title   = "${metric} per minute"
            region  = var.region
            view    = "timeSeries"
            stacked = false
            stat    = "Sum"
            period  = 60
            metrics = [
              for fn in local.dashboard_functions[metric] : ["Solace", metric, "Function", fn]
            ]
          }
        }
      ],
      [
        {
          type   = "metric"
          x      = 0
          y      = 12
          width  = 12
          height = 6
          properties = {
            title   = "Queue depth (visible messages)"
            region  = var.region
            view    = "timeSeries"
            stacked = false
            stat    = "Maximum"
            period  = 60
            metrics = concat(
              [for k, q in aws_sqs_queue.work : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name]],
              [for k, q in aws_sqs_queue.dlq : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name]],
            )
          }
        },
        {
          type   = "metric"
          x      = 12
          y      = 12
          width  = 12
          height = 6
          properties = {
            title   = "Function errors and redrive invocations per minute"
            region  = var.region
            view    = "timeSeries"
            stacked = false
            stat    = "Sum"
            period  = 60
            metrics = concat(
              [for k, f in aws_lambda_function.fn : ["AWS/Lambda", "Errors", "FunctionName", f.function_name]],
              [["AWS/Lambda", "Invocations", "FunctionName", aws_lambda_function.fn["redrive"].function_name, { label = "redrive invocations" }]],
              [["Solace", "RejectedRequests", "Function", "request"]],
            )
          }
        },
      ],
    )
  })
}
