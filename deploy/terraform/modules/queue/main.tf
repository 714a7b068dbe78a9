# A work queue with its own dead-letter queue: encrypted at rest, long polling,
# redrive after dlq.max_receive_count receives, a DLQ that accepts only this
# queue as its source, and a queue policy that lets only the given EventBridge
# rules send.

locals {
  # SSE-SQS unless a customer key is given; the two settings conflict, so the
  # unused one is null rather than false.
  sqs_managed_sse_enabled = var.kms_key_arn == null ? true : null
  # With a customer key, reuse data keys for 5 minutes to cut KMS calls.
  kms_data_key_reuse_period_seconds = var.kms_key_arn == null ? null : 300
}

resource "aws_sqs_queue" "dlq" {
  name                              = var.dlq.name
  message_retention_seconds         = var.dlq.message_retention_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  max_message_size                  = var.max_message_size
  sqs_managed_sse_enabled           = local.sqs_managed_sse_enabled
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_period_seconds
  tags                              = var.tags
}

resource "aws_sqs_queue" "this" {
  name                              = var.name
  visibility_timeout_seconds        = var.visibility_timeout_seconds
  receive_wait_time_seconds         = var.receive_wait_time_seconds
  message_retention_seconds         = var.message_retention_seconds
  max_message_size                  = var.max_message_size
  sqs_managed_sse_enabled           = local.sqs_managed_sse_enabled
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_data_key_reuse_period_seconds

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.dlq.max_receive_count
  })

  tags = var.tags
}

# Only this queue may dead-letter into the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

data "aws_iam_policy_document" "queue" {
  count = length(var.sender_rule_arns) > 0 ? 1 : 0

  statement {
    sid       = "AllowOnlyTheRoutingRules"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = var.sender_rule_arns
    }
  }
}

resource "aws_sqs_queue_policy" "this" {
  count = length(var.sender_rule_arns) > 0 ? 1 : 0

  queue_url = aws_sqs_queue.this.id
  policy    = data.aws_iam_policy_document.queue[0].json
}
