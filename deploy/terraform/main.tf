# CloudCommerce on AWS: the resources of deploy/topology.json (the same file
# the worker's provisioner reads for LocalStack and the embedded mode) and the
# compute that consumes them: the ECS Fargate worker with its scaling
# (compute = "ecs", here) or one Lambda function per stage (compute =
# "lambda", lambda.tf).
#
# Every queue, rule, table and the topic comes from a for_each over the decoded
# topology: adding a stage or a table is an edit to topology.json, not here.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  # Tags for every taggable resource, here and in the local modules: a child
  # module does not rely on its caller's provider default_tags.
  tags = merge(var.tags, {
    Application = "cloudcommerce"
    Prefix      = var.prefix
  })

  topology = jsondecode(file("${path.module}/../topology.json"))

  # Keyed views of the topology; each for_each below iterates one of them.
  queues = { for q in local.topology.queues : q.stage => q }
  rules  = { for r in local.topology.rules : r.name => r }
  tables = { for t in local.topology.tables : t.role => t }
  topic  = local.topology.topic

  # Which rules deliver to each stage queue (its queue policy allows exactly these).
  rules_by_stage = { for stage in keys(local.queues) : stage => [for name, r in local.rules : name if r.target_stage == stage] }

  # DynamoDB attribute definitions: only the key attributes of the table and
  # of its indexes, each once.
  table_attributes = {
    for role, t in local.tables : role => distinct(concat(
      [t.hash_key],
      try([t.range_key], []),
      flatten([for g in try(t.global_secondary_indexes, []) : concat([g.hash_key], try([g.range_key], []))]),
    ))
  }
  table_indexes = { for role, t in local.tables : role => { for g in try(t.global_secondary_indexes, []) : g.name => g } }

  # EventBridge keeps events that could not be delivered for this long in the
  # rule-target DLQs (the SQS maximum).
  rule_target_dlq_retention_seconds = 1209600

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # null means AWS-managed encryption everywhere (see var.kms).
  kms_key_arn = var.kms.create_key ? aws_kms_key.this[0].arn : var.kms.key_arn

  # The compute target. Exactly one of the two is created: count = 1 or 0 on
  # the ECS-only resources, for_each over local.lambda_stages (empty for
  # "ecs") on the Lambda ones.
  ecs = var.compute == "ecs"

  # Setting stripe_secret_arn alone selects the stripe gateway; an explicit
  # "sandbox" next to a secret is refused by the variable's validation.
  payment_gateway = coalesce(var.payment_gateway, var.stripe_secret_arn == null ? "sandbox" : "stripe")

  # The stage queues' visibility timeout. topology.json's 30 s is sized for
  # the worker, which extends a slow message's visibility itself. An SQS
  # event source mapping cannot: a batch stays in flight while Lambda
  # invokes (and, when throttled, retries invoking) the function, so AWS asks
  # for at least six times the function timeout. The function reports
  # transient failures with its own back-off (ChangeMessageVisibility), so
  # only a crashed or timed-out invocation waits this long for redelivery.
  stage_visibility_timeout_seconds = {
    for stage, q in local.queues : stage => var.compute == "lambda" ? max(q.visibility_timeout_seconds, 6 * var.lambda.timeout_seconds) : q.visibility_timeout_seconds
  }
}

################################################################################
# Optional customer-managed KMS key
################################################################################

