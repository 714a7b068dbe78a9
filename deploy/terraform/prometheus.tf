# Prometheus on ECS: the worker's /metrics, scraped by an AWS Distro for
# OpenTelemetry collector sidecar (modules/worker_service), lands in an
# Amazon Managed Service for Prometheus workspace. The alert rules are the
# same files Prometheus loads in compose (deploy/prometheus/rules, checked by
# test/observability), and the workspace's alert manager routes what fires to
# the alarms topic, next to the CloudWatch alarms.

locals {
  prometheus        = local.ecs && var.prometheus.enabled
  prometheus_create = local.prometheus && var.prometheus.workspace_id == null

  # The workspace in use: created here or given by ID (null when off).
  prometheus_workspace_id  = try(aws_prometheus_workspace.this[0].id, data.aws_prometheus_workspace.existing[0].workspace_id, null)
  prometheus_workspace_arn = try(aws_prometheus_workspace.this[0].arn, data.aws_prometheus_workspace.existing[0].arn, null)
  # The workspace's Prometheus-compatible endpoint, ending in "/".
  prometheus_endpoint = try(aws_prometheus_workspace.this[0].prometheus_endpoint, data.aws_prometheus_workspace.existing[0].prometheus_endpoint, null)

  prometheus_rules_dir  = "${path.module}/../prometheus/rules"
  prometheus_rule_files = local.prometheus ? fileset(local.prometheus_rules_dir, "*.yml") : toset([])
}

# Samples are encrypted at rest with an AWS-owned key; a customer-managed key
# (var.kms) is not used here because a workspace's key cannot be changed
# after creation.
resource "aws_prometheus_workspace" "this" {
  count = local.prometheus_create ? 1 : 0

  alias = var.prefix

  tags = local.tags
}

data "aws_prometheus_workspace" "existing" {
  count = local.prometheus && !local.prometheus_create ? 1 : 0

  workspace_id = var.prometheus.workspace_id
}

# One rule-groups namespace per rule file, with the file's content as is: the
# workspace accepts the Prometheus rule file format.
resource "aws_prometheus_rule_group_namespace" "this" {
  for_each = local.prometheus_rule_files

  name         = "${var.prefix}-${trimsuffix(each.key, ".yml")}"
  workspace_id = local.prometheus_workspace_id
  data         = file("${local.prometheus_rules_dir}/${each.key}")

  tags = local.tags
}

# Alerts go to the alarms topic (who is paged is var.alarm_subscriptions). An
# existing workspace keeps the alert manager definition its owner gave it.
resource "aws_prometheus_alert_manager_definition" "this" {
  count = local.prometheus_create ? 1 : 0

  workspace_id = aws_prometheus_workspace.this[0].id
  definition = templatefile("${path.module}/alertmanager.yaml.tftpl", {
    topic_arn = aws_sns_topic.alarms.arn
    region    = var.region
  })
}
