# Who may use each queue (docs/settings.md#queue-policies). Identity policies alone would let
# any principal of the account with sqs:SendMessage send a forged request or work message, so
# every queue's own policy denies, to everyone:
# - any call not over TLS (aws:SecureTransport false);
# - SendMessage by any principal but the queue's senders: the principals var.request_senders
#   names (the request queue only) and the Solace roles that send there.

locals {
  # Every queue of the deployment, with the principals that may send to it ([] for the
  # dead-letter queues: only SQS moves messages there).
  queue_policies = {
    # Operators' principals, and the request function's own fan-out continuations.
    "work-request" = {
      url     = aws_sqs_queue.work["request"].id
      arn     = aws_sqs_queue.work["request"].arn
      senders = concat(var.request_senders, [aws_iam_role.fn["request"].arn])
    }
    # Fan-out, continuations, and the redrive function's re-routing.
    "work-backup" = {
      url     = aws_sqs_queue.work["backup"].id
      arn     = aws_sqs_queue.work["backup"].arn
      senders = [aws_iam_role.fn["request"].arn, aws_iam_role.fn["backup"].arn, aws_iam_role.fn["redrive"].arn]
    }
    "work-restore" = {
      url     = aws_sqs_queue.work["restore"].id
      arn     = aws_sqs_queue.work["restore"].arn
      senders = [aws_iam_role.fn["request"].arn, aws_iam_role.fn["restore"].arn, aws_iam_role.fn["redrive"].arn]
    }
    "dlq-request" = {
      url     = aws_sqs_queue.dlq["request"].id
      arn     = aws_sqs_queue.dlq["request"].arn
      senders = []
    }
    "dlq-backup" = {
      url     = aws_sqs_queue.dlq["backup"].id
      arn     = aws_sqs_queue.dlq["backup"].arn
      senders = []
    }
    "dlq-restore" = {
      url     = aws_sqs_queue.dlq["restore"].id
      arn     = aws_sqs_queue.dlq["restore"].arn
      senders = []
    }
    rejected = {
      url     = aws_sqs_queue.rejected.id
      arn     = aws_sqs_queue.rejected.arn
      senders = [aws_iam_role.fn["request"].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "queue" {
  for_each = local.queue_policies

  queue_url = each.value.url
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:*"
        Resource  = each.value.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "OnlyItsSenders"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sqs:SendMessage"
        Resource  = each.value.arn
        Condition = { ArnNotEquals = { "aws:PrincipalArn" = each.value.senders } }
      },
    ]
  })
}
