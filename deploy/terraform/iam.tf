# The worker's task role policy: exactly the calls the worker makes, on
# exactly the resources created in main.tf. The role itself is in
# modules/worker_service (with the separate execution role). The Lambda
# functions' roles are in lambda.tf.

data "aws_iam_policy_document" "worker_task" {
  count = local.ecs ? 1 : 0

  statement {
    sid    = "ConsumeStageQueues"
    effect = "Allow"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage", # DeleteMessageBatch is authorised by DeleteMessage
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      # Destination of a DLQ redrive (StartMessageMoveTask back to the source
      # queue requires SendMessage on it).
      "sqs:SendMessage",
    ]
    resources = [for q in module.stage_queue : q.queue_arn]
  }

  statement {
    sid    = "DeadLetterAndRedriveStageDlqs"
    effect = "Allow"
    actions = [
      "sqs:ChangeMessageVisibility", # dlq list and the console hand peeked messages back
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ListMessageMoveTasks",
      "sqs:ReceiveMessage",
      "sqs:SendMessage", # the worker dead-letters poison messages itself
      "sqs:StartMessageMoveTask",
    ]
    resources = [for q in module.stage_queue : q.dlq_arn]
  }

  statement {
    sid    = "InspectAndRedriveRuleTargetDlqs"
    effect = "Allow"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ListMessageMoveTasks",
      "sqs:ReceiveMessage",
      "sqs:StartMessageMoveTask",
    ]
    resources = [for q in aws_sqs_queue.rule_target_dlq : q.arn]
  }

  # TransactWriteItems is authorised by the item actions it carries
  # (PutItem, UpdateItem, DeleteItem) on each item's table, TransactGetItems
  # by GetItem.
  statement {
    sid    = "ReadWriteTables"
    effect = "Allow"
    actions = [
      "dynamodb:BatchGetItem", # the intake's catalogue prices; a page of GET /v1/orders (current status of the listed orders)
      "dynamodb:DeleteItem",   # shards of a SKU whose shard count went down
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
    ]
    resources = [for t in aws_dynamodb_table.this : t.arn]
  }

  # The operator console's stock panel pages through the inventory table
  # (internal/ops/console); no other table is scanned.
  statement {
    sid       = "ScanInventoryForConsole"
    effect    = "Allow"
    actions   = ["dynamodb:Scan"]
    resources = [aws_dynamodb_table.this["inventory"].arn]
  }

  # Index ARNs by name (the topology's global secondary indexes), not /index/*:
  # by_customer (GET /v1/orders, `worker orders list --customer`); by_placed
  # (the sweep's walk, the console, `worker orders list --status`) and by_open
  # (the sweep) in the compact order format; by_status in the JSON format;
  # by_outcome, which the previous release reads.
  dynamic "statement" {
    for_each = length(flatten([for indexes in values(local.table_indexes) : keys(indexes)])) > 0 ? [1] : []
    content {
      sid       = "QueryTableIndexes"
      effect    = "Allow"
      actions   = ["dynamodb:Query"]
      resources = flatten([for role, indexes in local.table_indexes : [for name in keys(indexes) : "${aws_dynamodb_table.this[role].arn}/index/${name}"]])
    }
  }

  statement {
    sid       = "EmitPipelineEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.orders.arn]
  }

  statement {
    sid       = "NotifyCustomers"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }

  # The metrics sidecar remote-writes with the task role's credentials, to
  # the one workspace in use.
  dynamic "statement" {
    for_each = local.prometheus ? [1] : []
    content {
      sid       = "RemoteWriteMetrics"
      effect    = "Allow"
      actions   = ["aps:RemoteWrite"]
      resources = [local.prometheus_workspace_arn]
    }
  }

  dynamic "statement" {
    for_each = local.kms_key_arn == null ? [] : [local.kms_key_arn]
    content {
      sid       = "UseCustomerKeyForQueuesAndTopic"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

# Producers (storefronts, importers, the intake of another service) may put
# only the events that enter the pipeline: those the topology routes to the
# first stage, inventory (OrderPlaced, OrderCancelRequested), from the pipeline's
# source. The stage events (InventoryReserved, PaymentCaptured) then come
# only from the worker's role; the payment stage relies on that rather than
# reading every order before it charges. Attach this policy to every
# producer's role instead of a plain events:PutEvents grant.
data "aws_iam_policy_document" "producer" {
  statement {
    sid       = "PlaceAndCancelOrders"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.orders.arn]

    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.topology.event_source]
    }

    condition {
      test     = "StringEquals"
      variable = "events:detail-type"
      values   = flatten([for r in local.topology.rules : r.event_pattern["detail-type"] if r.target_stage == local.topology.queues[0].stage])
    }
  }
}

resource "aws_iam_policy" "producer" {
  name        = "${var.prefix}-producer"
  description = "Put OrderPlaced and OrderCancelRequested events on the ${var.prefix} bus, and nothing else."
  policy      = data.aws_iam_policy_document.producer.json

  tags = local.tags
}
