# One CloudCommerce stage on AWS Lambda: the function (cmd/lambda's bootstrap
# on provided.al2023, arm64), its log group, the SQS event source mapping
# with partial batch responses, and its Errors / Throttles alarms. The role
# is in iam.tf.

locals {
  alarms = {
    # The function never returns a function error (that would retry the
    # whole batch), so any Errors datapoint is a failed cold start
    # (configuration, queue lookup, Stripe secret), a crash or a timeout.
    errors = {
      metric      = "Errors"
      description = "Function ${var.function_name} failed (init error, crash or timeout). Its records come back after the queue's visibility timeout and dead-letter after maxReceiveCount; see its log group."
      periods     = 1
      datapoints  = 1
    }
    # maximum_concurrency keeps the mapping itself from throttling, so
    # throttles mean the account's or the function's concurrency is
    # exhausted: records wait a visibility timeout and use up receives.
    throttles = {
      metric      = "Throttles"
      description = "Function ${var.function_name} is being throttled for several minutes: the account's concurrency is exhausted. Records are delayed and may dead-letter; raise the account limit or lower maximum_concurrency elsewhere."
      periods     = 5
      datapoints  = 3
    }
  }
}

# Created before the function, so Lambda never creates an unmanaged group
# without retention.
resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  function_name = var.function_name
  description   = "CloudCommerce stage handler (cmd/lambda) for ${var.queue.arn}."
  role          = aws_iam_role.this.arn

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["arm64"]
  memory_size      = var.memory_size
  timeout          = var.timeout_seconds
  # Encrypts the environment at rest (AWS-managed key when null).
  kms_key_arn = var.kms_key_arn

  environment {
    variables = var.environment
  }

  # The function already writes JSON lines; Lambda's JSON format would wrap them.
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  # No VPC: the function reaches only AWS APIs (and Stripe) over their
  # public endpoints, like any Lambda function outside a VPC. No reserved
  # concurrency: it would have to stay above maximum_concurrency.

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.logs, aws_iam_role_policy.pipeline]

  tags = var.tags
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = var.queue.arn
  function_name                      = aws_lambda_function.this.arn
  enabled                            = true
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.maximum_batching_window_in_seconds

  # Without it one failed record redelivers its whole batch.
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }

  tags = var.tags

  # Lambda validates the mapping against the role's SQS permissions.
  depends_on = [aws_iam_role_policy.pipeline]

  lifecycle {
    precondition {
      condition     = var.queue.visibility_timeout_seconds >= 6 * var.timeout_seconds
      error_message = "The stage queue's visibility timeout must be at least six times the function timeout (AWS's guidance for SQS event source mappings)."
    }
    precondition {
      condition     = var.queue.max_receive_count >= 5
      error_message = "The stage queue's maxReceiveCount must be at least 5, so that throttled invocations do not dead-letter good messages."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.function_name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = aws_lambda_function.this.function_name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
  tags                = var.tags
}
