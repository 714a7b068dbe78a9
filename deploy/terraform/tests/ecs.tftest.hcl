# The module with compute = "ecs" (the default), planned and applied
# against a mocked aws provider (nothing leaves this machine): what is created follows deploy/topology.json, and the
# resources are wired to each other as the README describes. Every
# expectation about the topology is read from the file itself (var.topo),
# so adding a queue, rule, table or index keeps these runs passing.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  region             = "eu-west-1"
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  image_tag          = "v1.2.3"
  # Not a module input: the topology the assertions compare against.
  topo = jsondecode(file("../topology.json"))
}

run "stage_queues_follow_the_topology" {
  command = apply

  assert {
    condition     = toset(keys(module.stage_queue)) == toset([for q in var.topo.queues : q.stage])
    error_message = "There must be one stage queue module per topology.json queue, keyed by stage."
  }
  assert {
    condition     = alltrue([for q in var.topo.queues : module.stage_queue[q.stage].queue_name == "cloudcommerce-${q.name}" && module.stage_queue[q.stage].dlq_name == "cloudcommerce-${q.dlq.name}"])
    error_message = "Each stage queue and its DLQ must be named <prefix>-<name> from topology.json."
  }
  assert {
    condition     = alltrue([for q in var.topo.queues : module.stage_queue[q.stage].visibility_timeout_seconds == q.visibility_timeout_seconds && module.stage_queue[q.stage].max_receive_count == q.dlq.max_receive_count])
    error_message = "With ECS the stage queues keep topology.json's visibility timeout and maxReceiveCount."
  }
}

run "every_rule_targets_its_stage_queue_with_retry_and_dlq" {
  command = apply

  assert {
    condition     = toset(keys(aws_cloudwatch_event_rule.this)) == toset([for r in var.topo.rules : r.name])
    error_message = "There must be one EventBridge rule per topology.json rule."
  }
  assert {
    condition = alltrue([for r in var.topo.rules :
      aws_cloudwatch_event_rule.this[r.name].name == "cloudcommerce-${r.name}" &&
      aws_cloudwatch_event_rule.this[r.name].event_bus_name == aws_cloudwatch_event_bus.orders.name &&
      jsondecode(aws_cloudwatch_event_rule.this[r.name].event_pattern) == r.event_pattern
    ])
    error_message = "Each rule must be on the module's bus with topology.json's event pattern."
  }
  assert {
    condition = alltrue([for r in var.topo.rules :
      aws_cloudwatch_event_target.this[r.name].target_id == "${r.target_stage}-queue" &&
      aws_cloudwatch_event_target.this[r.name].arn == module.stage_queue[r.target_stage].queue_arn &&
      aws_cloudwatch_event_target.this[r.name].retry_policy[0].maximum_event_age_in_seconds == r.retry_policy.maximum_event_age_seconds &&
      aws_cloudwatch_event_target.this[r.name].retry_policy[0].maximum_retry_attempts == r.retry_policy.maximum_retry_attempts &&
      aws_cloudwatch_event_target.this[r.name].dead_letter_config[0].arn == aws_sqs_queue.rule_target_dlq[r.name].arn
    ])
    error_message = "Each rule's target must be its stage queue, with the topology's retry policy and its own rule-target DLQ."
  }
  assert {
    condition     = alltrue([for r in var.topo.rules : aws_sqs_queue.rule_target_dlq[r.name].name == "cloudcommerce-${r.target_dlq}" && aws_sqs_queue.rule_target_dlq[r.name].message_retention_seconds == 1209600])
    error_message = "Each rule-target DLQ must be <prefix>-<target_dlq> and keep messages 14 days."
  }
  assert {
    condition     = alltrue([for r in var.topo.rules : jsondecode(aws_sqs_queue_redrive_allow_policy.rule_target_dlq[r.name].redrive_allow_policy).redrivePermission == "denyAll"])
    error_message = "No SQS queue may use a rule-target DLQ as its dead-letter queue."
  }
}

