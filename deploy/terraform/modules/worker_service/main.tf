# The CloudCommerce worker on ECS Fargate: cluster, log group, security
# group, task definition and service. IAM roles are in iam.tf, scaling and the
# scaling alarms in autoscaling.tf.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  container_name = "worker"
  account_id     = data.aws_caller_identity.current.account_id
  partition      = data.aws_partition.current.partition

  # ECS sends SIGTERM, waits stopTimeout, then SIGKILL. The worker drains for
  # shutdown_timeout_seconds; the margin covers flushing batched deletes and
  # events and the process exit, so a drain that uses its whole budget is
  # never killed half-way.
  stop_timeout_seconds = var.shutdown_timeout_seconds + var.stop_timeout_margin_seconds

  environment = merge(
    var.environment,
    {
      CLOUDCOMMERCE_OPS_ADDR         = ":${var.ops_port}"
      CLOUDCOMMERCE_SHUTDOWN_TIMEOUT = "${var.shutdown_timeout_seconds}s"
    },
    var.intake.enabled ? { CLOUDCOMMERCE_INTAKE_ADDR = ":${var.intake.port}" } : {},
  )

  port_mappings = concat(
    [{ name = "ops", containerPort = var.ops_port, protocol = "tcp" }],
    var.intake.enabled ? [{ name = "intake", containerPort = var.intake.port, protocol = "tcp" }] : [],
  )

  worker_container = {
    name      = local.container_name
    image     = var.image
    essential = true
    # The image's binary is /worker; naming the subcommand here keeps the task
    # independent of the image's default CMD.
    entryPoint = ["/worker"]
    command    = ["run"]

    # Non-root, and nothing on disk is writable: the worker keeps its state
    # in DynamoDB and SQS and writes only to stdout.
    user                   = var.container_user
    readonlyRootFilesystem = true
    linuxParameters = {
      capabilities = { drop = ["ALL"] }
    }

    stopTimeout = local.stop_timeout_seconds

    portMappings = local.port_mappings
    environment  = [for k, v in local.environment : { name = k, value = v }]
    secrets      = [for k, arn in var.secrets : { name = k, valueFrom = arn }]

    # `worker healthcheck` exits 0 when the worker on CLOUDCOMMERCE_OPS_ADDR
    # reports healthy; ECS replaces the task after `retries` failures.
    healthCheck = {
      command     = ["CMD", "/worker", "healthcheck"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 30
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = local.container_name
        # Never block the worker on a slow log pipeline; drop instead.
        mode            = "non-blocking"
        max-buffer-size = "25m"
      }
    }
  }

  # The metrics sidecar (var.metrics_collector): an ADOT collector that
  # scrapes the worker's ops port on 127.0.0.1 (the task's containers share
  # one network namespace) and remote-writes to Amazon Managed Service for
  # Prometheus. Not essential: if it stops, ECS restarts it and the worker
  # keeps handling orders; the CloudWatch alarms do not depend on it.
  collector_config = var.metrics_collector == null ? null : templatefile("${path.module}/collector.yaml.tftpl", {
    ops_port                = var.ops_port
    region                  = var.region
    remote_write_url        = var.metrics_collector.remote_write_url
    scrape_interval_seconds = var.metrics_collector.scrape_interval_seconds
    scrape_timeout_seconds  = min(10, var.metrics_collector.scrape_interval_seconds)
  })

  collector_containers = var.metrics_collector == null ? [] : [{
    name      = "metrics-collector"
    image     = var.metrics_collector.image
    essential = false
    restartPolicy = {
      enabled              = true
      restartAttemptPeriod = 60
    }

    # The image's own unprivileged user; nothing on disk is written (no
    # write-ahead log: a sample lost in a restart is re-scraped next time).
    user                   = "10001"
    readonlyRootFilesystem = true
    linuxParameters = {
      capabilities = { drop = ["ALL"] }
    }

    environment = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config }]

    healthCheck = {
      command     = ["CMD", "/healthcheck"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 15
    }

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "metrics-collector"
        mode                  = "non-blocking"
        max-buffer-size       = "4m"
      }
    }
  }]

  container_definitions = concat([local.worker_container], local.collector_containers)
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  # Container Insights publishes ECS/ContainerInsights RunningTaskCount, the
  # divisor of the backlog-per-task scaling metric: it must stay on.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}/worker"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-worker"
  description = "CloudCommerce worker tasks: HTTPS out to AWS APIs and the payment gateway; ops and intake ports in from the given CIDRs only."
  vpc_id      = var.vpc_id
  tags        = var.tags
}

# The worker calls AWS regional endpoints (SQS, DynamoDB, EventBridge, SNS,
# ECR, Logs, Secrets Manager) and, with payment_gateway = "stripe", Stripe's
# API: public HTTPS endpoints reached through the private subnets' NAT or VPC
# endpoints, whose addresses are not a fixed CIDR list.
#tfsec:ignore:aws-ec2-no-public-egress-sgr HTTPS-only egress to AWS service endpoints and the payment gateway, from private subnets without public IPs.
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to AWS APIs and the payment gateway"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "ops" {
  for_each = toset(var.ops_ingress_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "Worker ops port (/metrics, /healthz, /readyz)"
  ip_protocol       = "tcp"
  from_port         = var.ops_port
  to_port           = var.ops_port
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "intake" {
  for_each = var.intake.enabled ? toset(var.intake.ingress_cidr_blocks) : toset([])

  security_group_id = aws_security_group.this.id
  description       = "Worker HTTP intake API"
  ip_protocol       = "tcp"
  from_port         = var.intake.port
  to_port           = var.intake.port
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode(local.container_definitions)

  lifecycle {
    precondition {
      condition     = local.stop_timeout_seconds <= 120
      error_message = "shutdown_timeout_seconds + stop_timeout_margin_seconds must be at most 120, Fargate's stopTimeout limit."
    }
  }

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name             = "${var.name}-worker"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.this.arn
  platform_version = "LATEST"

  # Only the initial count: Application Auto Scaling owns desired_count from
  # then on (see lifecycle.ignore_changes).
  desired_count = var.min_tasks

  dynamic "capacity_provider_strategy" {
    for_each = var.use_fargate_spot ? { FARGATE = { base = 1, weight = 1 }, FARGATE_SPOT = { base = 0, weight = 3 } } : { FARGATE = { base = 0, weight = 1 } }
    content {
      capacity_provider = capacity_provider_strategy.key
      base              = capacity_provider_strategy.value.base
      weight            = capacity_provider_strategy.value.weight
    }
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }

  # Rolling deploys start new tasks before old ones stop; a deployment whose
  # tasks never get healthy is rolled back to the last good task definition.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"
  wait_for_steady_state   = false

  depends_on = [
    aws_ecs_cluster_capacity_providers.this,
    aws_iam_role_policy.task,
    aws_iam_role_policy.execution,
  ]

  lifecycle {
    ignore_changes = [desired_count]
  }

  tags = var.tags
}
