# modules/worker_service on its own, with the inputs the root module gives it
# (the stage queue names come from deploy/topology.json): the task
# definition, the service's deployment settings, scaling on backlog per task
# and the metrics collector sidecar.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name                        = "cloudcommerce"
  region                      = "eu-west-1"
  vpc_id                      = "vpc-0123456789abcdef0"
  subnet_ids                  = ["subnet-0123456789abcdef0"]
  image                       = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/cloudcommerce/worker:v1.2.3"
  image_repository_arn        = "arn:aws:ecr:eu-west-1:123456789012:repository/cloudcommerce/worker"
  cpu                         = 512
  memory                      = 1024
  cpu_architecture            = "X86_64"
  container_user              = "65532:65532"
  environment                 = { CLOUDCOMMERCE_PREFIX = "cloudcommerce" }
  shutdown_timeout_seconds    = 25
  stop_timeout_margin_seconds = 5
  intake                      = { enabled = false, port = 8080, ingress_cidr_blocks = [] }
  log_retention_days          = 30
  task_role_policy_json       = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  min_tasks                   = 0
  max_tasks                   = 10
  target_backlog_per_task     = 100
  scale_out_cooldown_seconds  = 60
  scale_in_cooldown_seconds   = 300
  queue_names                 = { for q in jsondecode(file("../topology.json")).queues : q.stage => "cloudcommerce-${q.name}" }
  alarm_topic_arn             = "arn:aws:sns:eu-west-1:123456789012:cloudcommerce-alarms"

  alarm_no_tasks_with_backlog_minutes = 10
  metrics_collector = {
    image                   = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
    remote_write_url        = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
    scrape_interval_seconds = 30
  }
}

run "worker_container_runs_the_binary_unprivileged_with_its_stop_timeout" {
  module {
    source = "./modules/worker_service"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].name == "worker" && jsondecode(aws_ecs_task_definition.this.container_definitions)[0].essential
    error_message = "The first container is the essential worker."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].entryPoint == ["/worker"] && jsondecode(aws_ecs_task_definition.this.container_definitions)[0].command == ["run"]
    error_message = "The task runs /worker run."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].healthCheck.command == ["CMD", "/worker", "healthcheck"]
    error_message = "The health check is /worker healthcheck."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].stopTimeout == 30 && output.stop_timeout_seconds == 30
    error_message = "stopTimeout is shutdown_timeout_seconds + stop_timeout_margin_seconds."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].user == "65532:65532" && jsondecode(aws_ecs_task_definition.this.container_definitions)[0].readonlyRootFilesystem && jsondecode(aws_ecs_task_definition.this.container_definitions)[0].linuxParameters.capabilities.drop == ["ALL"]
    error_message = "The worker runs as container_user on a read-only root with no capabilities."
  }
  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment : e.name => e.value } == merge(var.environment, { CLOUDCOMMERCE_OPS_ADDR = ":9090", CLOUDCOMMERCE_SHUTDOWN_TIMEOUT = "25s" })
    error_message = "The worker's environment is the given one plus the ops address and its shutdown budget."
  }
  assert {
    condition     = aws_ecs_task_definition.this.requires_compatibilities == toset(["FARGATE"]) && aws_ecs_task_definition.this.network_mode == "awsvpc" && aws_ecs_task_definition.this.cpu == "512" && aws_ecs_task_definition.this.memory == "1024"
    error_message = "A Fargate awsvpc task of the given size."
  }
}

run "service_deploys_without_dropping_capacity_and_rolls_back" {
  module {
    source = "./modules/worker_service"
  }

  assert {
    condition     = aws_ecs_service.this.deployment_minimum_healthy_percent == 100 && aws_ecs_service.this.deployment_maximum_percent == 200
    error_message = "Rolling deploys start new tasks before stopping old ones."
  }
  assert {
    condition     = aws_ecs_service.this.deployment_circuit_breaker[0].enable && aws_ecs_service.this.deployment_circuit_breaker[0].rollback
    error_message = "A deployment whose tasks never get healthy rolls back."
  }
  assert {
    condition     = aws_ecs_service.this.network_configuration[0].assign_public_ip == false && aws_ecs_service.this.network_configuration[0].subnets == toset(var.subnet_ids)
    error_message = "Tasks run in the given private subnets without public IPs."
  }
  assert {
    condition     = one([for s in aws_ecs_service.this.capacity_provider_strategy : s.capacity_provider]) == "FARGATE"
    error_message = "Without use_fargate_spot the service runs on regular Fargate only."
  }
  assert {
    condition     = aws_ecs_cluster.this.setting == toset([{ name = "containerInsights", value = "enabled" }])
    error_message = "Container Insights (RunningTaskCount, the scaling divisor) must stay on."
  }
}

run "fargate_spot_keeps_one_regular_task" {
  module {
    source = "./modules/worker_service"
  }

  variables {
    use_fargate_spot = true
  }

  assert {
    condition     = { for s in aws_ecs_service.this.capacity_provider_strategy : s.capacity_provider => s.base } == { FARGATE = 1, FARGATE_SPOT = 0 }
    error_message = "With Spot, one task stays on regular Fargate."
  }
}