run "tables_and_indexes_follow_the_topology_with_pitr_and_encryption" {
  command = apply

  assert {
    condition     = toset(keys(aws_dynamodb_table.this)) == toset([for t in var.topo.tables : t.role])
    error_message = "There must be one DynamoDB table per topology.json table, keyed by role."
  }
  assert {
    condition = alltrue([for t in var.topo.tables :
      aws_dynamodb_table.this[t.role].name == "cloudcommerce-${t.name}" &&
      aws_dynamodb_table.this[t.role].hash_key == t.hash_key.name &&
      aws_dynamodb_table.this[t.role].range_key == try(t.range_key.name, null) &&
      aws_dynamodb_table.this[t.role].billing_mode == "PAY_PER_REQUEST"
    ])
    error_message = "Each table must have topology.json's name and keys, on demand."
  }
  assert {
    condition = alltrue([for t in var.topo.tables :
      toset([for g in aws_dynamodb_table.this[t.role].global_secondary_index : g.name]) == toset([for g in try(t.global_secondary_indexes, []) : g.name])
    ])
    error_message = "Each table must have exactly topology.json's global secondary indexes."
  }
  assert {
    condition = alltrue(flatten([for t in var.topo.tables : [for g in try(t.global_secondary_indexes, []) :
      one([for i in aws_dynamodb_table.this[t.role].global_secondary_index : i if i.name == g.name && i.hash_key == g.hash_key.name && i.range_key == try(g.range_key.name, null) && i.projection_type == try(g.projection.type, "ALL")]) != null
    ]]))
    error_message = "Each index must have topology.json's keys and projection."
  }
  assert {
    condition = alltrue([for t in var.topo.tables :
      toset([for a in aws_dynamodb_table.this[t.role].attribute : a.name]) == toset(distinct(concat([t.hash_key.name], try([t.range_key.name], []), flatten([for g in try(t.global_secondary_indexes, []) : concat([g.hash_key.name], try([g.range_key.name], []))]))))
    ])
    error_message = "Each table must declare exactly the key attributes of the table and its indexes."
  }
  assert {
    condition     = alltrue([for t in aws_dynamodb_table.this : t.point_in_time_recovery[0].enabled && t.server_side_encryption[0].enabled && t.deletion_protection_enabled])
    error_message = "Every table must have point-in-time recovery, encryption at rest and deletion protection."
  }
  assert {
    condition     = alltrue([for t in var.topo.tables : try(t.ttl_attribute, null) == null ? length(aws_dynamodb_table.this[t.role].ttl) == 0 : aws_dynamodb_table.this[t.role].ttl[0].attribute_name == t.ttl_attribute])
    error_message = "A table has TTL exactly when topology.json names its ttl_attribute."
  }
}

run "every_dlq_has_an_alarm_and_every_queue_an_age_alarm" {
  command = apply

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dlq_not_empty) == length(var.topo.queues) + length(var.topo.rules)
    error_message = "There must be one DLQ alarm per stage DLQ and per rule-target DLQ."
  }
  assert {
    condition = alltrue(concat(
      [for q in var.topo.queues : aws_cloudwatch_metric_alarm.dlq_not_empty["stage-${q.stage}"].dimensions.QueueName == "cloudcommerce-${q.dlq.name}"],
      [for r in var.topo.rules : aws_cloudwatch_metric_alarm.dlq_not_empty["rule-${r.name}"].dimensions.QueueName == "cloudcommerce-${r.target_dlq}"],
    ))
    error_message = "Each DLQ alarm must watch its own DLQ."
  }
  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.dlq_not_empty : a.metric_name == "ApproximateNumberOfMessagesVisible" && a.threshold == 0 && a.comparison_operator == "GreaterThanThreshold" && a.alarm_actions == toset([aws_sns_topic.alarms.arn])])
    error_message = "A DLQ alarm must fire on the first visible message and notify the alarms topic."
  }
  assert {
    condition     = alltrue([for q in var.topo.queues : aws_cloudwatch_metric_alarm.oldest_message_age[q.stage].dimensions.QueueName == "cloudcommerce-${q.name}" && aws_cloudwatch_metric_alarm.oldest_message_age[q.stage].threshold == 900])
    error_message = "Each stage queue must have an oldest-message-age alarm at alarm_oldest_message_age_seconds."
  }
}

