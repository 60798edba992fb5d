output "request_queue_url" {
  description = "Send backup/restore requests here (aws sqs send-message --queue-url ...)."
  value       = aws_sqs_queue.work["request"].url
}

output "rejected_queue_url" {
  description = "Rejected requests ({\"task-id\", \"reason\", \"request\"}) land here."
  value       = aws_sqs_queue.rejected.url
}

output "queue_urls" {
  description = "Work and dead-letter queue URLs by name."
  value = merge(
    { for k, q in aws_sqs_queue.work : q.name => q.url },
    { for k, q in aws_sqs_queue.dlq : q.name => q.url },
    { (aws_sqs_queue.rejected.name) = aws_sqs_queue.rejected.url },
  )
}

output "backup_status_table" {
  description = "Status table of backup tasks (hash key task-id = the request's SQS message id)."
  value       = aws_dynamodb_table.status["backup"].name
}

output "restore_status_table" {
  description = "Status table of restore tasks (hash key task-id = the request's SQS message id)."
  value       = aws_dynamodb_table.status["restore"].name
}

output "function_names" {
  description = "Lambda function names by role (request, backup, restore, redrive)."
  value       = { for k, f in aws_lambda_function.fn : k => f.function_name }
}

output "log_groups" {
  description = "CloudWatch log groups by function."
  value       = { for k, g in aws_cloudwatch_log_group.fn : k => g.name }
}

output "kms_key_arn" {
  description = "Key encrypting the queues, status tables, logs and function environments (null = service keys). Senders of requests need kms:GenerateDataKey and kms:Decrypt on it."
  value       = local.kms_key_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the Solace metrics."
  value       = aws_cloudwatch_dashboard.solace.dashboard_name
}
