# The Lambda compute target (compute = "lambda"): one function per stage
# queue, all from the same zip (cmd/lambda), each pinned to its stage with
# CLOUDCOMMERCE_STAGE and fed by an SQS event source mapping with partial
# batch responses. The function, its role, log group, mapping and alarms are
# in modules/lambda_stage; what each stage's role may call is decided here,
# next to the resources it names. See docs/lambda.md.

locals {
  # The stages that get a function: all of topology.json's, or none with
  # compute = "ecs".
  lambda_stages = var.compute == "lambda" ? local.queues : {}

  # What each stage's handlers call, by table role (docs/lambda.md, "Role per
  # stage"). This is the handlers' access pattern, the same knowledge as the
  # Go code's stage and role names (internal/pipeline, internal/wire), not a
  # second list of resources: every table, queue and stage still comes from
  # topology.json, and the precondition on data.aws_iam_policy_document.lambda_stage
  # refuses a stage or table role here that the topology does not have.
  #   tables:          item actions per table, with either payment gateway
  #                    (TransactWriteItems is authorised by its item actions).
  #   sandbox_tables:  the sandbox gateway's ledger; with Stripe the ledger
  #                    is Stripe's.
  #   payment_gateway: whether the stage charges or refunds, so gets the
  #                    gateway setting and, with Stripe, the secret.
  lambda_access = {
    inventory = {
      tables = {
        orders    = ["dynamodb:GetItem", "dynamodb:PutItem"]
        inventory = ["dynamodb:GetItem", "dynamodb:UpdateItem"] # reserve; release on cancel; read stock on a failed reservation
      }
      sandbox_tables  = { payments_ledger = ["dynamodb:GetItem", "dynamodb:PutItem"] } # refunds of cancelled, paid orders
      payment_gateway = true
    }
    payment = {
      tables = {
        orders    = ["dynamodb:GetItem", "dynamodb:PutItem"]
        inventory = ["dynamodb:UpdateItem"] # release on decline
      }
      sandbox_tables  = { payments_ledger = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"] }
      payment_gateway = true
    }
    shipping = {
      tables = {
        orders = ["dynamodb:GetItem", "dynamodb:PutItem"]
      }
      sandbox_tables  = {}
      payment_gateway = false
    }
  }

  # stage => table role => item actions, for the configured gateway.
  lambda_table_grants = {
    for stage in keys(local.lambda_stages) : stage => merge(
      try(local.lambda_access[stage].tables, {}),
      { for role, actions in try(local.lambda_access[stage].sandbox_tables, {}) : role => actions if local.payment_gateway == "sandbox" },
    )
  }

  # Stages that read the Stripe key (from Secrets Manager, at cold start).
  lambda_stripe_stages = toset([
    for stage in keys(local.lambda_stages) : stage
    if local.payment_gateway == "stripe" && try(local.lambda_access[stage].payment_gateway, false)
  ])

  # Records of a batch are handled concurrently, all at once; the function
  # accepts at most 1000.
  lambda_record_concurrency = min(var.lambda.batch_size, 1000)
}

# Each stage's role: exactly the calls its handlers make (docs/lambda.md), on
# exactly this stack's resources. Logging is granted by the module, on the
# function's own log group.
data "aws_iam_policy_document" "lambda_stage" {
  for_each = local.lambda_stages

  statement {
    sid    = "ConsumeStageQueue"
    effect = "Allow"
    actions = [
      "sqs:ChangeMessageVisibility", # back-off of transient failures
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl", # the function looks its queues up at cold start
      "sqs:ReceiveMessage",
    ]
    resources = [module.stage_queue[each.key].queue_arn]
  }

  statement {
    sid       = "DeadLetterPoisonMessages"
    effect    = "Allow"
    actions   = ["sqs:GetQueueUrl", "sqs:SendMessage"]
    resources = [module.stage_queue[each.key].dlq_arn]
  }

  # One statement per table the stage touches, with its item actions.
  dynamic "statement" {
    for_each = local.lambda_table_grants[each.key]
    content {
      effect    = "Allow"
      actions   = statement.value
      resources = [aws_dynamodb_table.this[statement.key].arn]
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
    actions   = ["sns:Publish"] # also authorises PublishBatch
    resources = [aws_sns_topic.notifications.arn]
  }

  dynamic "statement" {
    for_each = contains(local.lambda_stripe_stages, each.key) ? [var.stripe_secret_arn] : []
    content {
      sid       = "ReadStripeKey"
      effect    = "Allow"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = contains(local.lambda_stripe_stages, each.key) && var.secrets_kms_key_arn != null ? [var.secrets_kms_key_arn] : []
    content {
      sid       = "DecryptStripeKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }

  # Reading an SSE-KMS queue, sending to an SSE-KMS DLQ, publishing to the
  # encrypted topic, the tables and the function's environment.
  dynamic "statement" {
    for_each = local.kms_key_arn == null ? [] : [local.kms_key_arn]
    content {
      sid       = "UseCustomerKeyForQueuesAndTopic"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(local.lambda_access), each.key) && alltrue([for role in keys(local.lambda_table_grants[each.key]) : contains(keys(local.tables), role)])
      error_message = "local.lambda_access (lambda.tf) must name every stage of topology.json, and only table roles topology.json has."
    }
  }
}

module "lambda_stage" {
  source   = "./modules/lambda_stage"
  for_each = local.lambda_stages

  function_name   = "${var.prefix}-${each.key}"
  package_path    = var.lambda.package_path
  memory_size     = var.lambda.memory_size
  timeout_seconds = var.lambda.timeout_seconds
  kms_key_arn     = local.kms_key_arn

  # What the function reads (internal/config/lambda.go). Never the Stripe
  # key itself (the configuration and Terraform state would hold it), never
  # AWS_REGION (reserved; Lambda sets it).
  environment = merge(
    {
      CLOUDCOMMERCE_PREFIX             = var.prefix
      CLOUDCOMMERCE_STAGE              = each.key
      CLOUDCOMMERCE_TOPIC_ARN          = aws_sns_topic.notifications.arn
      CLOUDCOMMERCE_HANDLER_TIMEOUT    = "${var.handler_timeout_seconds}s"
      CLOUDCOMMERCE_LAMBDA_CONCURRENCY = tostring(local.lambda_record_concurrency)
      CLOUDCOMMERCE_LOG_LEVEL          = var.log_level
    },
    # A stage that never charges or refunds keeps the default gateway: with
    # "stripe" it would need the key, which its role may not read.
    try(local.lambda_access[each.key].payment_gateway, false) ? { CLOUDCOMMERCE_PAYMENT_GATEWAY = local.payment_gateway } : {},
    contains(local.lambda_stripe_stages, each.key) ? { CLOUDCOMMERCE_STRIPE_SECRET_ARN = var.stripe_secret_arn } : {},
  )
  role_policy_json = data.aws_iam_policy_document.lambda_stage[each.key].json

  queue = {
    arn                        = module.stage_queue[each.key].queue_arn
    visibility_timeout_seconds = module.stage_queue[each.key].visibility_timeout_seconds
    max_receive_count          = module.stage_queue[each.key].max_receive_count
  }
  batch_size                         = var.lambda.batch_size
  maximum_batching_window_in_seconds = var.lambda.maximum_batching_window_in_seconds
  maximum_concurrency                = var.lambda.maximum_concurrency

  log_retention_days = var.log_retention_days
  alarm_topic_arn    = aws_sns_topic.alarms.arn

  tags = local.tags
}