run "worker_environment_names_this_deployment" {
  command = apply

  variables {
    stage_concurrency       = { payment = 4 }
    handler_timeout_seconds = 12
    log_level               = "debug"
  }

  assert {
    condition     = output.compute == "ecs" && length(module.worker_service) == 1 && length(module.lambda_stage) == 0
    error_message = "compute = \"ecs\" creates the worker service and no function."
  }
  assert {
    condition = (output.worker_environment.CLOUDCOMMERCE_PREFIX == "cloudcommerce" && output.worker_environment.AWS_REGION == "eu-west-1" &&
      output.worker_environment.CLOUDCOMMERCE_PAYMENT_CONCURRENCY == "4" && output.worker_environment.CLOUDCOMMERCE_INVENTORY_CONCURRENCY == "16" &&
      output.worker_environment.CLOUDCOMMERCE_HANDLER_TIMEOUT == "12s" && output.worker_environment.CLOUDCOMMERCE_LOG_LEVEL == "debug" &&
      output.worker_environment.CLOUDCOMMERCE_PAYMENT_GATEWAY == "sandbox" && output.worker_environment.CLOUDCOMMERCE_SHUTDOWN_TIMEOUT == "25s" &&
    output.worker_environment.CLOUDCOMMERCE_TOPIC_ARN == aws_sns_topic.notifications.arn)
    error_message = "The worker's environment must carry the module's settings and the topic ARN."
  }
  assert {
    condition     = !contains(keys(output.worker_environment), "CLOUDCOMMERCE_STRIPE_SECRET_KEY") && !contains(keys(output.worker_environment), "CLOUDCOMMERCE_INTAKE_ADDR")
    error_message = "No secret in the plain environment; no intake address unless intake is enabled."
  }
  assert {
    condition     = aws_ecr_repository.worker[0].image_tag_mutability == "IMMUTABLE" && aws_ecr_repository.worker[0].image_scanning_configuration[0].scan_on_push
    error_message = "The worker's ECR repository must have immutable tags and scan on push."
  }
}

run "stripe_secret_selects_the_gateway" {
  command = apply

  variables {
    stripe_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stripe-AbCdEf"
  }

  assert {
    condition     = output.worker_environment.CLOUDCOMMERCE_PAYMENT_GATEWAY == "stripe" && !contains(keys(output.worker_environment), "CLOUDCOMMERCE_STRIPE_SECRET_KEY")
    error_message = "A Stripe secret selects the stripe gateway and stays out of the plain environment."
  }
}

run "prometheus_workspace_rules_and_alert_manager" {
  command = apply

  assert {
    condition     = length(aws_prometheus_workspace.this) == 1 && aws_prometheus_workspace.this[0].alias == "cloudcommerce"
    error_message = "The module creates a <prefix> Prometheus workspace by default."
  }
  assert {
    condition     = toset(keys(aws_prometheus_rule_group_namespace.this)) == fileset("../prometheus/rules", "*.yml")
    error_message = "Every rule file of deploy/prometheus/rules must be a rule-groups namespace."
  }
  assert {
    condition     = alltrue([for f, ns in aws_prometheus_rule_group_namespace.this : ns.data == file("../prometheus/rules/${f}") && ns.name == "cloudcommerce-${trimsuffix(f, ".yml")}" && ns.workspace_id == aws_prometheus_workspace.this[0].id])
    error_message = "Each namespace must hold its rule file unchanged, in the created workspace."
  }
  assert {
    condition = alltrue([for r in yamldecode(yamldecode(aws_prometheus_alert_manager_definition.this[0].definition).alertmanager_config).receivers :
    r.sns_configs[0].topic_arn == aws_sns_topic.alarms.arn && r.sns_configs[0].sigv4.region == var.region])
    error_message = "Every alert manager receiver must publish to the alarms topic, signed for the region."
  }
  assert {
    condition     = yamldecode(yamldecode(aws_prometheus_alert_manager_definition.this[0].definition).alertmanager_config).route.receiver == "alarms-topic"
    error_message = "The alert manager's route must end at the alarms topic receiver."
  }
  assert {
    condition     = output.prometheus_query_url == aws_prometheus_workspace.this[0].prometheus_endpoint
    error_message = "The query URL output is the workspace's endpoint."
  }
}