run "scaling_tracks_backlog_per_running_task_over_every_stage_queue" {
  module {
    source = "./modules/worker_service"
  }

  assert {
    condition     = aws_appautoscaling_target.this.min_capacity == 0 && aws_appautoscaling_target.this.max_capacity == 10 && aws_appautoscaling_target.this.scalable_dimension == "ecs:service:DesiredCount"
    error_message = "The scalable target spans min_tasks to max_tasks of the service's desired count."
  }
  assert {
    condition     = aws_appautoscaling_policy.backlog_per_task.target_tracking_scaling_policy_configuration[0].target_value == 100
    error_message = "Target tracking aims at target_backlog_per_task."
  }
  assert {
    condition = toset(flatten([for m in aws_appautoscaling_policy.backlog_per_task.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics :
    [for s in m.metric_stat : [for d in s.metric[0].dimensions : d.value if d.name == "QueueName"]]])) == toset(values(var.queue_names))
    error_message = "The backlog sums ApproximateNumberOfMessagesVisible of every stage queue."
  }
  assert {
    condition = one([for m in aws_appautoscaling_policy.backlog_per_task.target_tracking_scaling_policy_configuration[0].customized_metric_specification[0].metrics : m.expression if m.return_data]) == (
    "(${join(" + ", [for s in keys(var.queue_names) : "visible_${s}"])}) / running_tasks")
    error_message = "The returned metric is the total backlog divided by the running tasks."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.idle_with_backlog["wake"].alarm_actions == toset([aws_appautoscaling_policy.wake.arn]) && [for s in aws_appautoscaling_policy.wake.step_scaling_policy_configuration[0].step_adjustment : s.scaling_adjustment] == [1]
    error_message = "Backlog with no running task wakes the service to one task."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.idle_with_backlog["no_running_tasks"].evaluation_periods == 10 && aws_cloudwatch_metric_alarm.idle_with_backlog["no_running_tasks"].alarm_actions == toset([var.alarm_topic_arn])
    error_message = "Backlog with no task for alarm_no_tasks_with_backlog_minutes pages the alarms topic."
  }
}

run "metrics_collector_sidecar_scrapes_the_ops_port_and_remote_writes" {
  module {
    source = "./modules/worker_service"
  }

  assert {
    condition     = length(jsondecode(aws_ecs_task_definition.this.container_definitions)) == 2 && jsondecode(aws_ecs_task_definition.this.container_definitions)[1].name == "metrics-collector" && !jsondecode(aws_ecs_task_definition.this.container_definitions)[1].essential
    error_message = "The ADOT collector is a second, non-essential container."
  }
  assert {
    condition     = yamldecode(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment[0].value).receivers.prometheus.config.scrape_configs[0].static_configs[0].targets == ["127.0.0.1:9090"]
    error_message = "The collector scrapes the worker's ops port on 127.0.0.1."
  }
  assert {
    condition     = yamldecode(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment[0].value).exporters.prometheusremotewrite.endpoint == var.metrics_collector.remote_write_url
    error_message = "The collector remote-writes to the workspace."
  }
  assert {
    condition     = yamldecode(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment[0].value).service.pipelines.metrics == { receivers = ["prometheus"], processors = ["resourcedetection/ecs", "resource/instance", "batch"], exporters = ["prometheusremotewrite"] }
    error_message = "The collector's metrics pipeline runs the scrape through the task label to the remote write."
  }
  assert {
    condition     = yamldecode(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment[0].value).extensions.sigv4auth == { region = var.region, service = "aps" }
    error_message = "The remote write is signed for aps in the region."
  }
  assert {
    condition     = yamldecode(jsondecode(aws_ecs_task_definition.this.container_definitions)[1].environment[0].value).receivers.prometheus.config.global.scrape_interval == "30s"
    error_message = "The collector scrapes every scrape_interval_seconds."
  }
}

run "no_collector_without_prometheus" {
  module {
    source = "./modules/worker_service"
  }

  variables {
    metrics_collector = null
  }

  assert {
    condition     = length(jsondecode(aws_ecs_task_definition.this.container_definitions)) == 1
    error_message = "Without a metrics collector the task has the worker only."
  }
}

run "intake_and_secrets" {
  module {
    source = "./modules/worker_service"
  }

  variables {
    intake  = { enabled = true, port = 8080, ingress_cidr_blocks = ["10.0.0.0/16"] }
    secrets = { CLOUDCOMMERCE_API_KEY = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-AbCdEf" }
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].secrets == [{ name = "CLOUDCOMMERCE_API_KEY", valueFrom = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-AbCdEf" }]
    error_message = "Secrets are injected by ARN (valueFrom), never as values."
  }
  assert {
    condition     = output.environment.CLOUDCOMMERCE_INTAKE_ADDR == ":8080" && aws_vpc_security_group_ingress_rule.intake["10.0.0.0/16"].from_port == 8080
    error_message = "An enabled intake listens on its port, open to its CIDR blocks only."
  }
}

run "refuses_subnet_ids" {
  module {
    source = "./modules/worker_service"
  }
  command = plan

  variables {
    subnet_ids = []
  }

  expect_failures = [var.subnet_ids]
}

run "refuses_queue_names" {
  module {
    source = "./modules/worker_service"
  }
  command = plan

  variables {
    queue_names = { Inventory = "cloudcommerce-inventory" }
  }

  expect_failures = [var.queue_names]
}

run "refuses_metrics_collector_scrape_interval" {
  module {
    source = "./modules/worker_service"
  }
  command = plan

  variables {
    metrics_collector = {
      image                   = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
      remote_write_url        = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
      scrape_interval_seconds = 301
    }
  }

  expect_failures = [var.metrics_collector]
}

run "accepts_collector_edges" {
  module {
    source = "./modules/worker_service"
  }
  command = plan

  variables {
    metrics_collector = {
      image                   = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"
      remote_write_url        = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
      scrape_interval_seconds = 10
    }
    queue_names = { a = "cloudcommerce-a", b_2 = "cloudcommerce-b" }
  }
}