data "aws_iam_policy_document" "kms" {
  count = var.kms.create_key ? 1 : 0

  statement {
    sid    = "AccountAdministersAndDelegatesToIam"
    effect = "Allow"
    actions = [
      "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
      "kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
      "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags",
      "kms:PutKeyPolicy", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:RetireGrant", "kms:RevokeGrant",
      "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
    ]
    # iam-wildcard-justified: in a key policy "*" means "this key"; AWS
    # requires it. The principal is the account, so IAM policies (the task
    # role's kms statement) decide who actually uses the key.
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid     = "EventBridgeDeliversToEncryptedQueues"
    effect  = "Allow"
    actions = ["kms:Decrypt", "kms:GenerateDataKey"]
    # iam-wildcard-justified: key policy, "*" is this key.
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid     = "CloudWatchAlarmsPublishToEncryptedTopic"
    effect  = "Allow"
    actions = ["kms:Decrypt", "kms:GenerateDataKey"]
    # iam-wildcard-justified: key policy, "*" is this key.
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  dynamic "statement" {
    for_each = local.prometheus_create ? [1] : []
    content {
      sid     = "PrometheusAlertManagerPublishesToEncryptedTopic"
      effect  = "Allow"
      actions = ["kms:Decrypt", "kms:GenerateDataKey"]
      # iam-wildcard-justified: key policy, "*" is this key.
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["aps.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsComputeLogs"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
    resources = ["*"] # iam-wildcard-justified: key policy, "*" is this key.

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    # Only the log groups of the chosen compute: the worker's, or the
    # functions' /aws/lambda/<prefix>-<stage>.
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [local.ecs ?
        "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/ecs/${var.prefix}/*" :
        "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/lambda/${var.prefix}-*"
      ]
    }
  }
}

resource "aws_kms_key" "this" {
  count = var.kms.create_key ? 1 : 0

  description             = "CloudCommerce ${var.prefix}: SQS queues, SNS topics, DynamoDB tables, worker logs and ECR images."
  enable_key_rotation     = true
  deletion_window_in_days = var.kms.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.kms[0].json

  tags = local.tags
}

resource "aws_kms_alias" "this" {
  count = var.kms.create_key ? 1 : 0

  name          = "alias/${var.prefix}"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# EventBridge: the bus and one rule per topology rule, each targeting its
# stage queue with a retry policy and its own dead-letter queue
################################################################################

resource "aws_cloudwatch_event_bus" "orders" {
  name = var.prefix

  tags = local.tags

  # The module takes its region from the aws provider it is called with (it
  # has no provider configuration of its own); var.region spells ARNs and
  # the worker's AWS_REGION, so the two must agree before anything is made.
  lifecycle {
    precondition {
      condition     = data.aws_region.current.name == var.region
      error_message = "var.region must be the region of the aws provider this module is called with."
    }
  }
}

resource "aws_cloudwatch_event_rule" "this" {
  for_each = local.rules

  name           = "${var.prefix}-${each.key}"
  description    = each.value.description
  event_bus_name = aws_cloudwatch_event_bus.orders.name
  event_pattern  = jsonencode(each.value.event_pattern)
  state          = "ENABLED"

  tags = local.tags
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = local.rules

  rule           = aws_cloudwatch_event_rule.this[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.orders.name
  target_id      = "${each.value.target_stage}-queue"
  # The whole event envelope is the SQS message body (no input transformer).
  arn = module.stage_queue[each.value.target_stage].queue_arn

  retry_policy {
    maximum_event_age_in_seconds = each.value.retry_policy.maximum_event_age_seconds
    maximum_retry_attempts       = each.value.retry_policy.maximum_retry_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.rule_target_dlq[each.key].arn
  }

  # The queue policy must exist before EventBridge tries to deliver.
  depends_on = [module.stage_queue, aws_sqs_queue_policy.rule_target_dlq]
}

# Where EventBridge puts events it could not deliver to a stage queue after the
# rule's retry policy (policy denied, queue deleted, KMS refused...).
resource "aws_sqs_queue" "rule_target_dlq" {
  for_each = local.rules

  name                              = "${var.prefix}-${each.value.target_dlq}"
  message_retention_seconds         = local.rule_target_dlq_retention_seconds
  sqs_managed_sse_enabled           = local.kms_key_arn == null ? true : null
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = local.kms_key_arn == null ? null : 300

  tags = local.tags
}

# Only EventBridge writes here: no SQS queue may use it as its DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "rule_target_dlq" {
  for_each = local.rules

  queue_url            = aws_sqs_queue.rule_target_dlq[each.key].id
  redrive_allow_policy = jsonencode({ redrivePermission = "denyAll" })
}

data "aws_iam_policy_document" "rule_target_dlq" {
  for_each = local.rules

  statement {
    sid       = "AllowOnlyItsRule"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.rule_target_dlq[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.this[each.key].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "rule_target_dlq" {
  for_each = local.rules

  queue_url = aws_sqs_queue.rule_target_dlq[each.key].id
  policy    = data.aws_iam_policy_document.rule_target_dlq[each.key].json
}

################################################################################
# The stage queues, each with its DLQ, redrive and a policy for its rules
################################################################################

module "stage_queue" {
  source   = "./modules/queue"
  for_each = local.queues

  name                       = "${var.prefix}-${each.value.name}"
  visibility_timeout_seconds = local.stage_visibility_timeout_seconds[each.key]
  receive_wait_time_seconds  = each.value.receive_wait_time_seconds
  message_retention_seconds  = each.value.message_retention_seconds
  max_message_size           = each.value.max_message_size_bytes
  dlq = {
    name                      = "${var.prefix}-${each.value.dlq.name}"
    max_receive_count         = each.value.dlq.max_receive_count
    message_retention_seconds = each.value.dlq.message_retention_seconds
  }
  kms_key_arn      = local.kms_key_arn
  sender_rule_arns = [for name in local.rules_by_stage[each.key] : aws_cloudwatch_event_rule.this[name].arn]

  tags = local.tags
}

################################################################################
# DynamoDB: on-demand, point-in-time recovery, encrypted with KMS
################################################################################

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name                        = "${var.prefix}-${each.value.name}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key.name
  range_key                   = try(each.value.range_key.name, null)
  deletion_protection_enabled = var.deletion_protection

  dynamic "attribute" {
    for_each = local.table_attributes[each.key]
    content {
      name = attribute.value.name
      type = attribute.value.type
    }
  }

  dynamic "global_secondary_index" {
    for_each = local.table_indexes[each.key]
    content {
      name               = global_secondary_index.key
      hash_key           = global_secondary_index.value.hash_key.name
      range_key          = try(global_secondary_index.value.range_key.name, null)
      projection_type    = try(global_secondary_index.value.projection.type, "ALL")
      non_key_attributes = try(global_secondary_index.value.projection.non_key_attributes, null)
    }
  }

  dynamic "ttl" {
    for_each = try(each.value.ttl_attribute, null) == null ? [] : [each.value.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  # KMS encryption at rest: the AWS-managed aws/dynamodb key when
  # kms_key_arn is null, else the customer-managed key.
  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }

  tags = local.tags
}

################################################################################
# SNS: customer notifications, filtered per subscription on the event and
# channel message attributes
################################################################################

#tfsec:ignore:aws-sns-topic-encryption-use-cmk Encrypted with the AWS-managed alias/aws/sns key by default, which the in-account worker may use; var.kms switches to a customer-managed key.
resource "aws_sns_topic" "notifications" {
  name              = "${var.prefix}-${local.topic.name}"
  kms_master_key_id = local.kms_key_arn == null ? "alias/aws/sns" : local.kms_key_arn

  tags = local.tags
}

resource "aws_sns_topic_subscription" "notification" {
  for_each = { for s in var.notification_subscriptions : s.name => s }

  topic_arn           = aws_sns_topic.notifications.arn
  protocol            = each.value.protocol
  endpoint            = each.value.endpoint
  filter_policy_scope = "MessageAttributes"
  filter_policy = jsonencode({
    event   = each.value.events == null ? local.topic.events : each.value.events
    channel = [each.value.protocol]
  })

  lifecycle {
    precondition {
      condition     = contains(local.topic.channels, each.value.protocol)
      error_message = "notification_subscriptions protocol must be one of the topic channels in deploy/topology.json."
    }
  }
}

################################################################################
# ECR repository of the worker image (compute = "ecs" only)
################################################################################

resource "aws_ecr_repository" "worker" {
  count = local.ecs ? 1 : 0

  name                 = "${var.prefix}/worker"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = local.kms_key_arn == null ? "AES256" : "KMS"
    kms_key         = local.kms_key_arn
  }

  tags = local.tags
}

resource "aws_ecr_lifecycle_policy" "worker" {
  count = local.ecs ? 1 : 0

  repository = aws_ecr_repository.worker[0].name
  # A copy of the metrics collector's image (tagged adot-*, for subnets
  # without a NAT gateway; README.md, "Prometheus") matches the first rule,
  # so worker releases never expire it.
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 3 most recent metrics collector images (adot-*)"
      selection = {
        tagStatus     = "tagged"
        tagPrefixList = ["adot-"]
        countType     = "imageCountMoreThan"
        countNumber   = 3
      }
      action = { type = "expire" }
      }, {
      rulePriority = 2
      description  = "Keep the ${var.ecr_keep_images} most recent images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}

################################################################################
# The worker service (compute = "ecs" only)
################################################################################

module "worker_service" {
  source = "./modules/worker_service"
  count  = local.ecs ? 1 : 0

  name                 = var.prefix
  region               = var.region
  vpc_id               = var.vpc_id
  subnet_ids           = var.private_subnet_ids
  image                = "${aws_ecr_repository.worker[0].repository_url}:${var.image_tag}"
  image_repository_arn = aws_ecr_repository.worker[0].arn
  cpu                  = var.task_cpu
  memory               = var.task_memory
  cpu_architecture     = var.cpu_architecture
  container_user       = var.container_user
  use_fargate_spot     = var.use_fargate_spot

  environment = {
    AWS_REGION                          = var.region
    CLOUDCOMMERCE_PREFIX                = var.prefix
    CLOUDCOMMERCE_INVENTORY_CONCURRENCY = tostring(var.stage_concurrency.inventory)
    CLOUDCOMMERCE_PAYMENT_CONCURRENCY   = tostring(var.stage_concurrency.payment)
    CLOUDCOMMERCE_SHIPPING_CONCURRENCY  = tostring(var.stage_concurrency.shipping)
    CLOUDCOMMERCE_HANDLER_TIMEOUT       = "${var.handler_timeout_seconds}s"
    CLOUDCOMMERCE_LOG_LEVEL             = var.log_level
    CLOUDCOMMERCE_PAYMENT_GATEWAY       = local.payment_gateway
    # The topic by ARN: without it the worker looks the topic up by name
    # with sns:CreateTopic, which the task role deliberately lacks.
    CLOUDCOMMERCE_TOPIC_ARN = aws_sns_topic.notifications.arn
  }
  # Secrets Manager ARNs only: ECS resolves them at task start, so the values
  # never enter Terraform state or the task definition.
  secrets = merge(
    var.api_key_secret_arn == null ? {} : { CLOUDCOMMERCE_API_KEY = var.api_key_secret_arn },
    var.stripe_secret_arn == null ? {} : { CLOUDCOMMERCE_STRIPE_SECRET_KEY = var.stripe_secret_arn },
  )
  secrets_kms_key_arn = var.secrets_kms_key_arn

  shutdown_timeout_seconds    = var.shutdown_timeout_seconds
  stop_timeout_margin_seconds = var.stop_timeout_margin_seconds
  ops_ingress_cidr_blocks     = var.ops_ingress_cidr_blocks
  intake = {
    enabled             = var.intake.enabled
    port                = var.intake.port
    ingress_cidr_blocks = var.intake.ingress_cidr_blocks
  }

  log_retention_days    = var.log_retention_days
  kms_key_arn           = local.kms_key_arn
  task_role_policy_json = data.aws_iam_policy_document.worker_task[0].json

  min_tasks                  = var.min_tasks
  max_tasks                  = var.max_tasks
  target_backlog_per_task    = var.target_backlog_per_task
  scale_out_cooldown_seconds = var.scale_out_cooldown_seconds
  scale_in_cooldown_seconds  = var.scale_in_cooldown_seconds
  queue_names                = { for stage, q in module.stage_queue : stage => q.queue_name }

  metrics_collector = local.prometheus ? {
    image                   = var.prometheus.collector_image
    remote_write_url        = "${local.prometheus_endpoint}api/v1/remote_write"
    scrape_interval_seconds = var.prometheus.scrape_interval_seconds
  } : null

  alarm_topic_arn                     = aws_sns_topic.alarms.arn
  alarm_no_tasks_with_backlog_minutes = var.alarm_no_tasks_with_backlog_minutes

  tags = local.tags
}
