# Task status tables (docs/status.md#status-tables): one item per task, hash key task-id (the
# SQS message id of the request).

resource "aws_dynamodb_table" "status" {
  for_each = toset(["backup", "restore"])

  name         = "${var.name_prefix}${each.key}-table"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "task-id"

  attribute {
    name = "task-id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  # With a customer managed key when kms_cmk_enabled; otherwise DynamoDB's
  # default encryption at rest with an AWS owned key.
  server_side_encryption {
    enabled     = var.kms_cmk_enabled
    kms_key_arn = local.kms_key_arn
  }
}
