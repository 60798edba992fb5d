# Customer managed key for Solace's own data at rest (queues, status tables,
# log groups, function environments). Created only when kms_cmk_enabled and no
# kms_key_arn of the operator's is given.

resource "aws_kms_key" "solace" {
  count = local.create_kms_key ? 1 : 0

  description             = "Solace ${local.deployment}: queues, status tables, logs and function environments"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # AWS's default key policy: the account's IAM policies decide who uses
        # the key (the function roles get kms:Decrypt/GenerateDataKey on it).
        Sid       = "EnableIamPolicies"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsForSolaceLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt",
          "kms:Decrypt",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:DescribeKey",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/lambda/${var.name_prefix}*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "solace" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/${local.deployment}"
  target_key_id = aws_kms_key.solace[0].key_id
}