run "prometheus_existing_workspace" {
  command = apply

  variables {
    prometheus = { workspace_id = "ws-12345678-abcd-1234-abcd-123456789012" }
  }

  assert {
    condition     = length(aws_prometheus_workspace.this) == 0 && length(aws_prometheus_alert_manager_definition.this) == 0
    error_message = "An existing workspace is used as is: no new workspace, no alert manager definition."
  }
  assert {
    condition     = alltrue([for ns in aws_prometheus_rule_group_namespace.this : ns.workspace_id == "ws-12345678-abcd-1234-abcd-123456789012"])
    error_message = "The rule namespaces go to the given workspace."
  }
}

run "prometheus_off" {
  command = apply

  variables {
    prometheus = { enabled = false }
  }

  assert {
    condition     = length(aws_prometheus_workspace.this) == 0 && length(aws_prometheus_rule_group_namespace.this) == 0 && output.prometheus_workspace_id == null
    error_message = "prometheus.enabled = false removes every Prometheus resource."
  }
}

run "customer_managed_key_encrypts_everything" {
  command = apply

  variables {
    kms = { create_key = true }
  }

  assert {
    condition     = aws_kms_key.this[0].enable_key_rotation && aws_kms_alias.this[0].name == "alias/cloudcommerce"
    error_message = "create_key makes one rotating key with a <prefix> alias."
  }
  assert {
    condition = (alltrue([for t in aws_dynamodb_table.this : t.server_side_encryption[0].kms_key_arn == aws_kms_key.this[0].arn]) &&
      aws_sns_topic.notifications.kms_master_key_id == aws_kms_key.this[0].arn && aws_sns_topic.alarms.kms_master_key_id == aws_kms_key.this[0].arn &&
      alltrue([for q in aws_sqs_queue.rule_target_dlq : q.kms_master_key_id == aws_kms_key.this[0].arn]) &&
    aws_ecr_repository.worker[0].encryption_configuration[0].encryption_type == "KMS" && output.kms_key_arn == aws_kms_key.this[0].arn)
    error_message = "The customer key must encrypt tables, topics, rule-target DLQs and ECR."
  }
}

run "aws_managed_encryption_by_default" {
  command = apply

  assert {
    condition = (alltrue([for q in aws_sqs_queue.rule_target_dlq : q.sqs_managed_sse_enabled]) &&
      aws_sns_topic.notifications.kms_master_key_id == "alias/aws/sns" && output.kms_key_arn == null &&
    aws_ecr_repository.worker[0].encryption_configuration[0].encryption_type == "AES256")
    error_message = "Without var.kms the queues use SSE-SQS, the topic alias/aws/sns and ECR AES256."
  }
}

run "notification_subscriptions_filter_on_event_and_channel" {
  command = apply

  variables {
    notification_subscriptions = [
      { name = "ops-mail", protocol = "email", endpoint = "ops@example.com" },
      { name = "sms", protocol = "sms", endpoint = "+447700900123", events = [var.topo.topic.events[0]] },
    ]
  }

  assert {
    condition     = jsondecode(aws_sns_topic_subscription.notification["ops-mail"].filter_policy) == { event = var.topo.topic.events, channel = ["email"] }
    error_message = "Without events a subscription receives every topology.json topic event on its own channel."
  }
  assert {
    condition     = jsondecode(aws_sns_topic_subscription.notification["sms"].filter_policy) == { event = [var.topo.topic.events[0]], channel = ["sms"] }
    error_message = "A subscription's events narrow its filter policy."
  }
}
