# Operational alarms, all to the <prefix>-alarms topic:
#   - any message in any DLQ (the three stage DLQs and the three rule-target DLQs);
#   - the oldest message of a stage queue older than a threshold;
#   - messages waiting with no running task (in modules/worker_service, next
#     to the wake-up alarm that shares its metric math).

locals {
  # Every dead-letter queue, by a stable key: stage DLQs and rule-target DLQs.
  all_dlqs = merge(
    { for stage, q in module.stage_queue : "stage-${stage}" => q.dlq_name },
    { for rule, q in aws_sqs_queue.rule_target_dlq : "rule-${rule}" => q.name },
  )
}

# Alarm notifications carry alarm names, metric values and thresholds, never
# order or customer data. CloudWatch cannot publish to a topic encrypted with
# the AWS-managed alias/aws/sns key (its key policy cannot grant
# cloudwatch.amazonaws.com), so this topic is encrypted only when a
# customer-managed key is configured (var.kms), whose policy grants CloudWatch.
#tfsec:ignore:aws-sns-enable-topic-encryption Alarm metadata only; alias/aws/sns would silently drop CloudWatch alarm notifications. Encrypted with the customer key when var.kms sets one.
resource "aws_sns_topic" "alarms" {
  name              = "${var.prefix}-alarms"
  kms_master_key_id = local.kms_key_arn

  tags = local.tags
}

data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid       = "AccountManagesTopic"
    effect    = "Allow"
    actions   = ["sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:Publish", "sns:SetTopicAttributes", "sns:Subscribe"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsOfThisStackPublish"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${var.prefix}-*"]
    }
  }

  # The Prometheus workspace's alert manager (prometheus.tf), when this
  # module created it.
  dynamic "statement" {
    for_each = local.prometheus_create ? [1] : []
    content {
      sid       = "PrometheusAlertManagerPublishes"
      effect    = "Allow"
      actions   = ["sns:GetTopicAttributes", "sns:Publish"]
      resources = [aws_sns_topic.alarms.arn]

      principals {
        type        = "Service"
        identifiers = ["aps.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [local.prometheus_workspace_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "alarm" {
  for_each = { for s in var.alarm_subscriptions : s.name => s }

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  for_each = local.all_dlqs

  alarm_name          = "${var.prefix}-dlq-not-empty-${each.key}"
  alarm_description   = "Messages are waiting in dead-letter queue ${each.value}. Inspect them, fix the cause, then redrive (StartMessageMoveTask) or delete them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  for_each = module.stage_queue

  alarm_name          = "${var.prefix}-oldest-message-age-${each.key}"
  alarm_description   = "The oldest message in ${each.value.queue_name} is older than ${var.alarm_oldest_message_age_seconds}s: the ${each.key} stage is stuck, failing, or under-scaled."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.queue_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = var.alarm_oldest_message_age_periods
  datapoints_to_alarm = var.alarm_oldest_message_age_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_oldest_message_age_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  tags = local.tags
}
